#!/bin/sh
# berth's main job end to end, offline, as far as it exists today: build berth
# and berth-runtime, make a base image from Debian's busybox-static
# (`berth import`), run it with memory and pid limits (`berth run`), and run
# the same rootfs as a raw OCI bundle with berth-runtime.
# Usage: sudo scripts/demo.sh
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release -p berth -p berth-runtime
BIN="$PWD/target/release"
WORK="$(mktemp -d /tmp/berth-demo.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
# A busybox rootfs: the static binary, every applet as a link, passwd/group.
R="$WORK/bundle/rootfs"
mkdir -p "$R/bin" "$R/etc" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/root"
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -f "$R/bin/busybox" "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"

echo "== berth import: the rootfs as a one-layer image"
tar -C "$R" -c . | "$BIN/berth" --root "$WORK/store" import --change 'CMD ["sh"]' - demo/busybox:1
"$BIN/berth" --root "$WORK/store" images

echo "== berth run: the image with 64 MiB of memory and 20 pids"
"$BIN/berth" --root "$WORK/store" run --rm -m 64m --pids-limit 20 demo/busybox:1 \
    sh -c 'echo hello from a berth container; id; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'

echo "== berth-runtime run: the same rootfs as an OCI bundle"
cd "$WORK/bundle"
"$BIN/berth-runtime" spec
python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "echo hello from berth-runtime; hostname"]
c["linux"]["resources"] = {"memory": {"limit": 67108864}, "pids": {"limit": 20}}
json.dump(c, open("config.json", "w"), indent=2)
PY
"$BIN/berth-runtime" --root "$WORK/state" run "demo-$$"
"$BIN/berth" --root "$WORK/store" rmi demo/busybox:1 >/dev/null
