package builder

import (
	"testing"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/services"
)

func TestArchOfPlatforms(t *testing.T) {
	for p, want := range map[dagger.Platform]string{"linux/amd64": "amd64", "linux/arm64": "arm64", "linux/arm64/v8": "arm64"} {
		if got := arch(p); got != want {
			t.Errorf("arch(%s) = %s, want %s", p, got, want)
		}
	}
}

// Every platform the plan accepts has a Rust cross target, so a release
// never fails late for want of one.
func TestEverySupportedPlatformHasARustTarget(t *testing.T) {
	for _, p := range services.SupportedPlatforms {
		tgt, ok := rustTargets[arch(dagger.Platform(p))]
		if !ok || tgt.triple == "" || tgt.linker == "" || tgt.crossPackages == "" {
			t.Errorf("%s: rust target %+v", p, tgt)
		}
	}
}
