#!/bin/sh
# berth's main job end to end, offline: build berth-runtime, make a busybox
# bundle from Debian's busybox-static, run a container in it.
# Usage: sudo scripts/demo.sh
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release -p berth-runtime
BIN="$PWD/target/release/berth-runtime"
WORK="$(mktemp -d /tmp/berth-demo.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
# A busybox rootfs: the static binary, every applet as a link, passwd/group.
R="$WORK/bundle/rootfs"
mkdir -p "$R/bin" "$R/etc" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/root"
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -f "$R/bin/busybox" "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"
cd "$WORK/bundle"
"$BIN" spec
# Non-interactive, with limits: 64 MiB of memory, 20 pids.
python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "echo hello from a berth container; hostname; id; "
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"]
c["linux"]["resources"] = {"memory": {"limit": 67108864}, "pids": {"limit": 20}}
json.dump(c, open("config.json", "w"), indent=2)
PY
"$BIN" --root "$WORK/state" run "demo-$$"
