#!/usr/bin/env bash
# Makes a real Docker engine and the Compose v2 CLI plugin available, for
# `botcore deploy` and its tests, on a Debian bookworm host with nothing but
# apt and the Go module proxy:
#
#   - dockerd/containerd/docker: Debian's docker.io (20.10.24) via apt, unless
#     dockerd is already on PATH. Installing starts no service (policy-rc.d);
#     the tests start their own dockerd on a private socket
#     (cmd/botcore/internal/dockertest).
#   - docker-compose (v2 plugin): built from github.com/docker/compose/v2 on the
#     Go module proxy (Debian bookworm ships only the old Python docker-compose
#     1.29) and cached under $BOTCORE_CACHE/tools/docker-compose/<version>/.
#
# Prints the path of the compose plugin binary on stdout (progress on stderr).
# Install it for a user with:
#   mkdir -p ~/.docker/cli-plugins && ln -sf "$(hack/docker/install.sh)" ~/.docker/cli-plugins/docker-compose
#
# Usage: hack/docker/install.sh [--no-engine] [--no-compose]
set -euo pipefail

COMPOSE_VERSION=${BOTCORE_COMPOSE_VERSION:-v2.40.3}
BOTCORE_CACHE=${BOTCORE_CACHE:-/var/cache/bot-core}
TOOLS=$BOTCORE_CACHE/tools
export GOEXPERIMENT=${GOEXPERIMENT:-jsonv2}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

engine=1 compose=1
for a in "$@"; do
  case $a in
    --no-engine) engine=0 ;;
    --no-compose) compose=0 ;;
    *) die "unknown argument $a (usage: $0 [--no-engine] [--no-compose])" ;;
  esac
done

mkdir -p "$TOOLS"
# One installer at a time (tests of several packages may call this at once).
exec 9>"$TOOLS/.install.lock"
flock 9

install_engine() {
  if command -v dockerd >/dev/null && command -v containerd >/dev/null; then
    return
  fi
  [ "$(id -u)" = 0 ] || die "installing docker.io needs root (apt-get)"
  log "installing Debian's docker.io (dockerd, containerd, docker CLI)"
  local start=$SECONDS created_policy=0
  # Never start the packaged daemon: the tests run their own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
  # A stale package list fails the first try; refresh it once then.
  "${apt[@]}" install -y --no-install-recommends docker.io >&2 ||
    { "${apt[@]}" update >&2 && "${apt[@]}" install -y --no-install-recommends docker.io >&2; } || true
  if [ $created_policy = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  command -v dockerd >/dev/null || die "apt-get install docker.io failed"
  log "docker.io installed in $((SECONDS - start)) s ($(dockerd --version))"
}

build_compose() {
  local dir=$TOOLS/docker-compose/$COMPOSE_VERSION bin
  bin=$dir/docker-compose
  if [ -x "$bin" ]; then
    echo "$bin"
    return
  fi
  command -v go >/dev/null || die "go is needed to build docker compose $COMPOSE_VERSION"
  log "building docker compose $COMPOSE_VERSION from the Go module proxy (a few minutes, once)"
  local start=$SECONDS tmp
  tmp=$(mktemp -d)
  # compose's go.mod has exclude directives, so `go install pkg@version`
  # refuses it: build it as the main module from a copy of its source.
  local src
  src=$(GOWORK=off GOFLAGS= go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] && [ -d "$src" ] || { rm -rf "$tmp"; die "cannot download github.com/docker/compose/v2@$COMPOSE_VERSION"; }
  cp -r "$src" "$tmp/src" && chmod -R u+w "$tmp/src"
  (cd "$tmp/src" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 10 go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
    -o "$tmp/cmd" ./cmd) >&2 || { rm -rf "$tmp"; die "building docker compose failed"; }
  mkdir -p "$dir"
  mv "$tmp/cmd" "$bin.tmp" && mv "$bin.tmp" "$bin"
  rm -rf "$tmp"
  log "docker compose $COMPOSE_VERSION built in $((SECONDS - start)) s: $bin"
  echo "$bin"
}

[ $engine = 1 ] && install_engine
[ $compose = 1 ] && build_compose
exit 0
