#!/usr/bin/env bash
# Networking benchmarks of berth against podman (netavark), in one run:
#   1. the cost of the default bridge on `run --rm IMAGE true`: (bridge minus
#      --network none) for berth and for podman, and their ratio
#   2. container-to-container TCP throughput over berth's bridge against two
#      plain network namespaces joined by a veth pair (iperf3 from Debian,
#      run in each container's network namespace with nsenter)
# Writes its section of bench/RESULTS.md. Run as root. See bench/README.md.
#
# Env: RUNS (hyperfine runs, default 30), SECS (iperf3 seconds, default 5),
#      ROUNDS (interleaved iperf3 rounds per pair, default 9),
#      BENCH_WORK (scratch, default /tmp/berth-bench-network), OUT (results file).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
RUNS=${RUNS:-30}
SECS=${SECS:-5}
ROUNDS=${ROUNDS:-9}
WORK=${BENCH_WORK:-/tmp/berth-bench-network}
OUT=${OUT:-$HERE/RESULTS.md}
log() { printf '== %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in hyperfine podman jq iperf3 nsenter; do
    command -v $t >/dev/null || { echo "missing $t: apt-get install $t" >&2; exit 1; }
done

log "build (release)"
(cd "$REPO" && cargo build --release -q -p berth -p berth-monitor)
BERTH="$REPO/target/release/berth"

rm -rf "$WORK"; mkdir -p "$WORK"
B="$BERTH --root $WORK/berth"
PUL="--ulimit nofile=1024:1024 --ulimit nproc=8192:8192"
P="podman --root $WORK/podman --runroot $WORK/podman-run --storage-driver overlay --cgroup-manager cgroupfs --events-backend file --runtime runc"
cleanup() {
    $B system reset -f >/dev/null 2>&1 || true
    $P rm -af -t 0 >/dev/null 2>&1 || true
    $P system reset -f >/dev/null 2>&1 || true
    ip netns del bnb-a 2>/dev/null || true
    ip netns del bnb-b 2>/dev/null || true
    pkill -f "iperf3 -s -p 5201 -1" 2>/dev/null || true
    umount -R "$WORK"/* 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log "busybox image for both"
R="$WORK/rootfs"
mkdir -p "$R/bin" "$R/etc" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/root"
cp /bin/busybox "$R/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -f "$R/bin/busybox" "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"; echo 'root:x:0:' > "$R/etc/group"
tar -C "$R" -cf "$WORK/busybox.tar" .
$B import "$WORK/busybox.tar" bench/busybox:1 >/dev/null
$P import "$WORK/busybox.tar" localhost/bench/busybox:1 >/dev/null
# Warm both: the first bridge run creates the bridge and the firewall table.
$B run --rm bench/busybox:1 true
$P run --rm $PUL localhost/bench/busybox:1 true

log "1. run --rm true: bridge vs --network none"
hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/lat.json" \
    -n "berth none" "$B run --rm --network none bench/busybox:1 true" \
    -n "berth bridge" "$B run --rm bench/busybox:1 true" \
    -n "podman none" "$P run --rm $PUL --network none localhost/bench/busybox:1 true" \
    -n "podman bridge" "$P run --rm $PUL localhost/bench/busybox:1 true" >&2
med() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$WORK/lat.json"; }
BN=$(med "berth none"); BB=$(med "berth bridge"); PN=$(med "podman none"); PB=$(med "podman bridge")
BD=$(echo "$BB - $BN" | bc -l); PD=$(echo "$PB - $PN" | bc -l)
RATIO=$(echo "$BD / $PD" | bc -l)

log "2. TCP throughput: berth bridge vs a plain veth pair"
# iperf3's server on CPU 0 and client on CPU 1 for both pairs: unpinned, the
# scheduler's placement of the two on 2 cores swung single runs by +-20%
# (ratios 0.70-1.04 in one series), pinned by +-4%.
PIN_S=""; PIN_C=""
if [ "$(nproc)" -ge 2 ]; then PIN_S="-A 0"; PIN_C="-A 1"; fi
iperf_between() { # netns-path-server netns-path-client server-ip
    nsenter --net="$1" iperf3 -s -p 5201 -1 $PIN_S >/dev/null 2>&1 &
    local spid=$!
    for _ in $(seq 50); do
        nsenter --net="$1" sh -c 'exec 3<>/dev/tcp/127.0.0.1/5201' 2>/dev/null && break
        sleep 0.1
    done
    nsenter --net="$2" iperf3 -c "$3" $PIN_C -p 5201 -t "$SECS" -J > "$WORK/iperf.json"
    wait $spid || true
    jq '.end.sum_received.bits_per_second / 1e9' "$WORK/iperf.json"
}
$B run -d --name srv bench/busybox:1 sleep 1d >/dev/null
$B run -d --name cli bench/busybox:1 sleep 1d >/dev/null
SPID=$($B inspect -f '{{.State.Pid}}' srv); CPID=$($B inspect -f '{{.State.Pid}}' cli)
SIP=$($B inspect -f '{{.NetworkSettings.IPAddress}}' srv)
ip netns add bnb-a; ip netns add bnb-b
ip link add bnbva type veth peer name bnbvb
ip link set bnbva netns bnb-a; ip link set bnbvb netns bnb-b
ip -n bnb-a addr add 198.18.201.1/24 dev bnbva; ip -n bnb-b addr add 198.18.201.2/24 dev bnbvb
for n in a b; do ip -n bnb-$n link set lo up; ip -n bnb-$n link set bnbv$n up; done
BRIDGE=(); PLAIN=()
# Interleaved, so drift in the machine's load hits both alike.
for i in $(seq "$ROUNDS"); do
    BRIDGE+=("$(iperf_between /proc/$SPID/ns/net /proc/$CPID/ns/net "$SIP")")
    PLAIN+=("$(iperf_between /run/netns/bnb-a /run/netns/bnb-b 198.18.201.1)")
done
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
TB=$(median "${BRIDGE[@]}"); TP=$(median "${PLAIN[@]}")
TR=$(echo "$TB / $TP" | bc -l)
# br_netfilter (loaded by Docker or Kubernetes set-ups) hands every bridged
# packet to the IP hooks; when it is on, the same pair once more with it
# off for the run (restored at once, and by the exit trap).
BRNF=/proc/sys/net/bridge/bridge-nf-call-iptables
BRNF_ROW=""
if [ -e "$BRNF" ] && [ "$(cat "$BRNF")" = 1 ]; then
    trap 'echo 1 > '"$BRNF"'; cleanup' EXIT
    BRIDGE0=(); PLAIN0=()
    echo 0 > "$BRNF"
    for i in $(seq "$ROUNDS"); do
        BRIDGE0+=("$(iperf_between /proc/$SPID/ns/net /proc/$CPID/ns/net "$SIP")")
        PLAIN0+=("$(iperf_between /run/netns/bnb-a /run/netns/bnb-b 198.18.201.1)")
    done
    echo 1 > "$BRNF"
    TB0=$(median "${BRIDGE0[@]}"); TP0=$(median "${PLAIN0[@]}")
    BRNF_ROW="This host has br_netfilter on (\`net.bridge.bridge-nf-call-iptables=1\`); with it off for a moment: bridge $(printf '%.2f' "$TB0") Gbit/s, plain veth $(printf '%.2f' "$TP0") Gbit/s, ratio **$(printf '%.3f' "$(echo "$TB0 / $TP0" | bc -l)")**."
fi

f() { printf '%.1f' "$1"; }
SECTION=$(cat <<EOF
<!-- network.sh begin -->
## Networking (bench/network.sh)

Generated by \`bench/network.sh\`; do not edit by hand. $(date -u +%F), $(nproc) cores, berth git $(cd "$REPO" && git rev-parse --short HEAD) (release), median of $RUNS runs (hyperfine -N), busybox image, podman $(podman --version | awk '{print $3}') with runc and netavark.

| run --rm true | --network none | default bridge | bridge cost |
|---|---|---|---|
| berth | $(f "$BN") ms | $(f "$BB") ms | **$(f "$BD") ms** |
| podman | $(f "$PN") ms | $(f "$PB") ms | $(f "$PD") ms |

Bridge cost berth / podman: **$(printf '%.3f' "$RATIO")** (target ≤ 0.333; goal < 10 ms).

| TCP throughput (iperf3, ${SECS} s, median of ${ROUNDS} interleaved; server pinned to CPU 0, client to CPU 1) | Gbit/s |
|---|---|
| container to container over berth's bridge | $(printf '%.2f' "$TB") |
| two plain namespaces, one veth pair | $(printf '%.2f' "$TP") |

Bridge / plain veth: **$(printf '%.3f' "$TR")** (target ≥ 0.9). Runs (Gbit/s): bridge ${BRIDGE[*]}; plain ${PLAIN[*]}.

$BRNF_ROW
<!-- network.sh end -->
EOF
)
echo "$SECTION"
python3 - "$OUT" "$SECTION" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2]
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmark results\n"
pat = re.compile(r"<!-- network.sh begin -->.*?<!-- network.sh end -->", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
