// Builds, scans, signs and publishes the bot-core service images.
//
// The same functions run on a laptop (`dagger call ...`), in GitHub Actions
// and offline against mirrored base images.
package main

import (
	"context"
	"strings"

	"dagger/bot-core/internal/dagger"
)

// Debian base every platform check runs in. Resolved through the engine's
// docker.io mirror, so it works offline against hack/engine's registry.
const debianBase = "debian:bookworm-slim"

type BotCore struct{}

// Smoke prints the machine name (`uname -m`) seen inside a Debian container
// for one platform: x86_64 for linux/amd64, aarch64 for linux/arm64. It proves
// the engine can run (or emulate) that platform before any real build.
func (m *BotCore) Smoke(
	ctx context.Context,
	// Platform to run on, e.g. linux/arm64.
	// +default="linux/amd64"
	platform dagger.Platform,
) (string, error) {
	out, err := dag.Container(dagger.ContainerOpts{Platform: platform}).
		From(debianBase).
		WithExec([]string{"uname", "-m"}).
		Stdout(ctx)
	return strings.TrimSpace(out), err
}
