#!/usr/bin/env bash
# Builds the Go SDK runtime image the engine loads for Go modules (upstream
# ships it inside the engine image): Debian bookworm minbase with git and ssh,
# the host's Go toolchain, our codegen, and module and build caches warmed
# with dagger.io/dagger so the first `dagger call` does not compile the SDK.
# Prints "<content dir> <manifest digest>".
source "$(dirname "$0")/lib.sh"

bin=$(bin_dir)
goroot=$(go env GOROOT)
k=$(key "$0" "$bin/codegen" -- "$(go_version)" "$(mmdebstrap --version)")
dir=$BOTCORE_CACHE/go-sdk/$k
digest() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$1/index.json"; }
# The module runtime fetches Go modules through the machine's TLS proxy, if
# any: the image carries the machine's CA certificates (lib.sh trusted).
print() { local l; l=$(trusted "$dir/layout"); echo "$l $(digest "$l")"; }
if [ -f "$dir/.complete" ]; then print; exit 0; fi

log "Go SDK image (Debian bookworm + Go $(go_version) + codegen), about 2 min"
rm -rf "$dir"; mkdir -p "$dir"
src=$(mktemp); sources_for bookworm >"$src"
logged go-sdk-rootfs env SOURCE_DATE_EPOCH=0 mmdebstrap --variant=minbase --format=tar --architectures=amd64 \
  --include=git,openssh-client,openssl,ca-certificates \
  --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Check-Date "false"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$dir/base.tar" "$src"
rm -f "$src"

# Warm the caches inside the image's own root so every cached path is the one
# the SDK container will use (/go/pkg/mod, /root/.cache/go-build). The host's CA
# bundle is lent for the download: the host may trust a CA the image does not.
root=$dir/root
mkdir -p "$root" && tar -xf "$dir/base.tar" -C "$root"
mkdir -p "$root/usr/local/go" "$root/go" "$root/root/.cache/go-build" "$root/warm"
cp -a "$goroot/." "$root/usr/local/go/"
install -m 0755 "$bin/codegen" "$root/usr/local/bin/codegen"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cat >"$root/warm/go.mod" <<MOD
module warm

go 1.24

require dagger.io/dagger $DAGGER_VERSION
MOD
cat >"$root/warm/main.go" <<'GO'
package main

import (
	_ "dagger.io/dagger"
	_ "dagger.io/dagger/querybuilder"
	_ "dagger.io/dagger/telemetry"
)

func main() {}
GO
logged go-sdk-warm unshare --mount --fork sh -c "
  mount --bind /dev '$root/dev' && mount -t proc proc '$root/proc' &&
  mount --bind /etc/ssl/certs/ca-certificates.crt '$root/etc/ssl/certs/ca-certificates.crt' &&
  chroot '$root' env -i HOME=/root GOPATH=/go GOTOOLCHAIN=local GOSUMDB=off GOFLAGS=-mod=mod \
    GOPROXY='$(go env GOPROXY)' PATH=/go/bin:/usr/local/go/bin:/usr/bin:/bin \
    sh -c 'cd /warm && go mod tidy && go build -ldflags \"-s -w\" -o /dev/null .'"
rm -rf "$root/warm" "$root/etc/resolv.conf"
tar -C "$root" -cf "$dir/tools.tar" usr/local/go usr/local/bin/codegen go root/.cache
rm -rf "$root"

logged go-sdk-mkimage "$bin/mkimage" -out "$dir/layout" -workdir /go \
  -env GOPATH=/go -env GOTOOLCHAIN=local \
  -env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  "linux/amd64=$dir/base.tar,$dir/tools.tar"
rm -f "$dir/base.tar" "$dir/tools.tar"
touch "$dir/.complete"
print
