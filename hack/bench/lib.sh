# Sourced by the hack/bench scripts: a scratch directory ($work, removed on
# exit) with the stand-in vulnerability database, private copies of the
# example sources, and the timing helper. No network here, so scans use a
# database written locally (the real scanner; one advisory for a package no
# image has).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
GOEXPERIMENT=jsonv2 go run ./test/trivydbtest/write-db "$work/trivy-db"

# copy_sources DIR: services.yaml and examples/, without build outputs, so
# a bench's changes never touch the checkout.
copy_sources() {
  mkdir -p "$1"
  tar --exclude=node_modules --exclude=.next --exclude=target -cf - services.yaml examples | tar -C "$1" -xf -
}

# seconds LABEL COMMAND...: runs COMMAND and prints how long it took; on
# failure, the end of its stderr and exit 1.
seconds() {
  local label=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$work/last.out" 2>"$work/last.err" || { tail -n 30 "$work/last.err" >&2; echo "$label: FAILED" >&2; exit 1; }
  t1=$(date +%s.%N)
  printf '%-52s %8.1f s\n' "$label" "$(echo "$t1 - $t0" | bc)"
}
