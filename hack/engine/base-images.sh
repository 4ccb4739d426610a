#!/usr/bin/env bash
# Builds every image listed in images.txt with mmdebstrap (one root filesystem
# per architecture; arm64 runs under QEMU) into an OCI layout cached under
# $BOTCORE_CACHE/images/<recipe hash>. Already built recipes are skipped.
# Prints one line per image: "<layout dir> <name>[,<name>...]".
source "$(dirname "$0")/lib.sh"

bin=$(bin_dir)
host_suite=$(. /etc/os-release && echo "$VERSION_CODENAME")

# sources_for SUITE: the host's apt sources rewritten for SUITE, so images come
# from the same mirror the host is configured with.
sources_for() {
  sed -E "s/\b$host_suite(-updates|-security)?\b/$1\1/g" "$DEBIAN_MIRROR_SOURCES"
}

rootfs() { # suite arch packages out.tar
  local include=()
  [ "$3" != - ] && include=(--include="$3")
  local src; src=$(mktemp); sources_for "$1" >"$src"
  # Check-Valid-Until/Date off: the mirror may be a dated snapshot.
  SOURCE_DATE_EPOCH=0 mmdebstrap --quiet --variant=minbase --format=tar --architectures="$2" "${include[@]}" \
    --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Check-Date "false"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$1" "$4" "$src"
  rm -f "$src"
}

build_one() { # names suite arches packages
  local names=$1 suite=$2 arches=$3 pkgs=$4
  local k; k=$(key "$ENGINE_SRC/mkimage/main.go" -- "$names" "$suite" "$arches" "$pkgs" "$(mmdebstrap --version)")
  local dir=$BOTCORE_CACHE/images/$k
  if [ -f "$dir/.complete" ]; then echo "$dir/layout $names"; return; fi
  log "base image ${names%%,*} ($suite; $arches) from Debian packages"
  rm -rf "$dir"; mkdir -p "$dir"
  local pids=() specs=() a
  for a in ${arches//,/ }; do
    note "mmdebstrap $suite $a${pkgs/#-/}"
    rootfs "$suite" "$a" "$pkgs" "$dir/rootfs-$a.tar" >"$dir/mmdebstrap-$a.log" 2>&1 &
    pids+=($!); specs+=("linux/$a=$dir/rootfs-$a.tar")
  done
  local i=0
  for a in ${arches//,/ }; do
    wait "${pids[$i]}" || { tail -n 20 "$dir/mmdebstrap-$a.log" >&2; die "mmdebstrap $suite $a failed (log: $dir/mmdebstrap-$a.log)"; }
    i=$((i+1))
  done
  logged "mkimage-${k}" "$bin/mkimage" -out "$dir/layout" -cmd bash "${specs[@]}"
  rm -f "$dir"/rootfs-*.tar
  touch "$dir/.complete"
  echo "$dir/layout $names"
}

grep -vE '^\s*(#|$)' "$ENGINE_SRC/images.txt" | while read -r names suite arches pkgs; do
  build_one "$names" "$suite" "$arches" "$pkgs"
done
