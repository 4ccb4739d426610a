// Package distconsts describes the Dagger distribution that hack/engine
// installs on the host. Upstream publishes these values as a nested module the
// Go proxy does not serve; the engine only needs the constants, and ours must
// match where our bootstrap script puts things, not where the upstream engine
// image does.
package distconsts

// Socket and container name of the one engine a host runs.
const (
	EngineContainerName   = "bot-core-dagger-engine"
	DefaultEngineSockAddr = "unix:///run/dagger/engine.sock"
)

// Paths inside the engine's private mount namespace (see hack/engine/run-engine.sh).
const (
	RuncPath       = "/usr/local/bin/runc"
	DaggerInitPath = "/usr/local/bin/dagger-init"

	EngineDefaultStateDir = "/var/lib/dagger"

	EngineContainerBuiltinContentDir = "/usr/local/share/dagger/content"

	// The engine reads the digest of each builtin SDK image from these
	// variables; hack/engine/sdk-image.sh builds the Go one.
	GoSDKManifestDigestEnvName         = "DAGGER_GO_SDK_MANIFEST_DIGEST"
	PythonSDKManifestDigestEnvName     = "DAGGER_PYTHON_SDK_MANIFEST_DIGEST"
	TypescriptSDKManifestDigestEnvName = "DAGGER_TYPESCRIPT_SDK_MANIFEST_DIGEST"
)

// Helper images the engine may pull by name. They resolve through the local
// docker.io mirror, so hack/engine/base-images.sh must serve them.
const (
	AlpineVersion = "3.22.1"
	AlpineImage   = "alpine:" + AlpineVersion

	// Matches the Go toolchain copied into our Go SDK image.
	GolangVersion = "1.26.8"
	GolangImage   = "golang:" + GolangVersion + "-alpine"

	BusyboxVersion = "1.37.0"
	BusyboxImage   = "busybox:" + BusyboxVersion
)

const OCIVersionAnnotation = "org.opencontainers.image.version"

const EngineCustomCACertsDir = "/usr/local/share/ca-certificates"
