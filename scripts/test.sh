#!/bin/bash
# The whole test suite: unit tests and the root integration tests (real
# containers, Podman driving berth-runtime, a pure-cgroup-v2 kernel under qemu,
# a real registry on loopback).
# Usage: sudo scripts/test.sh [cargo test args]   (from anywhere; needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
# The S3 storage tests start this Garage binary (they fail without it).
BERTH_GARAGE="$(scripts/garage.sh)"
export BERTH_GARAGE
cargo build --workspace --bins
log="$(mktemp /tmp/berth-test.XXXXXX)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$rc"
