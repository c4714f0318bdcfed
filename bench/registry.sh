#!/usr/bin/env bash
# `berth registry serve` against Debian's docker-registry (distribution 2.8),
# side by side in one run:
#   1. skopeo push and pull of an image with one 200 MiB layer (fresh
#      registry storage before every run)
#   2. curl GET of that blob: throughput, and the page-cache floor (cat)
#   3. manifest GET by tag under load: wrk, 32 connections, 10 s (req/s, p99)
#   4. RSS idle and after the load
# Writes its section of bench/RESULTS.md. Run as root.
# Env: RUNS (hyperfine runs, default 5), BENCH_WORK, OUT.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
RUNS=${RUNS:-5}
WORK=${BENCH_WORK:-/tmp/berth-bench-registry}
OUT=${OUT:-$HERE/RESULTS.md}
log() { printf '== %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in hyperfine skopeo docker-registry wrk curl jq python3; do
    command -v $t >/dev/null || { echo "missing $t (apt-get install it)" >&2; exit 1; }
done
log "build (release)"
(cd "$REPO" && cargo build --release -q -p berth)
BERTH="$REPO/target/release/berth"
rm -rf "$WORK"; mkdir -p "$WORK"
PB=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/dreg.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/dreg-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PD
YML
# start_berth / start_dreg: (re)start with empty storage; pids in files.
start_berth() {
    [ -f "$WORK/berth.pid" ] && kill "$(cat "$WORK/berth.pid")" 2>/dev/null && sleep 0.3 || true
    rm -rf "$WORK/berth-data"
    setsid "$BERTH" --root "$WORK/berth-data" registry serve --addr "127.0.0.1:$PB" >"$WORK/berth.log" 2>&1 &
    echo $! > "$WORK/berth.pid"
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PB/v2/" >/dev/null && return 0; sleep 0.05; done
    echo "berth registry did not start" >&2; return 1
}
start_dreg() {
    [ -f "$WORK/dreg.pid" ] && kill "$(cat "$WORK/dreg.pid")" 2>/dev/null && sleep 0.3 || true
    rm -rf "$WORK/dreg-data"
    setsid docker-registry serve "$WORK/dreg.yml" >"$WORK/dreg.log" 2>&1 &
    echo $! > "$WORK/dreg.pid"
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PD/v2/" >/dev/null && return 0; sleep 0.05; done
    echo "docker-registry did not start" >&2; return 1
}
cleanup() {
    for f in berth dreg; do [ -f "$WORK/$f.pid" ] && kill "$(cat "$WORK/$f.pid")" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
export -f start_berth start_dreg
export WORK BERTH PB PD

log "an image with one 200 MiB layer (OCI layout)"
mkdir -p "$WORK/rootfs"
head -c 209715200 /dev/urandom > "$WORK/rootfs/big"
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
"$BERTH" --root "$WORK/store" import "$WORK/rootfs.tar" bench/big:1 >/dev/null
"$BERTH" --root "$WORK/store" save --format oci-archive -o "$WORK/big.oci.tar" bench/big:1
SK="skopeo --insecure-policy"
start_berth; start_dreg

log "1. skopeo push (fresh storage each run) and pull"
hyperfine -N --runs "$RUNS" --export-json "$WORK/push.json" \
    --prepare "bash -c start_berth" -n berth-push \
    "$SK copy -q --dest-tls-verify=false oci-archive:$WORK/big.oci.tar docker://127.0.0.1:$PB/bench/big:1" \
    --prepare "bash -c start_dreg" -n dreg-push \
    "$SK copy -q --dest-tls-verify=false oci-archive:$WORK/big.oci.tar docker://127.0.0.1:$PD/bench/big:1" >&2
# Leave one copy in each for the pulls and the load.
start_berth; start_dreg
$SK copy -q --dest-tls-verify=false "oci-archive:$WORK/big.oci.tar" "docker://127.0.0.1:$PB/bench/big:1"
$SK copy -q --dest-tls-verify=false "oci-archive:$WORK/big.oci.tar" "docker://127.0.0.1:$PD/bench/big:1"
hyperfine -N --runs "$RUNS" --export-json "$WORK/pull.json" \
    --prepare "rm -rf $WORK/pulled" -n berth-pull \
    "$SK copy -q --src-tls-verify=false docker://127.0.0.1:$PB/bench/big:1 dir:$WORK/pulled" \
    --prepare "rm -rf $WORK/pulled" -n dreg-pull \
    "$SK copy -q --src-tls-verify=false docker://127.0.0.1:$PD/bench/big:1 dir:$WORK/pulled" >&2

log "2. curl GET of the blob"
LAYER=$($SK inspect --tls-verify=false "docker://127.0.0.1:$PB/bench/big:1" | jq -r '.Layers[0]')
BLOBFILE=$(find "$WORK/berth-data/blobs" -type f -name "${LAYER#sha256:}" | head -1)
speed() { curl -sfL -o /dev/null -w '%{speed_download}' "$1" || echo 0; }
for _ in 1 2; do speed "http://127.0.0.1:$PB/v2/bench/big/blobs/$LAYER" >/dev/null; done
CB=$(speed "http://127.0.0.1:$PB/v2/bench/big/blobs/$LAYER")
CD=$(speed "http://127.0.0.1:$PD/v2/bench/big/blobs/$LAYER")
echo "curl MB/s: berth $CB docker-registry $CD (layer $LAYER)" >&2
cat "$BLOBFILE" > /dev/null
t0=$(date +%s%N); cat "$BLOBFILE" > /dev/null; t1=$(date +%s%N)
SIZE=$(stat -c %s "$BLOBFILE")
FLOOR=$(python3 -c "print($SIZE/(($t1-$t0)/1e9))")
echo "page-cache floor: $FLOOR B/s ($BLOBFILE, $SIZE bytes)" >&2

log "3. manifest GET under load (wrk, 32 connections, 10 s)"
rss() { awk '/^VmRSS/ {print $2}' /proc/"$(cat "$WORK/$1.pid")"/status; }
RB0=$(rss berth); RD0=$(rss dreg)
cat > "$WORK/accept.lua" <<'LUA'
wrk.headers["Accept"] = "application/vnd.oci.image.manifest.v1+json"
LUA
wrkrun() { wrk -t2 -c32 -d10s --latency -s "$WORK/accept.lua" "$1" 2>&1; }
WB=$(wrkrun "http://127.0.0.1:$PB/v2/bench/big/manifests/1")
echo "$WB" >&2
RB1=$(rss berth)
WD=$(wrkrun "http://127.0.0.1:$PD/v2/bench/big/manifests/1")
echo "$WD" >&2
RD1=$(rss dreg)
rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
p99() { echo "$1" | awk '$1=="99%" {print $2}'; }

python3 - "$WORK" "$OUT" "$CB" "$CD" "$FLOOR" "$(rps "$WB")" "$(rps "$WD")" "$(p99 "$WB")" "$(p99 "$WD")" "$RB0" "$RD0" "$RB1" "$RD1" "$(cd "$REPO" && git rev-parse --short HEAD)" "$RUNS" <<'PY'
import json, re, sys, subprocess, datetime
work, out, cb, cd, floor, rb, rd, pb, pd, rb0, rd0, rb1, rd1, rev, runs = sys.argv[1:]
def med(f, n):
    for r in json.load(open(f"{work}/{f}.json"))["results"]:
        if r["command"] == n: return r["median"]
pb_, pd_ = med("push", "berth-push"), med("push", "dreg-push")
lb, ld = med("pull", "berth-pull"), med("pull", "dreg-pull")
mb = lambda x: float(x or 0) / 1e6
def div(a, b):
    a, b = float(a or 0), float(b or 0)
    return f"{a/b:.2f}" if b else "–"
sec = f"""<!-- registry.sh begin -->
## registry

Generated by `bench/registry.sh`; do not edit by hand.

- date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; berth git {rev} (release) vs Debian's docker-registry (distribution 2.8); skopeo, curl, wrk on loopback; an image with one 200 MiB gzip layer (random data); push on fresh storage each run, {runs} runs

| benchmark | berth registry | docker-registry | ratio |
|---|---:|---:|---:|
| skopeo push, median s | {pb_:.2f} | {pd_:.2f} | {pb_/pd_:.2f} |
| skopeo pull, median s | {lb:.2f} | {ld:.2f} | {lb/ld:.2f} |
| curl GET of the blob, MB/s | {mb(cb):.0f} | {mb(cd):.0f} | {div(cb, cd)} |
| manifest GET by tag, wrk 32 conns 10 s, req/s | {float(rb or 0):.0f} | {float(rd or 0):.0f} | {div(rb, rd)} |
| manifest GET p99 latency | {pb} | {pd} | – |
| RSS idle, KiB | {rb0} | {rd0} | {int(rb0)/int(rd0):.2f} |
| RSS after the load, KiB | {rb1} | {rd1} | {int(rb1)/int(rd1):.2f} |

- curl of the blob vs the page-cache floor (`cat` of the blob file): berth {div(float(cb) * 100, floor)}% of {mb(floor):.0f} MB/s (target >= 90%)
- targets: push/pull <= 0.8x docker-registry; manifest GET >= 3x req/s; idle RSS < 20 MiB
<!-- registry.sh end -->"""
try:
    text = open(out).read()
except FileNotFoundError:
    text = "# Benchmark results\n"
pat = re.compile(r"<!-- registry.sh begin -->.*?<!-- registry.sh end -->", re.S)
text = pat.sub(lambda m: sec, text) if pat.search(text) else text.rstrip() + "\n\n" + sec + "\n"
open(out, "w").write(text)
print(sec)
PY
