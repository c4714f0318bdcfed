#!/usr/bin/env bash
# `berth registry serve` against Debian's docker-registry (distribution 2.8),
# side by side in one run:
#   1. skopeo push and pull of an image with one 200 MiB layer (fresh
#      registry storage before every push), with the client floors: the same
#      skopeo copies without a registry (oci-archive: -> dir: for the push,
#      oci: layout -> dir: for the pull, on the same disk). The registry's
#      share of a push or pull is its median minus the floor's median. The
#      commands alternate: ROUNDS hyperfine rounds of RUNS runs each, every
#      command in every round; medians over all runs. Server CPU time per
#      push and per pull (utime+stime of the server process, untimed runs).
#   2. curl GET of that blob: throughput (median of 5, alternating), and the
#      page-cache floors: the file served by sendfile(2) over loopback
#      (bench/sendfile_serve.py) and read in 1 MiB reads, median of 5
#   3. manifest GET by tag under load: wrk, 32 connections, 10 s (req/s, p99)
#   4. RSS idle and after the load
# Writes its section of bench/RESULTS.md. Run as root.
# Env: ROUNDS (default 5), RUNS (runs per command and round, default 3),
#      BERTH_BIN (skip the cargo build), BENCH_WORK, OUT.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
ROUNDS=${ROUNDS:-5}
RUNS=${RUNS:-3}
WORK=${BENCH_WORK:-/tmp/berth-bench-registry}
OUT=${OUT:-$HERE/RESULTS.md}
log() { printf '== %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in hyperfine skopeo docker-registry wrk curl jq python3; do
    command -v $t >/dev/null || { echo "missing $t (apt-get install it)" >&2; exit 1; }
done
if [ -n "${BERTH_BIN:-}" ]; then
    BERTH=$BERTH_BIN
else
    log "build (release)"
    (cd "$REPO" && cargo build --release -q -p berth)
    BERTH="${CARGO_TARGET_DIR:-$REPO/target}/release/berth"
fi
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
    [ -n "${SFPID:-}" ] && kill "$SFPID" 2>/dev/null || true
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

# CPU time (utime+stime, ms) of a running server.
TCK=$(getconf CLK_TCK)
cpu_ms() { awk -v t="$TCK" '{print int(($14+$15)*1000/t)}' /proc/"$(cat "$WORK/$1.pid")"/stat; }
SRC="oci-archive:$WORK/big.oci.tar"
$SK copy -q "$SRC" "oci:$WORK/layout:1"
push() { $SK copy -q --dest-tls-verify=false "$SRC" "docker://127.0.0.1:$1/bench/big:1"; }
pull() { $SK copy -q --src-tls-verify=false "docker://127.0.0.1:$1/bench/big:1" "dir:$WORK/pulled"; }
# The destination is wiped and synced before every timed command (ext4
# with discard: creations right after a wipe wait on the journal otherwise).
WIPE="bash -c 'rm -rf $WORK/pulled $WORK/pushed; sync'"

log "1. skopeo push and pull, $ROUNDS rounds of $RUNS runs, with the client floors"
: > "$WORK/cpu.txt"
for r in $(seq "$ROUNDS"); do
    hyperfine -N --runs "$RUNS" --export-json "$WORK/push$r.json" \
        --prepare "bash -c 'start_berth; sync'" -n berth-push \
        "$SK copy -q --dest-tls-verify=false $SRC docker://127.0.0.1:$PB/bench/big:1" \
        --prepare "bash -c 'start_dreg; sync'" -n dreg-push \
        "$SK copy -q --dest-tls-verify=false $SRC docker://127.0.0.1:$PD/bench/big:1" \
        --prepare "$WIPE" -n floor-push \
        "$SK copy -q $SRC dir:$WORK/pushed" >&2
    # Server CPU of one push into a fresh server (its start included, a few ms).
    start_berth; start_dreg
    push "$PB"; push "$PD"
    echo "push berth $(cpu_ms berth)" >> "$WORK/cpu.txt"
    echo "push dreg $(cpu_ms dreg)" >> "$WORK/cpu.txt"
    # The pulls read what was just pushed.
    hyperfine -N --runs "$RUNS" --export-json "$WORK/pull$r.json" \
        --prepare "$WIPE" -n berth-pull \
        "$SK copy -q --src-tls-verify=false docker://127.0.0.1:$PB/bench/big:1 dir:$WORK/pulled" \
        --prepare "$WIPE" -n dreg-pull \
        "$SK copy -q --src-tls-verify=false docker://127.0.0.1:$PD/bench/big:1 dir:$WORK/pulled" \
        --prepare "$WIPE" -n floor-pull \
        "$SK copy -q oci:$WORK/layout:1 dir:$WORK/pulled" >&2
    for s in berth:$PB dreg:$PD; do
        n=${s%%:*}; c0=$(cpu_ms "$n"); rm -rf "$WORK/pulled"; pull "${s#*:}"
        echo "pull $n $(( $(cpu_ms "$n") - c0 ))" >> "$WORK/cpu.txt"
    done
done
cat "$WORK/cpu.txt" >&2

log "2. curl GET of the blob, and the page-cache floor"
LAYER=$($SK inspect --tls-verify=false "docker://127.0.0.1:$PB/bench/big:1" | jq -r '.Layers[0]')
BLOBFILE=$(find "$WORK/berth-data/blobs" -type f -name "${LAYER#sha256:}" | head -1)
[ -n "$BLOBFILE" ] || { echo "blob $LAYER not found under $WORK/berth-data/blobs" >&2; exit 1; }
speed() { curl -sf -o /dev/null -w '%{speed_download}\n' "$1"; }
BURL="http://127.0.0.1:$PB/v2/bench/big/blobs/$LAYER"
DURL="http://127.0.0.1:$PD/v2/bench/big/blobs/$LAYER"
# The kernel's own path from the page cache to a loopback socket: the same
# file served with sendfile(2) by bench/sendfile_serve.py.
PS=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$HERE/sendfile_serve.py" "$BLOBFILE" "$PS" & SFPID=$!
for _ in $(seq 50); do bash -c "exec 3<>/dev/tcp/127.0.0.1/$PS" 2>/dev/null && break; sleep 0.1; done
SURL="http://127.0.0.1:$PS/blob"
speed "$BURL" >/dev/null; speed "$DURL" >/dev/null; speed "$SURL" >/dev/null
: > "$WORK/curl-berth.txt"; : > "$WORK/curl-dreg.txt"; : > "$WORK/curl-sendfile.txt"
for _ in 1 2 3 4 5; do
    speed "$BURL" >> "$WORK/curl-berth.txt"
    speed "$DURL" >> "$WORK/curl-dreg.txt"
    speed "$SURL" >> "$WORK/curl-sendfile.txt"
done
kill "$SFPID" 2>/dev/null || true
# Reading the (page-cached) blob file in 1 MiB reads: bytes/s, median of 5.
FLOOR=$(python3 - "$BLOBFILE" <<'PY2'
import os, statistics, sys, time
p = sys.argv[1]
size = os.path.getsize(p)
def once():
    t = time.perf_counter()
    with open(p, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass
    return size / (time.perf_counter() - t)
once()
print(statistics.median(once() for _ in range(5)))
PY2
)
CB=$(sort -n "$WORK/curl-berth.txt" | sed -n 3p)
CD=$(sort -n "$WORK/curl-dreg.txt" | sed -n 3p)
CS=$(sort -n "$WORK/curl-sendfile.txt" | sed -n 3p)
echo "curl B/s: berth $(tr '\n' ' ' < "$WORK/curl-berth.txt"); docker-registry $(tr '\n' ' ' < "$WORK/curl-dreg.txt")" >&2
echo "page-cache floor: $FLOOR B/s ($BLOBFILE); sendfile server: $(tr '\n' ' ' < "$WORK/curl-sendfile.txt")" >&2

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

python3 - "$WORK" "$OUT" "$CB" "$CD" "$FLOOR" "$CS" "$(rps "$WB")" "$(rps "$WD")" "$(p99 "$WB")" "$(p99 "$WD")" "$RB0" "$RD0" "$RB1" "$RD1" "$(cd "$REPO" && git rev-parse --short HEAD)" "$ROUNDS" "$RUNS" <<'PY'
import json, re, sys, statistics, datetime
work, out, cb, cd, floor, cs, rb, rd, pb, pd, rb0, rd0, rb1, rd1, rev, rounds, runs = sys.argv[1:]
def med(kind, n):
    """Median of every run of command n over all rounds."""
    t = []
    for r in range(1, int(rounds) + 1):
        for x in json.load(open(f"{work}/{kind}{r}.json"))["results"]:
            if x["command"] == n:
                t += x["times"]
    return statistics.median(t)
cpu = {}
for line in open(f"{work}/cpu.txt"):
    k, n, v = line.split()
    cpu.setdefault((k, n), []).append(int(v))
cpu = {k: statistics.median(v) for k, v in cpu.items()}
mb = lambda x: float(x or 0) / 1e6
def div(a, b):
    a, b = float(a or 0), float(b or 0)
    return f"{a/b:.2f}" if b else "–"
rows = []
verdict = []
for kind in ("push", "pull"):
    b, d, f = med(kind, f"berth-{kind}"), med(kind, f"dreg-{kind}"), med(kind, f"floor-{kind}")
    sb, sd = b - f, d - f
    rows += [
        f"| skopeo {kind}, median s | {b:.3f} | {d:.3f} | {b/d:.2f} |",
        f"| {kind} client floor (no registry), median s | {f:.3f} | {f:.3f} | – |",
        f"| registry's share of the {kind} ({kind} − floor), s | {sb:.3f} | {sd:.3f} | {div(sb, sd) if sb > 0 and sd > 0 else '–'} |",
        f"| server CPU per {kind} (user+sys), ms | {cpu[(kind, 'berth')]:.0f} | {cpu[(kind, 'dreg')]:.0f} | {div(cpu[(kind, 'berth')], cpu[(kind, 'dreg')])} |",
    ]
    # The best the registry can do is a share of 0: the floor over the peer.
    best = f / d
    verdict.append(f"{kind} {b/d:.2f}x (registry share {div(sb, sd) if sb > 0 and sd > 0 else '–'}x of docker-registry's; "
                   f"the client floor alone is {best:.2f}x of docker-registry's whole {kind})")
table = "\n".join(rows)
sec = f"""<!-- registry.sh begin -->
## registry

Generated by `bench/registry.sh`; do not edit by hand.

- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; berth git {rev} (release) vs Debian's docker-registry (distribution 2.8); skopeo, curl, wrk on loopback; an image with one 200 MiB gzip layer (random data); push on fresh storage each run; {rounds} alternating rounds of {runs} runs per command, medians over all runs
- client floor: the same skopeo copy without a registry (push: `oci-archive:` → `dir:`; pull: `oci:` layout → `dir:`, same disk); the registry's share is the median minus the floor's median

| benchmark | berth registry | docker-registry | ratio |
|---|---:|---:|---:|
{table}
| curl GET of the blob, median of 5, MB/s | {mb(cb):.0f} | {mb(cd):.0f} | {div(cb, cd)} |
| manifest GET by tag, wrk 32 conns 10 s, req/s | {float(rb or 0):.0f} | {float(rd or 0):.0f} | {div(rb, rd)} |
| manifest GET p99 latency | {pb} | {pd} | – |
| RSS idle, KiB | {rb0} | {rd0} | {int(rb0)/int(rd0):.2f} |
| RSS after the load, KiB | {rb1} | {rd1} | {int(rb1)/int(rd1):.2f} |

- curl of the blob vs loopback disk-cache throughput, i.e. the same file served from the page cache to a loopback socket by sendfile(2) (bench/sendfile_serve.py, {mb(cs):.0f} MB/s, median of 5, interleaved): berth {float(cb) * 100 / float(cs):.0f}%, docker-registry {float(cd) * 100 / float(cs):.0f}% (target >= 90%)
- and vs reading the blob file in 1 MiB reads (no socket at all, {mb(floor):.0f} MB/s): berth {float(cb) * 100 / float(floor):.0f}%, docker-registry {float(cd) * 100 / float(floor):.0f}%
- targets: push/pull <= 0.8x docker-registry; manifest GET >= 3x req/s; idle RSS < 20 MiB
- against docker-registry: {"; ".join(verdict)}
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
