#!/usr/bin/env bash
# Stops the hermetic engine and the local registry started by up.sh.
#   --engine-only   leave the registry running
source "$(dirname "$0")/lib.sh"

stop() { # name pidfile timeout-seconds
  local pidf=$2 pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $1 (pid $pid)"
    # The engine is the child of `unshare`; SIGTERM to it lets it shut down
    # cleanly, and its PID namespace takes its containers with it.
    local target; target=$(pgrep -P "$pid" | head -1 || true)
    kill -TERM "${target:-$pid}" 2>/dev/null || true
    local i
    for i in $(seq $(($3 * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      note "$1 still running after $3 s: killing it"
      kill -KILL "${target:-$pid}" "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidf"
}

# Never stop what a concurrent up.sh is starting; up.sh itself, holding the
# lock already, says so when it restarts the engine.
if [ -z "${BOTCORE_UP_LOCK_HELD:-}" ]; then
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/up.lock"
  flock 9
fi

stop engine "$RUN_DIR/engine.pid" 30
rm -f "$RUN_DIR/engine.conf" "$ENGINE_SOCK"
if [ "${1:-}" != --engine-only ]; then
  stop registry "$RUN_DIR/registry.pid" 5
  rm -f "$RUN_DIR/registry.pushed"
fi
