#!/bin/sh
# Prints the path of the Garage binary (the S3-compatible object store the
# registry's S3 backend is tested against), building it once per machine
# with `cargo install --locked garage` into a cache outside any clone
# (~15 min on 2 cores; later runs reuse it).
# Usage: scripts/garage.sh          (BERTH_GARAGE=/path/to/garage wins)
set -eu
VERSION=2.5.0
CACHE="${BERTH_CI_CACHE:-/var/cache/berth-ci}"
BIN="$CACHE/garage/bin/garage"
if [ -n "${BERTH_GARAGE:-}" ]; then
    if [ -x "$BERTH_GARAGE" ]; then
        echo "$BERTH_GARAGE"
        exit 0
    fi
    echo "scripts/garage.sh: BERTH_GARAGE=$BERTH_GARAGE is not an executable" >&2
    exit 1
fi
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -qF ":$VERSION"; then
    echo "$BIN"
    exit 0
fi
mkdir -p "$CACHE"
echo "scripts/garage.sh: building garage $VERSION into $CACHE/garage (once per machine)" >&2
CARGO_TARGET_DIR="$CACHE/garage-target" \
    cargo install --locked --quiet --version "$VERSION" garage --root "$CACHE/garage" >&2
"$BIN" --version >&2
echo "$BIN"
