#!/usr/bin/env bash
# Brings up the hermetic Dagger engine: Debian runtime packages, Dagger built
# from the Go module proxy, base images built from Debian packages and served
# by a registry on 127.0.0.1 as the engine's docker.io mirror, the Go SDK
# image, binfmt for arm64, the engine itself, and `dagger` on PATH.
# Idempotent: whatever is already built or running is reused.
source "$(dirname "$0")/lib.sh"

APT_PACKAGES=(runc dnsmasq-base iptables containernetworking-plugins qemu-user-static
  binfmt-support mmdebstrap arch-test git ca-certificates curl iproute2 util-linux python3)
NEED_DISK_GIB=12
# What a test run writes between two of the engine's own collections (at most
# one a minute, after a session ends): the run starts with this much free.
HEADROOM_GIB=${BOTCORE_HEADROOM_GIB:-20}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

engine_alive() {
  running "$RUN_DIR/engine.pid" && [ -S "$ENGINE_SOCK" ]
}

registry_alive() {
  running "$RUN_DIR/registry.pid" && curl -fsS -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/"
}

# Everything hack/engine is made from: any change takes the slow path below.
# The machine's CA certificates count too: the images carry them.
# shellcheck disable=SC2046 # one path per line, no spaces
recipe() { key "$ENGINE_SRC"/*.sh "$ENGINE_SRC"/images.txt "$ENGINE_SRC"/go.* "$ENGINE_SRC"/mkimage/*.go "$ENGINE_SRC"/trustlayer/*.go $(host_certs) -- "$REGISTRY_ADDR" "$(go_version)"; }

# Warm path: everything up and built from the current recipe. Answers in well
# under a second, so callers can run up.sh before every command.
fast_path() {
  engine_alive && registry_alive && [ -x /usr/local/bin/dagger ] &&
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

enable_binfmt() {
  local f=/proc/sys/fs/binfmt_misc/qemu-aarch64
  if [ ! -e "$f" ] || ! grep -q enabled "$f"; then
    logged binfmt update-binfmts --enable qemu-aarch64
  fi
  # F (fix binary): the kernel opens the emulator at registration, so it works
  # inside containers that do not have it; Dagger treats arm64 as native then.
  grep -q '^flags:.*F' "$f" || die "binfmt qemu-aarch64 is registered without the F flag (see $f); re-register it with qemu-user-static's binfmt-support entry."
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
  # crane's registry keeps manifests in memory: push whatever this registry
  # process has not seen yet (blobs are on disk, so a re-push only sends manifests).
  local layout names n
  touch "$RUN_DIR/registry.pushed"
  while read -r layout names; do
    grep -qxF "$layout $names" "$RUN_DIR/registry.pushed" && continue
    for n in ${names//,/ }; do
      logged "push-${n//[\/:]/_}" "$bin/crane" push --index "$layout" "$REGISTRY_ADDR/$n"
    done
    echo "$layout $names" >>"$RUN_DIR/registry.pushed"
  done <"$RUN_DIR/images.list"
}

# The engine's GC policy (engine-ns.sh) trims its cache when it exceeds 40 GB
# or leaves less than 15 GB free, but only after a session ends; a machine
# whose disk filled up for other reasons, or a run that left no session end
# behind, gets the same policy applied now, before anything is built.
ensure_headroom() {
  local before; before=$(free_gib)
  [ "$before" -ge "$HEADROOM_GIB" ] && return
  log "only $before GiB free on $(df -P "$BOTCORE_CACHE" | awk 'NR==2 {print $6}'): pruning the engine's cache to its GC policy"
  logged prune /usr/local/bin/dagger --progress=plain core engine local-cache prune --use-default-policy
  local after; after=$(free_gib)
  note "$after GiB free now (engine state: $(du -sh "$BOTCORE_CACHE/engine-state" 2>/dev/null | cut -f1))"
  [ "$after" -ge 2 ] || die "disk almost full: ${after} GiB free on $BOTCORE_CACHE even after pruning the engine's cache; free space elsewhere."
}

stop_engine() { BOTCORE_UP_LOCK_HELD=1 "$ENGINE_SRC/down.sh" --engine-only; }

start_engine() {
  local bin=$1 content=$2 digest=$3
  local conf; conf="$bin $digest $REGISTRY_ADDR $(key "$ENGINE_SRC/engine-ns.sh" --)"
  if engine_alive && [ "$(cat "$RUN_DIR/engine.conf" 2>/dev/null)" = "$conf" ]; then return; fi
  engine_alive && { log "engine recipe changed: restarting"; stop_engine; }
  log "starting Dagger engine $DAGGER_VERSION (state: $BOTCORE_CACHE/engine-state, log: $RUN_DIR/logs/engine.log)"
  mkdir -p /run/dagger "$RUN_DIR/ns" "$BOTCORE_CACHE/engine-state/$DAGGER_VERSION"
  rm -f "$ENGINE_SOCK"
  # An engine killed mid-build leaves overlayfs work dirs behind whose
  # "incompat/volatile" marker makes the kernel refuse the next mount of that
  # snapshot ("failed to mount ... invalid argument"). The engine mounts in its
  # own namespace, so with it down nothing is mounted and they are all stale.
  find "$BOTCORE_CACHE/engine-state/$DAGGER_VERSION/worker/snapshots/snapshots" -mindepth 3 -maxdepth 3 \
    -path '*/work/work' -type d -exec rm -rf {} + 2>/dev/null || true
  # Own mount namespace: the engine's host-file rewrites stay private.
  # Own PID namespace: when the engine exits, every container it left dies too.
  setsid unshare --mount --propagation private --pid --fork --mount-proc --kill-child=SIGTERM \
    "$ENGINE_SRC/engine-ns.sh" "$bin" "$content" "$digest" \
    "$BOTCORE_CACHE/engine-state/$DAGGER_VERSION" "$REGISTRY_ADDR" "$RUN_DIR/ns" \
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

main() {
  [ "$(id -u)" = 0 ] || die "hack/engine/up.sh must run as root: the engine needs mount namespaces, iptables and runc. Re-run with sudo."
  mkdir -p "$RUN_DIR" 2>/dev/null || die "cannot create $RUN_DIR; set BOTCORE_CACHE to a writable directory."
  exec 9>"$RUN_DIR/up.lock"
  flock 9
  if fast_path; then ensure_headroom; exit 0; fi
  local t0=$SECONDS
  preflight
  install_packages
  enable_binfmt
  local bin; bin=$("$ENGINE_SRC/build-binaries.sh")
  # The SDK image and the base images are independent: build them side by side.
  "$ENGINE_SRC/sdk-image.sh" >"$RUN_DIR/sdk.out" &
  local sdk_pid=$!
  "$ENGINE_SRC/base-images.sh" >"$RUN_DIR/images.list" || { wait "$sdk_pid" || true; exit 1; }
  wait "$sdk_pid" || exit 1
  local content digest; read -r content digest <"$RUN_DIR/sdk.out"
  # The SDK image (Debian bookworm + the host's Go) doubles as the stand-in
  # for golang:1.26-bookworm, in which the pipeline builds the botcore CLI.
  echo "$content library/golang:1.26-bookworm" >>"$RUN_DIR/images.list"
  start_registry "$bin"
  start_engine "$bin" "$content" "$digest"
  install_cli "$bin"
  recipe >"$RUN_DIR/up.state"
  ensure_headroom
  log "engine ready in $((SECONDS - t0)) s: dagger -> unix://$ENGINE_SOCK, docker.io mirror -> $REGISTRY_ADDR"
}

main "$@"
