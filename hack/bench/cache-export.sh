#!/usr/bin/env bash
# A cache that outlives an ephemeral runner: build-all exports the engine's
# cache to a registry (here the hermetic engine's, on 127.0.0.1:5000), the
# engine's cache is then emptied as a fresh runner's would be, and build-all
# runs again importing it. Dagger v0.19.10 reads the experimental
# _EXPERIMENTAL_DAGGER_CACHE_EXPORT_CONFIG / _IMPORT_CONFIG in the CLI (BuildKit
# registry cache, mode=max; removed in Dagger v0.21). Cache volumes are not
# part of it. Prints figures; asserts only that every run succeeds. Empties
# the engine's cache, so the next run of anything starts cold.
#
#   hack/bench/cache-export.sh             export, empty, import
#   BENCH_COLD=1 hack/bench/cache-export.sh  and then empty again and run without import
set -euo pipefail
cd "$(dirname "$0")/../.."
hack/engine/up.sh --room 20
ref=${BOTCORE_BENCH_CACHE_REF:-127.0.0.1:5000/bot-core/dagger-cache:bench}

epoch=1700000000
source hack/bench/lib.sh
copy_sources "$work/src"

build_all() {
  dagger call --source "$work/src" build-all --trivy-db "$work/trivy-db" --version v1.0.0 \
    --source-date-epoch "$epoch" export --path "$work/out"
}
prune() { dagger core engine local-cache prune >/dev/null 2>&1; }

# The export runs while the session closes; the CLI's default 10 s for that
# would end the run with "context deadline exceeded" (the export goes on).
exporting() { _EXPERIMENTAL_DAGGER_SHUTDOWN_TIMEOUT=30m _EXPERIMENTAL_DAGGER_CACHE_EXPORT_CONFIG="type=registry,ref=$ref,mode=max" build_all; }
importing() { _EXPERIMENTAL_DAGGER_CACHE_IMPORT_CONFIG="type=registry,ref=$ref" build_all; }

seconds "warm run, exporting the cache to $ref" exporting
repo=${ref#*/} repo=${repo%:*}
curl -fsS -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' \
  "http://${ref%%/*}/v2/$repo/manifests/${ref##*:}" | python3 -c '
import json, sys
m = json.load(sys.stdin)
blobs = m.get("layers") or m.get("manifests") or []
print("cache in the registry: %d blobs, %.1f MB" % (len(blobs), sum(b.get("size", 0) for b in blobs) / 1e6))'
prune
seconds "emptied engine, importing the cache" importing
if [ -n "${BENCH_COLD:-}" ]; then # the comparison: what a fresh runner pays today
  prune
  seconds "emptied engine, no import" build_all
fi
