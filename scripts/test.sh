#!/bin/sh
# The whole test suite: unit tests and root integration tests.
# Usage: sudo scripts/test.sh   (run from the repository root)
set -eu
cd "$(dirname "$0")/.."
cargo build --workspace --bins
exec cargo test --workspace "$@"
