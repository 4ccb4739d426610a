#!/usr/bin/env bash
# Builds every image listed in images.txt with mmdebstrap (one root filesystem
# per architecture; arm64 runs under QEMU) into an OCI layout cached under
# $BOTCORE_CACHE/images/<recipe hash>. Already built recipes are skipped.
# Prints one line per image: "<layout dir> <name>[,<name>...]".
source "$(dirname "$0")/lib.sh"

bin=$(bin_dir)

rootfs() { # suite arches variant packages out.tar [npm.tgz]
  local suite=$1 arches=$2 variant=$3 pkgs=$4 out=$5 npm=${6:-}
  local args=(--quiet --format=tar --architectures="${arches//+/,}"
    # The mirror may be a dated snapshot.
    --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Check-Date "false"'
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/log/*')
  [ "$pkgs" != - ] && args+=(--include="$pkgs")
  # Where the official images have it: /usr/local/lib/node_modules/npm.
  [ -n "$npm" ] && args+=(--customize-hook="mkdir -p \"\$1\"/usr/local/lib/node_modules/npm \"\$1\"/usr/local/bin &&
    tar -xzf '$npm' -C \"\$1\"/usr/local/lib/node_modules/npm --strip-components=1 --no-same-owner &&
    ln -s ../lib/node_modules/npm/bin/npm-cli.js \"\$1\"/usr/local/bin/npm &&
    ln -s ../lib/node_modules/npm/bin/npx-cli.js \"\$1\"/usr/local/bin/npx")
  case $variant in
    minbase) args+=(--variant=minbase) ;;
    distroless) args+=(--mode=chrootless --variant=custom)
      local h; while IFS= read -r h; do args+=(--customize-hook="$h"); done < <(distroless_hooks) ;;
    *) die "images.txt: unknown variant $variant" ;;
  esac
  local src; src=$(mktemp); sources_for "$suite" >"$src"
  SOURCE_DATE_EPOCH=0 mmdebstrap "${args[@]}" "$suite" "$out" "$src"
  local rc=$?
  rm -f "$src"
  return $rc
}

# timed_rootfs SUITE ARCH VARIANT PACKAGES DIR [NPM]: rootfs into DIR/rootfs-ARCH.tar,
# its log beside it and the seconds it took in DIR/seconds-ARCH (the per-image
# figures up.sh prints: where a bring-up spends its time).
timed_rootfs() {
  local a=$2 dir=$5 t0=$SECONDS
  rootfs "$1" "$a" "$3" "$4" "$dir/rootfs-$a.tar" "${6:-}" >"$dir/mmdebstrap-$a.log" 2>&1 || return
  echo $((SECONDS - t0)) >"$dir/seconds-$a"
}

mmdebstrap_failed() { # arch; uses $dir and $suite of build_one
  tail -n 20 "$dir/mmdebstrap-$1.log" >&2
  die "mmdebstrap $suite $1 failed (log: $dir/mmdebstrap-$1.log)"
}

# distroless_hooks prints one mmdebstrap customize hook per line. chrootless:
# dpkg runs on the host against the image root, so arm64 needs no emulation
# and the image gets no shell, apt or dpkg. Scripts that need a shell go too:
# the engine runs update-ca-certificates when it finds one, and would fail.
distroless_hooks() {
  cat <<'HOOKS'
rm -rf "$1"/usr/share/doc "$1"/usr/share/man "$1"/usr/share/info "$1"/usr/share/locale "$1"/usr/share/lintian
rm -f "$1"/usr/sbin/update-ca-certificates "$1"/usr/bin/openssl "$1"/usr/bin/c_rehash
echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" >>"$1"/etc/passwd
echo "nonroot:x:65532:" >>"$1"/etc/group
mkdir -p "$1"/home/nonroot "$1"/tmp && chown 65532:65532 "$1"/home/nonroot && chmod 1777 "$1"/tmp
HOOKS
}

# npm_tarball VERSION:INTEGRITY OUT: the npm CLI's package from the npm
# registry (the machine's npm configuration names it, else
# registry.npmjs.org), checked against the integrity images.txt pins.
npm_tarball() {
  local version=${1%%:*} integrity=${1#*:} out=$2 registry=""
  command -v npm >/dev/null && registry=$(npm config get registry 2>/dev/null || true)
  registry=${registry:-https://registry.npmjs.org/}
  local url=${registry%/}/npm/-/npm-$version.tgz
  curl -fsSL --retry 3 -o "$out" "$url" || die "downloading npm $version from $url failed"
  local got; got=$(python3 -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$out")
  [ "$got" = "$integrity" ] || die "npm $version from $url is $got, but images.txt pins $integrity"
}

build_one() { # names suite arches variant packages [npm]
  local names=$1 suite=$2 arches=$3 variant=$4 pkgs=$5 npm=${6:-}
  # Keyed by content only: renaming an image or adding an alias reuses the build.
  local recipe=("$suite" "$arches" "$variant" "$pkgs" "$(mmdebstrap --version)" "$(declare -f rootfs)" $npm)
  [ "$variant" = distroless ] && recipe+=("$(distroless_hooks)")
  local k; k=$(key "$ENGINE_SRC/mkimage/main.go" -- "${recipe[@]}")
  local dir=$BOTCORE_CACHE/images/$k
  if [ -f "$dir/.complete" ]; then echo "$(trusted "$dir/layout") $names"; return; fi
  log "base image ${names%%,*} ($suite $variant; $arches) from Debian packages"
  rm -rf "$dir"; mkdir -p "$dir"
  local tgz=""
  if [ -n "$npm" ]; then tgz=$dir/npm.tgz; npm_tarball "$npm" "$tgz"; fi
  # One rootfs per image platform; "amd64+arm64" is a single amd64 platform.
  local platforms=() pids=() specs=() a t0=$SECONDS
  if [[ $arches == *+* ]]; then platforms=("$arches"); else platforms=(${arches//,/ }); fi
  for a in "${platforms[@]}"; do
    specs+=("linux/${a%%+*}=$dir/rootfs-$a.tar")
    if [ "$variant" = distroless ]; then
      # Chrootless runs of dpkg on one host collide; they take seconds anyway.
      timed_rootfs "$suite" "$a" "$variant" "$pkgs" "$dir" || mmdebstrap_failed "$a"
    else
      timed_rootfs "$suite" "$a" "$variant" "$pkgs" "$dir" "$tgz" &
      pids+=("$!:$a")
    fi
  done
  local p
  for p in "${pids[@]}"; do wait "${p%%:*}" || mmdebstrap_failed "${p#*:}"; done
  local cmd=(-cmd bash) t1=$SECONDS
  [ "$variant" = distroless ] && cmd=()
  logged "mkimage-${k}" "$bin/mkimage" -out "$dir/layout" "${cmd[@]}" "${specs[@]}"
  rm -f "$dir"/rootfs-*.tar "$dir/npm.tgz"
  local took=""
  for a in "${platforms[@]}"; do took+="$a $(cat "$dir/seconds-$a") s, "; done
  note "base image ${names%%,*}: $((SECONDS - t0)) s (root filesystems: ${took%, }; layout $((SECONDS - t1)) s)"
  touch "$dir/.complete"
  echo "$(trusted "$dir/layout") $names"
}

# Built once, before the parallel image jobs below use it.
[ -z "$(host_certs)" ] || trustlayer_bin >/dev/null

# Two images at a time, in images.txt's order (longest first): an arm64 root
# filesystem builds under QEMU on one core while its amd64 twin finishes
# early, so a second image fills the gap, and the short ones fill the end.
jobs=0
while read -r names suite arches variant pkgs npm; do
  if [ "$jobs" -ge 2 ]; then wait -n || exit 1; jobs=$((jobs - 1)); fi
  build_one "$names" "$suite" "$arches" "$variant" "$pkgs" "$npm" &
  jobs=$((jobs + 1))
done < <(grep -vE '^\s*(#|$)' "$ENGINE_SRC/images.txt")
while [ "$jobs" -gt 0 ]; do wait -n || exit 1; jobs=$((jobs - 1)); done
