#!/usr/bin/env bash
# Brings up the hermetic Dagger engine: Debian runtime packages, Dagger built
# from the Go module proxy, base images built from Debian packages and served
# by a registry on 127.0.0.1 as the engine's docker.io mirror, the Go SDK
# image, binfmt for arm64, the engine itself, and `dagger` on PATH.
# Idempotent: whatever is already built or running is reused.
# BOTCORE_ENGINE_TCP=127.0.0.1:PORT makes the engine also listen on TCP, for
# clients sharing it (_EXPERIMENTAL_DAGGER_RUNNER_HOST=tcp://127.0.0.1:PORT;
# hack/bench/shared-engine.sh); an engine started without it restarts.
source "$(dirname "$0")/lib.sh"

APT_PACKAGES=(runc dnsmasq-base iptables containernetworking-plugins
  mmdebstrap arch-test git ca-certificates curl iproute2 util-linux python3)
# arm64 runs under QEMU from this Debian suite, not the machine's own: trixie's
# QEMU 10 runs the same arm64 work 3 to 8 times faster than bookworm's 7.2
# (hack/bench/qemu.sh), and most of a cold bring-up and every arm64 build step
# is arm64 work. Only its static emulator is taken, into the cache: the
# machine's packages stay its own.
QEMU_SUITE=trixie
NEED_DISK_GIB=12
# The engine's own collection (GiB): it trims its cache after a session ends
# when the cache passes GC_MAX_GIB or the disk has less than GC_MIN_FREE_GIB
# free, and then sweeps it down to GC_MAX_GIB - GC_SWEEP_GIB in one go.
GC_RESERVED_GIB=15 GC_MAX_GIB=${BOTCORE_GC_MAX_GIB:-50} GC_MIN_FREE_GIB=10 GC_SWEEP_GIB=20
# What one run may write (--room) before that collection would start. Dagger
# v0.19.10 collects while other sessions run (the trigger is throttled to one a
# minute, so it lands in the next session), and a collection in the middle of a
# session can take a running function's return path with it ("failed to
# create synctarget dest file /.daggermod/output.json"): a test run must start
# with enough room that the engine never collects during it.

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

engine_alive() {
  running "$RUN_DIR/engine.pid" && [ -S "$ENGINE_SOCK" ]
}

registry_alive() {
  running "$RUN_DIR/registry.pid" && curl -fs -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/"
}

# Everything hack/engine is made from: any change takes the slow path below.
# The machine's CA certificates count too: the images carry them.
# shellcheck disable=SC2046 # one path per line, no spaces
recipe() { key "$ENGINE_SRC"/*.sh "$ENGINE_SRC"/images.txt "$ENGINE_SRC"/go.* "$ENGINE_SRC"/mkimage/*.go "$ENGINE_SRC"/trustlayer/*.go $(host_certs) -- "$REGISTRY_ADDR" "$(go_version)" "$ENGINE_STATE"; }

# Warm path: everything up and built from the current recipe. Answers in well
# under a second, so callers can run up.sh before every command.
fast_path() {
  engine_alive && registry_alive && [ -x /usr/local/bin/dagger ] && binfmt_ours &&
    [ "$(cat "$RUN_DIR/up.state" 2>/dev/null)" = "$(recipe)" ]
}

# Disk comes last: the machine's own prerequisites (kernel, port) are what a
# user must fix whatever the disk, and each check's error stays the same
# whether the disk happens to be nearly full or not.
preflight() {
  preflight_machine
  check_disk
}

free_gib() { df -P -BG "$BOTCORE_CACHE" | awk 'NR==2 {sub("G","",$4); print $4}'; }

check_disk() {
  local free_gib; free_gib=$(free_gib)
  if [ "$free_gib" -lt "$NEED_DISK_GIB" ] && [ ! -f "$(bin_dir)/.complete" ]; then
    die "only ${free_gib} GiB free on $(df -P "$BOTCORE_CACHE" | awk 'NR==2 {print $6}'); a cold bootstrap needs about ${NEED_DISK_GIB} GiB (binaries, images, engine state). Free space or set BOTCORE_CACHE to a larger disk."
  fi
  [ "$free_gib" -ge 2 ] || die "disk almost full: ${free_gib} GiB free on $BOTCORE_CACHE; the engine needs at least 2 GiB to run."
}

preflight_machine() {
  mkdir -p "$BOTCORE_CACHE" || die "cannot create $BOTCORE_CACHE; set BOTCORE_CACHE to a writable directory."
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
  grep -qw overlay /proc/filesystems || die "the kernel has no overlay filesystem; the engine needs it (modprobe overlay)."
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    modprobe binfmt_misc 2>/dev/null || true
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
      die "the kernel has no binfmt_misc support (mount -t binfmt_misc failed); linux/arm64 builds need it to run arm64 binaries under QEMU."
  fi
  if ! registry_alive; then
    # Our own registry whose pid file was lost (e.g. removed by hand): adopt it.
    local pid; pid=$(pgrep -f "crane registry serve --address $REGISTRY_ADDR --disk $BOTCORE_CACHE/registry" | head -1 || true)
    if [ -n "$pid" ]; then echo "$pid" >"$RUN_DIR/registry.pid"; rm -f "$RUN_DIR/registry.pushed"; return; fi
    local port=${REGISTRY_ADDR##*:}
    if ss -Hltn "sport = :$port" | grep -q .; then
      die "port $port is taken ($(ss -Hltnp "sport = :$port" | grep -o 'users:(([^)]*' | head -1 | cut -c9-)); the local registry needs $REGISTRY_ADDR. Stop that process or set BOTCORE_REGISTRY_ADDR=127.0.0.1:<free port>."
    fi
  fi
}

install_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  log "installing Debian packages: ${missing[*]}"
  logged apt-update apt-get update
  logged apt-install env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

qemu_interpreter() { echo "$BOTCORE_CACHE/tools/qemu-$QEMU_SUITE/aarch64-binfmt-P"; }

# The emulator from Debian's qemu-user package, fetched and checked by apt
# (the archive's signed Release files) with a private package list, so the
# machine's apt sources and packages are untouched. Fetched once: remove
# $BOTCORE_CACHE/tools/qemu-$QEMU_SUITE to take a newer one.
fetch_qemu() {
  local out; out=$(qemu_interpreter)
  [ -x "$out" ] && return
  log "fetching QEMU for arm64 from Debian $QEMU_SUITE (qemu-user's static aarch64 emulator)"
  local tmp; tmp=$(mktemp -d)
  mkdir -p "$tmp/sources" "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/deb"
  sources_for "$QEMU_SUITE" >"$tmp/sources/$QEMU_SUITE.sources"
  local apt=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$tmp/sources"
    -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache" -o APT::Sandbox::User=root
    -o Acquire::Check-Valid-Until=false -o Acquire::Languages=none)
  logged qemu-apt-update apt-get "${apt[@]}" update
  (cd "$tmp/deb" && logged qemu-download apt-get "${apt[@]}" download qemu-user)
  local deb; deb=$(ls "$tmp"/deb/qemu-user_*.deb)
  mkdir -p "$(dirname "$out")"
  # Named *-binfmt-P: Debian's QEMU then takes the argv[0] the kernel
  # preserves (the P flag) as the program's own.
  dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/qemu-aarch64 >"$out.tmp" &&
    [ -s "$out.tmp" ] || die "no usr/bin/qemu-aarch64 in $deb"
  chmod 0755 "$out.tmp"
  dpkg-deb -f "$deb" Version >"$out.version"
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
  note "QEMU $(cat "$out.version")"
}

binfmt_ours() {
  local f=/proc/sys/fs/binfmt_misc/qemu-aarch64
  [ -e "$f" ] && grep -qx enabled "$f" && grep -qx "interpreter $(qemu_interpreter)" "$f" && grep -q '^flags:.*F' "$f"
}

enable_binfmt() {
  fetch_qemu
  binfmt_ours && return
  local f=/proc/sys/fs/binfmt_misc/qemu-aarch64
  # Replaces any other aarch64 entry (binfmt-support's, qemu-user-static's).
  if [ -e "$f" ]; then echo -1 >"$f" || die "cannot remove the existing binfmt entry $f"; fi
  # An aarch64 ELF executable's header (QEMU's own entry); F (fix binary): the
  # kernel opens the emulator now, so it works inside containers that do not
  # have it, and Dagger treats arm64 as native; P keeps argv[0].
  printf ':qemu-aarch64:M:0:%s:%s:%s:PF' \
    '\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00' \
    '\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' \
    "$(qemu_interpreter)" >/proc/sys/fs/binfmt_misc/register ||
    die "registering $(qemu_interpreter) for arm64 with binfmt_misc failed"
  binfmt_ours || die "binfmt qemu-aarch64 is not registered as expected (see $f)"
}

start_registry() {
  local bin=$1
  if ! registry_alive; then
    log "starting registry on $REGISTRY_ADDR"
    mkdir -p "$BOTCORE_CACHE/registry" "$RUN_DIR/logs"
    rm -f "$RUN_DIR/registry.pushed"
    setsid "$bin/crane" registry serve --address "$REGISTRY_ADDR" --disk "$BOTCORE_CACHE/registry" \
      >"$RUN_DIR/logs/registry.log" 2>&1 </dev/null 9>&- &
    echo $! >"$RUN_DIR/registry.pid"
    local i
    for i in $(seq 50); do registry_alive && break; sleep 0.1; done
    registry_alive || { tail -n 20 "$RUN_DIR/logs/registry.log" >&2; die "the registry did not start (log: $RUN_DIR/logs/registry.log)"; }
  fi
  touch "$RUN_DIR/registry.pushed"
}

# push_image BIN LAYOUT NAMES: pushes a layout under its names unless this
# registry process has it already. crane's registry keeps manifests in
# memory, so a restarted registry takes every image again (blobs are on disk:
# a re-push only sends manifests).
push_image() {
  local bin=$1 layout=$2 names=$3 n
  grep -qxF "$layout $names" "$RUN_DIR/registry.pushed" && return
  for n in ${names//,/ }; do
    logged "push-${n//[\/:]/_}" "$bin/crane" push --index "$layout" "$REGISTRY_ADDR/$n"
  done
  echo "$layout $names" >>"$RUN_DIR/registry.pushed"
}

push_images() { # bin: whatever images.list has that the registry has not
  local layout names
  while read -r layout names; do push_image "$1" "$layout" "$names"; done <"$RUN_DIR/images.list"
}

# ensure_room GIB: leave room for a run that writes GIB without reaching the
# engine's collection thresholds, by collecting now, while no session runs:
# the engine restarts (2 s) with its thresholds lowered by GIB, applies them
# (`local-cache prune --use-default-policy`: least recently used first, and
# nothing when already under them) and restarts with its own. Only the engine
# knows what its cache holds (a du also counts image blobs and metadata), so
# with a GIB it always does this; without, only when the disk is already
# below the engine's minimum free space.
ensure_room() {
  local room=$1 free where
  free=$(free_gib)
  where=$(df -P "$BOTCORE_CACHE" | awk 'NR==2 {print $6}')
  [ "$room" -eq 0 ] && [ "$free" -ge "$GC_MIN_FREE_GIB" ] && return
  local max=$((GC_MAX_GIB - room)) min_free=$((GC_MIN_FREE_GIB + room))
  log "making room for $room GiB ($free GiB free on $where): collecting the engine's cache to at most $max GiB, leaving $min_free GiB free"
  local args; read -r -a args <"$RUN_DIR/engine.args"
  start_engine "${args[@]}" "$(gc_policy "$max" "$min_free")" "to collect its cache"
  logged prune /usr/local/bin/dagger --progress=plain core engine local-cache prune --use-default-policy
  start_engine "${args[@]}" "" "with its own collection thresholds"
  local after; after=$(free_gib)
  note "$after GiB free on $where now (was $free)"
  [ "$after" -ge 2 ] || die "disk almost full: ${after} GiB free on $where even after collecting the engine's cache; free space elsewhere."
}

stop_engine() { BOTCORE_UP_LOCK_HELD=1 "$ENGINE_SRC/down.sh" --engine-only; }

# gc_policy MAX_USED MIN_FREE [SWEEP]: the engine's GC settings, in GiB.
gc_policy() {
  printf '{"reservedSpace": "%dGB", "maxUsedSpace": "%dGB", "minFreeSpace": "%dGB"%s}' \
    "$GC_RESERVED_GIB" "$1" "$2" "${3:+, \"sweepSize\": \"$3GB\"}"
}

start_engine() { # bin content digest [gc-policy [why a running engine restarts]]
  local bin=$1 content=$2 digest=$3 gc=${4:-$(gc_policy "$GC_MAX_GIB" "$GC_MIN_FREE_GIB" "$GC_SWEEP_GIB")}
  local conf; conf="$bin $digest $REGISTRY_ADDR $(key "$ENGINE_SRC/engine-ns.sh" -- "$gc") $ENGINE_STATE ${BOTCORE_ENGINE_TCP:-}"
  if engine_alive && [ "$(cat "$RUN_DIR/engine.conf" 2>/dev/null)" = "$conf" ]; then return; fi
  engine_alive && { log "restarting the engine ${5:-because its recipe changed}"; stop_engine; }
  log "starting Dagger engine $DAGGER_VERSION (state: $ENGINE_STATE, log: $RUN_DIR/logs/engine.log)"
  mkdir -p /run/dagger "$RUN_DIR/ns" "$ENGINE_STATE/$DAGGER_VERSION"
  rm -f "$ENGINE_SOCK"
  # An engine killed mid-build leaves overlayfs work dirs behind whose
  # "incompat/volatile" marker makes the kernel refuse the next mount of that
  # snapshot ("failed to mount ... invalid argument"). The engine mounts in its
  # own namespace, so with it down nothing is mounted and they are all stale.
  find "$ENGINE_STATE/$DAGGER_VERSION/worker/snapshots/snapshots" -mindepth 3 -maxdepth 3 \
    -path '*/work/work' -type d -exec rm -rf {} + 2>/dev/null || true
  # Own mount namespace: the engine's host-file rewrites stay private.
  # Own PID namespace: when the engine exits, every container it left dies too.
  BOTCORE_ENGINE_GC=$gc setsid unshare --mount --propagation private --pid --fork --mount-proc --kill-child=SIGTERM \
    "$ENGINE_SRC/engine-ns.sh" "$bin" "$content" "$digest" \
    "$ENGINE_STATE/$DAGGER_VERSION" "$REGISTRY_ADDR" "$RUN_DIR/ns" "${BOTCORE_ENGINE_TCP:-}" \
    >"$RUN_DIR/logs/engine.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN_DIR/engine.pid"
  local i
  for i in $(seq 300); do
    [ -S "$ENGINE_SOCK" ] && break
    running "$RUN_DIR/engine.pid" || break
    sleep 0.1
  done
  if ! engine_alive; then
    tail -n 30 "$RUN_DIR/logs/engine.log" >&2
    die "the Dagger engine did not start (log: $RUN_DIR/logs/engine.log)"
  fi
  echo "$conf" >"$RUN_DIR/engine.conf"
  echo "$bin $content $digest" >"$RUN_DIR/engine.args"
}

install_cli() {
  local bin=$1
  # The CLI otherwise tries to pull registry.dagger.io/engine; Go SDK clients
  # otherwise download a CLI. This wrapper answers both.
  cat >/usr/local/bin/dagger.tmp <<SH
#!/bin/sh
# Installed by bot-core hack/engine/up.sh: the dagger CLI for the local hermetic engine.
export _EXPERIMENTAL_DAGGER_RUNNER_HOST="\${_EXPERIMENTAL_DAGGER_RUNNER_HOST:-unix://$ENGINE_SOCK}"
export DO_NOT_TRACK=1 DAGGER_NO_NAG=1
exec "$bin/dagger" "\$@"
SH
  chmod 0755 /usr/local/bin/dagger.tmp && mv /usr/local/bin/dagger.tmp /usr/local/bin/dagger
}

usage() { die "usage: hack/engine/up.sh [--room GIB]  (--room: collect the engine's cache now, so a run writing GIB does not make it collect mid-run)"; }

main() {
  local room=0
  case "${1:-}" in
    "") ;;
    --room) [[ "${2:-}" =~ ^[0-9]+$ ]] && [ $# -eq 2 ] || usage; room=$2 ;;
    *) usage ;;
  esac
  [ "$(id -u)" = 0 ] || die "hack/engine/up.sh must run as root: the engine needs mount namespaces, iptables and runc. Re-run with sudo."
  mkdir -p "$RUN_DIR" 2>/dev/null || die "cannot create $RUN_DIR; set BOTCORE_CACHE to a writable directory."
  exec 9>"$RUN_DIR/up.lock"
  flock 9
  if fast_path && [ -f "$RUN_DIR/engine.args" ]; then ensure_room "$room"; exit 0; fi
  local t0=$SECONDS t
  preflight
  t=$SECONDS; install_packages; took packages $t
  enable_binfmt
  # The base images (most of a cold bring-up, much of it arm64 under QEMU)
  # need only crane and mkimage: they build while Dagger compiles, and the Go
  # SDK image (which needs Dagger's codegen) after that, beside them.
  [ -x "$(bin_dir)/mkimage" ] || log "building crane and mkimage from the Go module proxy (the base images need them)"
  t=$SECONDS; "$ENGINE_SRC/build-binaries.sh" --image-tools >/dev/null; took "image tools" $t
  # The registry takes each base image as soon as it is built, so the pushes
  # overlap the builds still running instead of adding up at the end.
  local bin; bin=$(bin_dir)
  start_registry "$bin"
  t=$SECONDS
  : >"$RUN_DIR/images.list"
  # set -e: a failed build or push ends this subshell before its figure.
  ( "$ENGINE_SRC/base-images.sh" | while read -r layout names; do
      echo "$layout $names" >>"$RUN_DIR/images.list"
      push_image "$bin" "$layout" "$names"
    done
    echo $((SECONDS - t)) >"$RUN_DIR/images.seconds" ) &
  local images_pid=$!
  "$ENGINE_SRC/build-binaries.sh" >/dev/null || { wait "$images_pid" || true; exit 1; }
  took binaries $t
  t=$SECONDS; "$ENGINE_SRC/sdk-image.sh" >"$RUN_DIR/sdk.out" || { wait "$images_pid" || true; exit 1; }
  took "Go SDK image" $t
  wait "$images_pid" || exit 1
  STEPS+=("base images $(cat "$RUN_DIR/images.seconds") s (beside the binaries and the SDK image)")
  local content digest; read -r content digest <"$RUN_DIR/sdk.out"
  # The SDK image (Debian bookworm + the host's Go) doubles as the stand-in
  # for golang:1.26-bookworm, in which the pipeline builds the botcore CLI.
  echo "$content library/golang:1.26-bookworm" >>"$RUN_DIR/images.list"
  t=$SECONDS; push_images "$bin"; took registry $t
  t=$SECONDS; start_engine "$bin" "$content" "$digest"; took engine $t
  install_cli "$bin"
  recipe >"$RUN_DIR/up.state"
  ensure_room "$room"
  log "engine ready in $((SECONDS - t0)) s: dagger -> unix://$ENGINE_SOCK, docker.io mirror -> $REGISTRY_ADDR"
  local steps; steps=$(printf '%s, ' "${STEPS[@]}")
  note "where the time went: ${steps%, }"
}

# took NAME START: one step's seconds, for the figures the bring-up ends with.
STEPS=()
took() { STEPS+=("$1 $((SECONDS - $2)) s"); }

main "$@"
