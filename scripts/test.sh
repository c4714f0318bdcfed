#!/bin/sh
# The whole test suite: unit tests and the root integration tests (real
# containers, Podman driving berth-runtime, a pure-cgroup-v2 kernel under qemu).
# Usage: sudo scripts/test.sh   (from anywhere; needs root)
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --workspace --bins
exec cargo test --workspace "$@"
