package builder

import (
	"fmt"
	"strings"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/pkgindex"
	"github.com/bot-core/delivery/pipelines/services"
)

// rustTarget is what cross-compiling for one architecture takes, as Debian
// names the linker and its packages, and its multiarch library directory.
type rustTarget struct {
	triple, linker, crossPackages, multiarch string
}

var rustTargets = map[string]rustTarget{
	"amd64": {"x86_64-unknown-linux-gnu", "x86_64-linux-gnu-gcc", "gcc-x86-64-linux-gnu libc6-dev-amd64-cross", "x86_64-linux-gnu"},
	"arm64": {"aarch64-unknown-linux-gnu", "aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu libc6-dev-arm64-cross", "aarch64-linux-gnu"},
}

// rust cross-compiles on the build platform (no QEMU: a Rust build under
// emulation is an order of magnitude slower) and copies the one binary into
// a distroless runtime: the crate's only one, or the one services.yaml names
// (binary, package, features).
func rust(c *dagger.Client, s Spec) (*dagger.Container, error) {
	t, ok := rustTargets[Arch(s.Platform)]
	if !ok {
		return nil, fmt.Errorf("service %s: no Rust target for %s", s.Service.Name, s.Platform)
	}
	target := t.triple
	cross := Arch(s.Platform) != Arch(s.BuildPlatform)

	// The official image brings rustup and no cross linker; Debian's rustc
	// brings target std as a package (libstd-rust-dev:arm64). Add only what
	// is missing, so the same step works with both and offline.
	prepare := fmt.Sprintf(`
if command -v rustup >/dev/null; then rustup target list --installed | grep -qx %[1]s || rustup target add %[1]s; fi
if [ %[2]t = true ] && ! command -v %[3]s >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends %[4]s
fi`, target, cross, t.linker, t.crossPackages)
	if pkgs := s.Service.SystemPackages; len(pkgs) > 0 {
		prepare += systemPackages(Arch(s.Platform), pkgs)
	}

	out := "/out/" + s.Service.Name
	// Cargo decides freshness by mtime, and target/ is a cache shared across
	// builds: a source file older than an artifact (a checkout, a copied tree)
	// would be skipped and the old binary shipped. Touching the service's own
	// sources makes cargo recompile the crate itself, while dependencies stay
	// cached.
	// The executables cargo reports for this very build are the candidates
	// (target/ is a cache and may hold others from earlier builds).
	build := fmt.Sprintf(`
find . -path ./target -prune -o -type f -exec touch {} +
cargo build --release --locked --target %[1]s %[3]s --message-format=json-render-diagnostics > /tmp/cargo.json
grep -o '"executable":"[^"]*"' /tmp/cargo.json | sed 's/^"executable":"//; s/"$//' | sort -u > /tmp/executables
n=$(wc -l < /tmp/executables)
if [ "$n" -ne 1 ]; then
  echo "service %[4]s: the build made $n executables ($(xargs -n1 basename < /tmp/executables | paste -sd ' ' -)): name the one to ship with binary: in services.yaml" >&2
  exit 1
fi
mkdir -p /out
cp "$(cat /tmp/executables)" %[2]s`, target, out, cargoArgs(s.Service.Cargo), s.Service.Name)
	if len(s.Service.SystemPackages) > 0 {
		build += fmt.Sprintf(runtimeLibraries, out, t.multiarch, s.Service.Name)
	}

	builder := c.Container(dagger.ContainerOpts{Platform: s.BuildPlatform}).
		From(s.Images.RustBuilder).
		// CARGO_HOME (the registry and git caches) is one volume shared by
		// every Rust build, whole: cargo's package-cache lock lives at its
		// root, so builds running at once (two platforms of one service)
		// take turns unpacking a crate instead of colliding.
		WithEnvVariable("CARGO_HOME", "/cargo").
		WithEnvVariable("PATH", "/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").
		WithMountedCache("/cargo", c.CacheVolume("bot-core-cargo-home")).
		WithExec(sh(prepare)).
		WithEnvVariable("CARGO_TARGET_"+envName(target)+"_LINKER", t.linker)
	builder = withCargoRegistry(builder, s.Indexes.Cargo)
	if len(s.Service.SystemPackages) > 0 && cross {
		// pkg-config finds the target's libraries (libssl-dev:arm64's .pc
		// files), for the target's build only, not build scripts' own.
		builder = builder.
			WithEnvVariable("PKG_CONFIG_ALLOW_CROSS", "1").
			WithEnvVariable("PKG_CONFIG_LIBDIR_"+strings.ReplaceAll(target, "-", "_"), "/usr/lib/"+t.multiarch+"/pkgconfig:/usr/share/pkgconfig")
	}
	outDir := builder.
		WithDirectory("/src", s.Source, dagger.ContainerWithDirectoryOpts{Exclude: []string{"target"}}).
		WithWorkdir("/src").
		// One target cache per service; targets live in their own subdirs.
		WithMountedCache("/src/target", c.CacheVolume("bot-core-cargo-target-"+s.Service.Name)).
		WithExec(sh(build)).
		Directory("/out").
		WithTimestamps(s.Epoch)

	path := "/usr/local/bin/" + s.Service.Name
	runtime := c.Container(dagger.ContainerOpts{Platform: s.Platform}).From(s.Images.RustRuntime)
	if len(s.Service.SystemPackages) > 0 {
		runtime = runtime.WithDirectory("/", outDir.Directory("rootfs"))
	}
	return runtime.
		WithFile(path, outDir.File(s.Service.Name), dagger.ContainerWithFileOpts{Permissions: 0o755}).
		WithEntrypoint([]string{path}), nil
}

// CargoRegistry is the crates.io mirror cargo fetches from, and its token
// (nil without).
type CargoRegistry struct {
	pkgindex.Cargo
	Token *dagger.Secret
}

// withCargoRegistry points cargo at the mirror through /.cargo/config.toml:
// cargo reads the configuration of the directories above the project's
// (/src) after the project's own, so a project's .cargo/config.toml still
// wins; CARGO_HOME is the shared cache volume, where a build's settings must
// not stay behind. The token is a secret variable: cargo reads
// CARGO_REGISTRIES_<NAME>_TOKEN, and the build's output is a directory, so
// it reaches no layer.
func withCargoRegistry(ctr *dagger.Container, reg CargoRegistry) *dagger.Container {
	cfg := reg.Config()
	if cfg == "" {
		return ctr
	}
	ctr = ctr.WithNewFile("/.cargo/config.toml", cfg)
	if reg.Token != nil {
		ctr = ctr.WithSecretVariable("CARGO_REGISTRIES_"+envName(pkgindex.CargoMirrorName)+"_TOKEN", reg.Token)
	}
	return ctr
}

// cargoArgs are the services.yaml choices as cargo build arguments, each
// already checked to be a plain cargo name.
func cargoArgs(c services.Cargo) string {
	var args []string
	if c.Package != "" {
		args = append(args, "--package", c.Package)
	}
	if c.Binary != "" {
		args = append(args, "--bin", c.Binary)
	}
	if len(c.Features) > 0 {
		args = append(args, "--features", strings.Join(c.Features, ","))
	}
	return strings.Join(args, " ")
}

// envName turns a target triple into Cargo's environment-variable form.
func envName(target string) string {
	return strings.ToUpper(strings.ReplaceAll(target, "-", "_"))
}

// systemPackages installs the Debian packages of the C libraries a crate
// links for the target architecture (multiarch: libssl-dev:arm64 beside the
// build platform's own), with pkg-config to find them.
func systemPackages(debArch string, pkgs []string) string {
	var names []string
	for _, p := range pkgs {
		names = append(names, p+":"+debArch)
	}
	return fmt.Sprintf(`
if [ "$(dpkg --print-architecture)" != %[1]s ] && ! dpkg --print-foreign-architectures | grep -qx %[1]s; then
  dpkg --add-architecture %[1]s
fi
apt-get update -qq && apt-get install -y -qq --no-install-recommends pkg-config %[2]s`, debArch, strings.Join(names, " "))
}

// runtimeLibraries gathers, into /out/rootfs, the shared libraries the
// binary needs (and theirs) that the distroless runtime lacks: every
// library but glibc's and libgcc's, as the target's packages installed them,
// with each package's dpkg record in /var/lib/dpkg/status.d (distroless's
// layout), so that the scan and the SBOM see libssl3 as a package.
// Arguments: binary, multiarch directory, service.
const runtimeLibraries = `
lib=/usr/lib/%[2]s
mkdir -p /out/rootfs$lib /out/rootfs/var/lib/dpkg/status.d
queue=%[1]s seen= pkgs=
while [ -n "$queue" ]; do
  set -- $queue; file=$1; shift; queue="$*"
  for so in $(readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case " $seen " in *" $so "*) continue ;; esac
    seen="$seen $so"
    owner=$(dpkg -S "*/%[2]s/$so" 2>/dev/null | head -n1 | sed 's/: .*//') || true
    case ${owner%%%%:*} in
      libc6|libgcc-s1) continue ;;
      "") echo "service %[3]s: the binary needs $so, which no installed package of the target has: add its -dev package to system-packages" >&2; exit 1 ;;
    esac
    cp -L "$lib/$so" "/out/rootfs$lib/$so"
    queue="$queue /out/rootfs$lib/$so"
    case " $pkgs " in *" $owner "*) ;; *) pkgs="$pkgs $owner" ;; esac
  done
done
for p in $pkgs; do
  dpkg-query -s "$p" >"/out/rootfs/var/lib/dpkg/status.d/${p%%%%:*}"
done
echo "runtime libraries: ${seen:- none} (packages:${pkgs:- none})"`
