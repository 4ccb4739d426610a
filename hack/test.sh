#!/usr/bin/env bash
# The project's test command (README, .ci/run): brings up whatever is missing
# (Debian packages, the hermetic Dagger engine, base images) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/engine/up.sh
export GOFLAGS=${GOFLAGS:--mod=readonly}

echo "==> go vet"
go vet ./...
echo "==> go test"
go test -count=1 -timeout 75m ./...
