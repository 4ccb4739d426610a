#!/usr/bin/env bash
# Runs inside the engine's private mount and PID namespaces (see up.sh).
# Everything the engine expects at fixed paths (runc, dagger-init, CNI
# plugins, the builtin Go SDK image, /etc/dagger/engine.json) is installed on
# overlays whose upper layers live in a namespace-private tmpfs, so the host's
# /etc, /usr and /opt are never written, and it all vanishes with the engine.
set -euo pipefail
bin=$1 content=$2 sdk_digest=$3 state=$4 registry=$5 ns=$6 tcp=${7:-}

mount -t tmpfs -o mode=0700 botcore-engine "$ns"
for d in etc usr opt; do
  mkdir -p "$ns/$d/upper" "$ns/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$ns/$d/upper,workdir=$ns/$d/work" "/$d"
done
mkdir -p /run/containers /run/runc /var/lib/cni
mount -t tmpfs tmpfs /run/containers
mount -t tmpfs tmpfs /run/runc
mount -t tmpfs tmpfs /var/lib/cni   # host-local IPAM leases die with the engine

ln -sf /usr/sbin/runc /usr/local/bin/runc
install -m 0755 "$bin/dagger-init" /usr/local/bin/dagger-init
for x in legacy nft; do ln -sf "/usr/sbin/xtables-$x-multi" "/usr/bin/xtables-$x-multi"; done
mkdir -p /opt/cni/bin
for p in bridge host-local loopback firewall portmap; do ln -sf "/usr/lib/cni/$p" "/opt/cni/bin/$p"; done
install -m 0755 "$bin/dnsname" /opt/cni/bin/dnsname
mkdir -p /usr/local/share/dagger/content
mount --bind "$content" /usr/local/share/dagger/content
# The machine's CA certificates are already in every stand-in image
# (trustlayer/main.go); left here, the engine would also install them around
# every exec by running update-ca-certificates in the container, two minutes
# per exec of an arm64 image under QEMU. Removed from this namespace only.
rm -f /usr/local/share/ca-certificates/*
mkdir -p /etc/dagger
# The local registry is the docker.io mirror: "debian:bookworm-slim" resolves
# to $registry/library/debian:bookworm-slim. Loopback registries are plain HTTP.
# GC in absolute sizes (up.sh's gc_policy, in BOTCORE_ENGINE_GC): the disk's
# reported size says nothing about the space really left on a shared CI disk
# (a 252 GB disk with 8 GB free), so a percentage either never triggers or
# evicts everything mid-run (and with it the Next.js build that only the
# cache keeps reproducible).
cat >/etc/dagger/engine.json <<JSON
{"registries": {"docker.io": {"mirrors": ["$registry"]}, "gcr.io": {"mirrors": ["$registry"]}},
 "gc": $BOTCORE_ENGINE_GC}
JSON

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DAGGER_GO_SDK_MANIFEST_DIGEST=$sdk_digest
addrs=(--addr unix:///run/dagger/engine.sock)
# A TCP listener for clients that share this engine (docs/scaling.md);
# loopback only: whoever reaches it runs containers.
[ -z "$tcp" ] || addrs+=(--addr "tcp://$tcp")
exec "$bin/dagger-engine" --root "$state" "${addrs[@]}"
