# Shared settings for the hermetic engine scripts. Sourced, never run.
#
# Heavy, reusable things (binaries, base images, the Go SDK image, engine
# state) live outside the checkout under $BOTCORE_CACHE, keyed by what produced
# them, so a fresh clone on a machine that already built them starts in seconds
# while a new machine still builds everything from scratch.

set -euo pipefail

ENGINE_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$ENGINE_SRC/../.." && pwd)

DAGGER_VERSION=v0.19.10
BOTCORE_CACHE=${BOTCORE_CACHE:-/var/cache/bot-core}
REGISTRY_ADDR=${BOTCORE_REGISTRY_ADDR:-127.0.0.1:5000}
ENGINE_SOCK=/run/dagger/engine.sock
RUN_DIR=$BOTCORE_CACHE/run          # pids and logs of the running engine and registry
# The engine's cache. Another directory gives an engine that shares nothing
# with the usual one (test/e2e's cold rebuild); up.sh without it goes back.
ENGINE_STATE=${BOTCORE_ENGINE_STATE:-$BOTCORE_CACHE/engine-state}
DEBIAN_MIRROR_SOURCES=/etc/apt/sources.list.d/debian.sources

# sources_for SUITE: the host's apt sources rewritten for SUITE, so images and
# tools come from the same mirror the host is configured with.
sources_for() {
  local host_suite; host_suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  sed -E "s/\b$host_suite(-updates|-security)?\b/$1\1/g" "$DEBIAN_MIRROR_SOURCES"
}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# key FILE... prints a short hash of the files' contents plus extra words given
# after --, so a cache entry changes whenever its recipe does.
key() {
  local files=() extra=()
  while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; extra=("$@"); break; fi
    files+=("$1"); shift
  done
  { cat "${files[@]}"; printf '%s\n' "${extra[@]}"; } | sha256sum | cut -c1-16
}

go_version() { go env GOVERSION; }

bin_dir() {
  echo "$BOTCORE_CACHE/engine-bin/$(key "$ENGINE_SRC/go.mod" "$ENGINE_SRC/go.sum" "$ENGINE_SRC"/distconsts/* "$ENGINE_SRC/build-binaries.sh" "$ENGINE_SRC/mkimage/main.go" -- "$DAGGER_VERSION" "$(go_version)")"
}

# Runs "$@" writing its output to $RUN_DIR/logs/NAME.log; on failure shows the
# tail so the user sees the cause, not a wall of unrelated output.
logged() {
  local name=$1; shift
  mkdir -p "$RUN_DIR/logs"
  local f="$RUN_DIR/logs/$name.log"
  if ! "$@" >"$f" 2>&1; then
    tail -n 30 "$f" >&2
    die "$name failed (full log: $f)"
  fi
}

# The machine's own CA certificates (a TLS-inspecting proxy's, a company's),
# which the stand-in images must trust to reach the npm registry and the Go
# module proxy through it. Empty on a machine without any.
HOST_CA_DIR=/usr/local/share/ca-certificates
host_certs() { find "$HOST_CA_DIR" -maxdepth 1 -name '*.crt' -type f 2>/dev/null | sort; }

trustlayer_bin() {
  local out; out="$BOTCORE_CACHE/tools/trustlayer-$(key "$ENGINE_SRC/trustlayer/main.go" "$ENGINE_SRC/go.mod" "$ENGINE_SRC/go.sum" -- "$(go_version)")"
  if [ ! -x "$out" ]; then
    mkdir -p "$(dirname "$out")"
    (cd "$ENGINE_SRC" && CGO_ENABLED=0 go build -mod=readonly -trimpath -o "$out.tmp.$$" ./trustlayer) &&
      mv "$out.tmp.$$" "$out" || die "building hack/engine/trustlayer failed"
  fi
  echo "$out"
}

# trusted LAYOUT prints a layout of LAYOUT's images with the machine's CA
# certificates added as one more layer (trustlayer/main.go says why the
# engine's own custom-CA support is not used), or LAYOUT itself when the
# machine has none. Keyed by the layout, the certificates and the tool.
trusted() {
  local from=$1 certs; certs=$(host_certs)
  if [ -z "$certs" ]; then echo "$from"; return; fi
  # shellcheck disable=SC2086 # one path per line, no spaces
  local k; k=$(key "$from/index.json" $certs "$ENGINE_SRC/trustlayer/main.go" --)
  local dir=$BOTCORE_CACHE/images/trusted-$k
  if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir"; mkdir -p "$dir"
    logged "trust-$k" "$(trustlayer_bin)" -certs "$HOST_CA_DIR" -from "$from" -out "$dir/layout"
    touch "$dir/.complete"
  fi
  echo "$dir/layout"
}
