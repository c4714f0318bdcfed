#!/bin/sh
# berth's main job end to end, offline: build berth, make a base image from
# Debian's busybox-static (`berth import`), run it with a memory and pid
# limit, copy a file in (`berth cp`), change a setting (`berth exec`),
# `berth commit`, start a registry on loopback (Debian's docker-registry),
# `berth push`, remove the local image, `berth pull` it back, run it and show
# the change is there. Then the same rootfs as a raw OCI bundle through
# berth-runtime.
# Usage: sudo scripts/demo.sh
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release -p berth -p berth-runtime
BIN="$PWD/target/release"
WORK="$(mktemp -d /tmp/berth-demo.XXXXXX)"
REG_PID=""
cleanup() {
    # Containers, the store's bridge and firewall table, images: all gone.
    "$BIN/berth" --root "$WORK/store" system reset -f >/dev/null 2>&1 || true
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
berth() { "$BIN/berth" --root "$WORK/store" "$@"; }

# A busybox rootfs: the static binary, every applet as a link, passwd/group.
R="$WORK/bundle/rootfs"
mkdir -p "$R/bin" "$R/etc" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/root"
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -f "$R/bin/busybox" "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"

echo "== berth import: the rootfs as a one-layer base image"
tar -C "$R" -c . | berth import --change 'CMD ["sh"]' - demo/busybox:1
berth images

echo "== berth run -d: a container with 64 MiB of memory and 20 pids"
berth run -d --name demo -m 64m --pids-limit 20 demo/busybox:1 sleep 3600
berth ps
berth exec demo sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'

echo "== berth cp: a file in; berth exec: a setting changed"
printf 'greeting=hello\n' > "$WORK/app.conf"
berth cp "$WORK/app.conf" demo:/etc/app.conf
berth exec demo sh -c 'sed -i s/hello/hello-from-berth/ /etc/app.conf'
berth diff demo

echo "== berth commit"
berth commit -m "app config" -c 'CMD ["cat", "/etc/app.conf"]' demo demo/app:1
berth rm -f demo

echo "== a registry on loopback (Debian's docker-registry)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$WORK/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$PORT
YML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done

echo "== berth push, rmi, pull, run"
berth tag demo/app:1 "127.0.0.1:$PORT/team/app:1"
berth push "127.0.0.1:$PORT/team/app:1"
berth rmi "127.0.0.1:$PORT/team/app:1" demo/app:1 >/dev/null
berth images
berth pull "127.0.0.1:$PORT/team/app:1"
berth run --rm "127.0.0.1:$PORT/team/app:1"

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
