#!/usr/bin/env bash
# The project's test command (README, .ci/run): brings up whatever is missing
# (Debian packages, the hermetic Dagger engine, base images) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# The e2e suite writes ~10-15 GiB: room for it, so the engine never collects mid-run.
hack/engine/up.sh --room 20
export GOFLAGS=${GOFLAGS:--mod=readonly}
# Trivy's packages need the json/v2 experiment; set it for every build so the
# build cache is shared between vet, test and the binaries tests build.
export GOEXPERIMENT=jsonv2
# botcore is a static binary (the e2e tests hand one to build-all --tool, as
# the workflow does): building everything without cgo lets that build reuse
# what vet and the unit tests compiled.
export CGO_ENABLED=0

# pipelines/ is its own module (the Dagger module imports it and must stay
# light), so it is vetted and tested on its own.
echo "==> go vet"
go vet ./...
(cd pipelines && go vet ./...)
# The Dagger modules are their own Go modules; their generated client needs
# an engine session even in unit tests, which `dagger run` provides.
(cd ci && go vet ./...)
(cd modules/supplychain && go vet ./...)
echo "==> go test"
(cd pipelines && go test -count=1 ./...)
(cd ci && dagger run go test -count=1 ./...)
go test -count=1 -timeout 75m ./...
