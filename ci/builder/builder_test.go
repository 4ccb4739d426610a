package builder

import (
	"context"
	"strings"
	"testing"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/services"
)

func TestArchOfPlatforms(t *testing.T) {
	for p, want := range map[dagger.Platform]string{"linux/amd64": "amd64", "linux/arm64": "arm64", "linux/arm64/v8": "arm64"} {
		if got := Arch(p); got != want {
			t.Errorf("Arch(%s) = %s, want %s", p, got, want)
		}
	}
}

// Every platform the plan accepts has a Rust cross target, so a release
// never fails late for want of one.
func TestEverySupportedPlatformHasARustTarget(t *testing.T) {
	for _, p := range services.SupportedPlatforms {
		tgt, ok := rustTargets[Arch(dagger.Platform(p))]
		if !ok || tgt.triple == "" || tgt.linker == "" || tgt.crossPackages == "" || !strings.HasPrefix(tgt.triple, strings.Split(tgt.multiarch, "-")[0]) {
			t.Errorf("%s: rust target %+v", p, tgt)
		}
	}
}

// Every language's bases are the images its builder runs From: the runtime
// on the target platform, the builder where the builder runs it.
func TestBasesFollowTheBuilders(t *testing.T) {
	img := Images{RustBuilder: "rb", RustRuntime: "rr", PythonBuilder: "pb", PythonRuntime: "pr", NodeBuilder: "nb", NodeRuntime: "nr"}
	spec := func(lang string) Spec {
		return Spec{Service: services.Service{Name: "s", Language: lang}, Platform: "linux/arm64", BuildPlatform: "linux/amd64", Images: img}
	}
	want := map[string][]Base{
		"rust":   {{img.RustBuilder, "linux/amd64"}, {img.RustRuntime, "linux/arm64"}},
		"python": {{img.PythonBuilder, "linux/arm64"}, {img.PythonRuntime, "linux/arm64"}},
		"nextjs": {{img.NodeBuilder, "linux/amd64"}, {img.NodeRuntime, "linux/arm64"}},
	}
	for lang, w := range want {
		got, err := Bases(context.Background(), spec(lang))
		if err != nil || len(got) != len(w) || got[0] != w[0] || got[1] != w[1] {
			t.Errorf("%s: %v %v, want %v", lang, got, err, w)
		}
	}
	if _, err := Bases(context.Background(), spec("cobol")); err == nil {
		t.Error("an unknown language has bases")
	}
}

// A crate's C libraries are installed for the image's architecture, with
// the architecture added to dpkg where the builder lacks it.
func TestSystemPackagesForTheTarget(t *testing.T) {
	script := systemPackages("arm64", []string{"libssl-dev", "zlib1g-dev"})
	for _, want := range []string{"dpkg --add-architecture arm64", "pkg-config libssl-dev:arm64 zlib1g-dev:arm64"} {
		if !strings.Contains(script, want) {
			t.Errorf("the install step does not say %q:\n%s", want, script)
		}
	}
}
