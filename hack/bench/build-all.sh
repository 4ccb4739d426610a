#!/usr/bin/env bash
# Benchmarks of `dagger call build-all` on the hermetic engine. Prints figures;
# asserts nothing. "Fresh engine" runs prune the engine's cache first (cache
# volumes too), as a new CI runner's engine is: with the tool given (built on
# the host, as the workflow does) and with the tool compiled in the engine
# (Trivy, Syft and cosign, ~12 min on 2 cores). This takes a while (about
# 45 min) and leaves the cache warm afterwards.
#
#   hack/bench/build-all.sh            all figures
#   BENCH_QUICK=1 hack/bench/build-all.sh   skip the cold runs
set -euo pipefail
cd "$(dirname "$0")/../.."
hack/engine/up.sh --room 20

epoch=1700000000
source hack/bench/lib.sh

build_all() { # extra args...
  dagger call --source "$src" build-all --trivy-db "$work/trivy-db" --version "${version:-v1.0.0}" --source-date-epoch "$epoch" "$@" export --path "$work/out"
}

prune() { dagger core engine local-cache prune >/dev/null 2>&1; }

# A private copy of the sources, so the one-file change never touches the checkout.
src=$work/src
copy_sources "$src"

# The tool as a CI runner hands it over: built on the host, where Go's
# caches are warm (setup-go's), instead of in a fresh engine.
seconds "host go build of the botcore tool (warm Go cache)" \
  env CGO_ENABLED=0 GOEXPERIMENT=jsonv2 GOFLAGS=-mod=readonly go build -ldflags "-s -w" -o "$work/botcore" ./cmd/botcore
with_tool() { dagger call --tool "$work/botcore" --source "$src" build-all --trivy-db "$work/trivy-db" \
  --version "${version:-v1.0.0}" --source-date-epoch "$epoch" "$@" export --path "$work/out"; }

echo "== build-all (3 services)"
if [ -z "${BENCH_QUICK:-}" ]; then
  prune; seconds "fresh engine, tool given, linux/amd64 only" with_tool --platforms linux/amd64
  prune; seconds "fresh engine, tool given, linux/amd64 + linux/arm64" with_tool
  prune; seconds "fresh engine, tool built in it, amd64 + arm64" build_all
else
  seconds "warm-up, linux/amd64 + linux/arm64" build_all
fi
seconds "no-change rerun" build_all
# Same sources, new version: every image differs only in its labels, so the
# layer analysis and the SBOM catalogs are the previous run's.
version=v1.0.1 seconds "new version, unchanged sources" build_all
# One comment line added to one source file of each service in turn: that
# service builds again (on both platforms), the others are cached.
for f in rust-core-engine/src/main.rs:// python-ai-service/app/model.py:# nextjs-ui-dashboard/app/page.js://; do
  echo "${f##*:} changed by hack/bench $(date +%s%N)" >>"$src/examples/bot-core/${f%%:*}"
  seconds "one-file change (${f%%/*})" build_all
done

echo "== supply-chain stages (keyless publish; go test -bench)"
GOEXPERIMENT=jsonv2 go test ./test/e2e -run '^$' -bench SupplyChainStages -benchtime 1x -timeout 60m | grep -E 'DB +total' || true

echo "== runtime image sizes (compressed layers + config, from release.json)"
python3 - "$work/out/release.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for s in m["services"]:
    for plat, size in sorted(s.get("sizes", {}).items()):
        print(f"{s['name']:<24} {plat:<12} {size/1e6:8.1f} MB")
PY

echo "== native toolchains on the host, same work (the physical floor)"
if command -v cargo >/dev/null; then
  rm -rf "$work/target"
  seconds "cargo build --release (rust-core-engine)" cargo build --release --locked --quiet \
    --manifest-path "$src/examples/bot-core/rust-core-engine/Cargo.toml" --target-dir "$work/target"
fi
if command -v npm >/dev/null; then
  seconds "npm ci (nextjs-ui-dashboard)" npm ci --no-audit --no-fund --prefix "$src/examples/bot-core/nextjs-ui-dashboard"
  seconds "next build (nextjs-ui-dashboard)" env NEXT_TELEMETRY_DISABLED=1 npm run build --prefix "$src/examples/bot-core/nextjs-ui-dashboard"
fi
if command -v python3 >/dev/null; then
  seconds "python venv + requirements (python-ai-service)" sh -c "python3 -m venv --without-pip '$work/venv'"
fi
