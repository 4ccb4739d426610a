#!/usr/bin/env bash
# The arm64 emulator up.sh registers (Debian trixie's QEMU) against the one
# Debian bookworm ships, on the same arm64 root filesystem (the Python
# stand-in image from the local registry) and the same work: Python
# byte-compiling 120 standard library modules, the heart of an arm64 pip
# install, a shell loop, and starting a program, the stuff of maintainer
# scripts. Both emulators are run directly (not through binfmt). Prints
# figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
hack/engine/up.sh
source hack/engine/lib.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"
"$(bin_dir)/crane" export --platform linux/arm64 "$REGISTRY_ADDR/library/python:3.13-slim-trixie" - | tar -xf - -C "$root"

# bookworm's qemu-user-static, from the machine's own apt lists.
(cd "$work" && apt-get -o APT::Sandbox::User=root download qemu-user-static >/dev/null 2>&1) ||
  { apt-get update >/dev/null && (cd "$work" && apt-get -o APT::Sandbox::User=root download qemu-user-static >/dev/null); }
dpkg-deb --fsys-tarfile "$work"/qemu-user-static_*.deb | tar -xO ./usr/bin/qemu-aarch64-static >"$root/qemu-bookworm"
cp "$BOTCORE_CACHE/tools/qemu-trixie/aarch64-binfmt-P" "$root/qemu-trixie"
chmod 0755 "$root"/qemu-*
old=$(dpkg-deb -f "$work"/qemu-user-static_*.deb Version)
new=$(cat "$BOTCORE_CACHE/tools/qemu-trixie/aarch64-binfmt-P.version")

cat >"$root/compile.py" <<'PY'
import glob, os, py_compile, tempfile
out = tempfile.mkdtemp()
for n, f in enumerate(sorted(glob.glob("/usr/lib/python3.13/*.py"))[:120]):
    py_compile.compile(f, cfile=os.path.join(out, f"{n}.pyc"))
PY

timed() { # label command...: runs the command and prints how long it took
  local label=$1; shift
  local t0; t0=$(date +%s.%N)
  "$@" >/dev/null
  printf '%-58s %7.1f s\n' "$label" "$(echo "$(date +%s.%N) - $t0" | bc)"
}
starts() { local _; for _ in $(seq 100); do chroot "$root" "/$1" /bin/true; done; }

echo "== arm64 under QEMU: bookworm $old vs trixie $new"
for q in qemu-bookworm qemu-trixie; do
  timed "python3 byte-compiles 120 stdlib modules ($q)" chroot "$root" "/$q" /usr/bin/python3.13 /compile.py
done
for q in qemu-bookworm qemu-trixie; do
  timed "sh counts to 300000 ($q)" chroot "$root" "/$q" /bin/sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'
done
# What a maintainer script pays per command: the emulator's start.
for q in qemu-bookworm qemu-trixie; do
  timed "100 starts of /bin/true ($q)" starts "$q"
done
