#!/usr/bin/env bash
# Two CI jobs on one engine: the engine listens on TCP on the loopback and two
# clients run build-all at once, as two workflow runs would on a shared
# engine (docs/scaling.md). Job A releases the sources as they are, job B a
# commit with one changed file in python-ai-service. Prints each job's time
# alone (sequential, warm) and together; asserts only that both succeed.
#
#   hack/bench/shared-engine.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${BOTCORE_BENCH_TCP_PORT:-7733}
BOTCORE_ENGINE_TCP=127.0.0.1:$port hack/engine/up.sh --room 20
export _EXPERIMENTAL_DAGGER_RUNNER_HOST=tcp://127.0.0.1:$port

epoch=1700000000
source hack/bench/lib.sh
copy_sources "$work/a"
copy_sources "$work/b"
echo "# changed by hack/bench/shared-engine.sh $(date +%s%N)" >>"$work/b/examples/bot-core/python-ai-service/app/model.py"

job() { # a|b version
  local t0 t1
  t0=$(date +%s.%N)
  if ! dagger call --source "$work/$1" build-all --trivy-db "$work/trivy-db" --version "$2" \
      --source-date-epoch "$epoch" export --path "$work/out-$1-$2" >"$work/$1-$2.out" 2>"$work/$1-$2.err"; then
    tail -n 30 "$work/$1-$2.err" >&2
    echo "job $1 ($2): FAILED" >&2
    return 1
  fi
  t1=$(date +%s.%N)
  printf '%-48s %8.1f s\n' "job $1 ($2)" "$(echo "$t1 - $t0" | bc)"
}

echo "== warm-up (each job alone, through tcp://127.0.0.1:$port)"
job a v3.0.0
job b v3.0.0
echo "== both at once (new versions: labels change, layers do not)"
t0=$(date +%s.%N)
job a v3.0.1 & pa=$!
job b v3.0.1 & pb=$!
wait "$pa" && wait "$pb"
printf '%-48s %8.1f s\n' "both jobs, wall clock" "$(echo "$(date +%s.%N) - $t0" | bc)"
