#!/usr/bin/env bash
# Builds Dagger (engine, CLI, init, dnsname, dialstdio, codegen) and crane from
# the Go module proxy into a cache directory keyed by go.mod/go.sum, the
# distconsts module, the Dagger version and the Go toolchain. Prints the directory.
source "$(dirname "$0")/lib.sh"

out=$(bin_dir)
if [ -x "$out/dagger" ] && [ -f "$out/.complete" ]; then
  echo "$out"; exit 0
fi

# --image-tools: only what base-images.sh needs (crane, mkimage), so up.sh can
# start the base images, most of a cold bring-up, while Dagger still compiles.
want=(mkimage:./mkimage crane:github.com/google/go-containerregistry/cmd/crane)
if [ "${1:-}" != --image-tools ]; then
  want+=(dagger-engine:github.com/dagger/dagger/cmd/engine dagger:github.com/dagger/dagger/cmd/dagger
    dagger-init:github.com/dagger/dagger/cmd/init dnsname:github.com/dagger/dagger/cmd/dnsname
    dialstdio:github.com/dagger/dagger/cmd/dialstdio codegen:github.com/dagger/dagger/cmd/codegen)
  log "building Dagger $DAGGER_VERSION from the Go module proxy (cold: about 5 min on 2 cores beside the base images)"
fi
mkdir -p "$out"
cd "$ENGINE_SRC"
ldflags="-s -w -X github.com/dagger/dagger/engine.Version=$DAGGER_VERSION -X github.com/dagger/dagger/engine.Tag=$DAGGER_VERSION"
# Each binary lands whole (built beside, then renamed) and is skipped once
# there: the directory is keyed by everything that makes them.
build() { # output package
  [ -x "$out/$1" ] && return
  note "go build $2"
  # dfexcludepatterns,dfparents: Dockerfile COPY --exclude/--parents in Directory.dockerBuild.
  CGO_ENABLED=0 go build -mod=readonly -trimpath -tags dfexcludepatterns,dfparents \
    -ldflags "$ldflags" -o "$out/$1.tmp.$$" "$2" && mv "$out/$1.tmp.$$" "$out/$1"
}
export GOFLAGS=-buildvcs=false
w=""
for b in "${want[@]}"; do w+="build ${b%%:*} ${b#*:} && "; done
logged "build-binaries${1:+-image-tools}" bash -c "$(declare -f build note); out='$out'; ldflags='$ldflags'; ${w%&& }"
[ "${1:-}" = --image-tools ] || touch "$out/.complete"
echo "$out"
