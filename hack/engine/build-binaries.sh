#!/usr/bin/env bash
# Builds Dagger (engine, CLI, init, dnsname, dialstdio, codegen) and crane from
# the Go module proxy into a cache directory keyed by go.mod/go.sum, the
# distconsts module, the Dagger version and the Go toolchain. Prints the directory.
source "$(dirname "$0")/lib.sh"

out=$(bin_dir)
if [ -x "$out/dagger" ] && [ -f "$out/.complete" ]; then
  echo "$out"; exit 0
fi

log "building Dagger $DAGGER_VERSION from the Go module proxy (cold: ~3-4 min on 2 cores)"
tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
cd "$ENGINE_SRC"
ldflags="-s -w -X github.com/dagger/dagger/engine.Version=$DAGGER_VERSION -X github.com/dagger/dagger/engine.Tag=$DAGGER_VERSION"
build() { # output package
  note "go build $2"
  # dfexcludepatterns,dfparents: Dockerfile COPY --exclude/--parents in Directory.dockerBuild.
  CGO_ENABLED=0 go build -mod=readonly -trimpath -tags dfexcludepatterns,dfparents \
    -ldflags "$ldflags" -o "$tmp/$1" "$2"
}
export GOFLAGS=-buildvcs=false
logged build-binaries bash -c "
  $(declare -f build note); tmp='$tmp'; ldflags='$ldflags'
  build dagger-engine github.com/dagger/dagger/cmd/engine &&
  build dagger github.com/dagger/dagger/cmd/dagger &&
  build dagger-init github.com/dagger/dagger/cmd/init &&
  build dnsname github.com/dagger/dagger/cmd/dnsname &&
  build dialstdio github.com/dagger/dagger/cmd/dialstdio &&
  build codegen github.com/dagger/dagger/cmd/codegen &&
  build crane github.com/google/go-containerregistry/cmd/crane &&
  build mkimage ./mkimage"
touch "$tmp/.complete"
rm -rf "$out"; mv "$tmp" "$out"
echo "$out"
