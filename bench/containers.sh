#!/usr/bin/env bash
# Container benchmarks of berth against podman (and bare crun), in one run:
#   1. `run --rm IMAGE true` wall time: berth vs podman --network none vs crun run
#   2. 100 idle detached containers: total time to start them, and host memory
#      per container (monitor PSS + kernel slab + page tables + kernel stacks + percpu)
#   3. `commit` of a container with 100 MiB of new files: berth vs podman
# Writes its section of bench/RESULTS.md. Run as root. See bench/README.md.
#
# Env: RUNS (hyperfine runs, default 30), N (idle containers, default 100),
#      IDLE_ROUNDS (alternating rounds of the idle test, default 3; medians),
#      BENCH_WORK (scratch, default /tmp/berth-bench-containers), OUT (results file).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
RUNS=${RUNS:-30}
N=${N:-100}
IDLE_ROUNDS=${IDLE_ROUNDS:-3}
WORK=${BENCH_WORK:-/tmp/berth-bench-containers}
OUT=${OUT:-$HERE/RESULTS.md}
log() { printf '== %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in hyperfine podman crun jq python3; do
    command -v $t >/dev/null || { echo "missing $t: apt-get install $t" >&2; exit 1; }
done

log "build (release)"
(cd "$REPO" && cargo build --release -q -p berth)
BERTH="$REPO/target/release/berth"

rm -rf "$WORK"; mkdir -p "$WORK"
B="$BERTH --root $WORK/berth"
# Root here lacks CAP_SYS_RESOURCE: podman's default rlimits (nofile and nproc
# 1048576) cannot be set, so they are clamped like tests/tests/podman.rs does.
PUL="--ulimit nofile=1024:1024 --ulimit nproc=8192:8192"
# crun 1.8 refuses this hybrid cgroup host, so podman runs with runc here.
P="podman --root $WORK/podman --runroot $WORK/podman-run --storage-driver overlay --cgroup-manager cgroupfs --events-backend file --runtime runc"
cleanup() {
    $B rm -f $($B ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    $B system reset -f >/dev/null 2>&1 || true
    $P rm -af -t 0 >/dev/null 2>&1 || true
    $P system reset -f >/dev/null 2>&1 || true
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
$B import --change 'CMD ["sh"]' "$WORK/busybox.tar" bench/busybox >/dev/null
$P import --change 'CMD ["sh"]' "$WORK/busybox.tar" localhost/bench/busybox >/dev/null
# The bare runtime floor: a bundle like berth's, run by crun.
mkdir -p "$WORK/bundle"; cp -a "$R" "$WORK/bundle/rootfs"
(cd "$WORK/bundle" && crun spec && jq '.process.terminal=false | .process.args=["true"]' config.json > c && mv c config.json)

log "1. run --rm true ($RUNS runs each)"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$WORK/run.json" \
    -n berth "$B run --rm --network none bench/busybox true" \
    -n podman "$P run --rm --network none $PUL localhost/bench/busybox true" \
    -n crun "unshare -m --propagation private sh -c 'umount -l /sys/fs/cgroup/unified 2>/dev/null; exec crun --root $WORK/crun run -b $WORK/bundle bench-$$'" >&2
med() { jq -r --arg n "$1" '.results[] | select(.command==$n) | (.median*1000*10|round/10)' "$WORK/run.json"; }
RB=$(med berth); RP=$(med podman); RC=$(med crun)

mem_kb() { # slab + page tables + kernel stacks + percpu, kB
    awk '/^(Slab|PageTables|KernelStack|Percpu):/ {s+=$2} END {print s}' /proc/meminfo
}
pss_sum() { # total PSS (kB) of processes whose command line matches $1
    local s=0 p v
    for p in $(pgrep -f "$1" || true); do
        v=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup 2>/dev/null || echo 0)
        s=$((s + ${v:-0}))
    done
    echo $s
}
idle() { # $1 = name, $2 = command prefix, $3 = monitor pattern; prints "secs kb_per_container"
    sync; echo 3 > /proc/sys/vm/drop_caches; sleep 1
    local k0 t0 t1 k1 pss
    k0=$(mem_kb)
    t0=$(date +%s.%N)
    for i in $(seq "$N"); do $2 >/dev/null; done
    t1=$(date +%s.%N)
    sleep 2
    k1=$(mem_kb); pss=$(pss_sum "$3")
    python3 -c "print(f'{$t1-$t0:.2f} {(($k1-$k0)+$pss)/$N:.0f} {$pss/$N:.0f}')"
}
# IDLE_ROUNDS alternating rounds (berth, podman, berth, ...); medians. One
# round of 100 swung 0.16-0.34 in ratio between runs on this shared VM.
IB=(); IP=(); MBs=(); MPs=(); PBs=(); PPs=()
for r in $(seq "$IDLE_ROUNDS"); do
    log "2. $N idle containers, round $r: berth"
    read -r t m p < <(idle berth "$B run -d --network none bench/busybox sleep 100000" "berth-monitor")
    IB+=("$t"); MBs+=("$m"); PBs+=("$p")
    $B rm -f $($B ps -q) >/dev/null
    log "2. $N idle containers, round $r: podman"
    read -r t m p < <(idle podman "$P run -d --network none $PUL localhost/bench/busybox sleep 100000" "conmon")
    IP+=("$t"); MPs+=("$m"); PPs+=("$p")
    $P rm -af -t 0 >/dev/null
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
TB=$(median "${IB[@]}"); TP=$(median "${IP[@]}")
MB=$(median "${MBs[@]}"); MP=$(median "${MPs[@]}")
PB=$(median "${PBs[@]}"); PP=$(median "${PPs[@]}")

log "3. commit of 100 MiB of new files"
fill='for i in $(seq 100); do head -c 786432 /dev/urandom | base64 > /root/f$i; done; sync'
commit_time() { # $1 = cli, $2 = image, $3 = name, $4 = extra run flags
    $1 run -d $4 --name "$3" "$2" sleep 100000 >/dev/null
    $1 exec "$3" sh -c "$fill"
    local t0 t1
    t0=$(date +%s%N); $1 commit "$3" "$3-img" >/dev/null; t1=$(date +%s%N)
    $1 rm -f "$3" >/dev/null
    echo $(( (t1 - t0) / 1000000 ))
}
CB=(); CP=()
for r in 1 2 3; do
    CB+=("$(commit_time "$B" bench/busybox cb$r "--network none")")
    CP+=("$(commit_time "$P" localhost/bench/busybox cp$r "--network none $PUL")")
done
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
CBm=$(median3 "${CB[@]}"); CPm=$(median3 "${CP[@]}")

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
section=$(cat <<MD
<!-- containers.sh begin -->
## containers

Generated by \`bench/containers.sh\`; do not edit by hand.

- date: $(date); $(nproc) CPUs; berth git $(cd "$REPO" && git rev-parse --short HEAD) (release); $(podman --version); crun $(crun --version | head -1 | awk '{print $3}')
- image: busybox-static rootfs imported into both (\`berth import\` / \`podman import\`); both with \`--network none\`; podman with overlay storage, cgroupfs, file events, runc (crun 1.8 refuses this hybrid cgroup host; the crun floor runs in bench/runtime.sh's unshare wrapper, whose own ~3 ms are included)

| benchmark | berth | podman | ratio | crun run (floor) |
|---|---:|---:|---:|---:|
| \`run --rm IMAGE true\`, median ms ($RUNS runs) | $RB | $RP | $(ratio "$RB" "$RP") | $RC |
| start $N idle \`run -d\` containers, total s (median of $IDLE_ROUNDS rounds) | $TB | $TP | $(ratio "$TB" "$TP") | – |
| host memory per idle container, KiB (monitor PSS + slab + page tables + stacks + percpu) | $MB | $MP | $(ratio "$MB" "$MP") | – |
| of which the monitor's PSS, KiB (berth-monitor / conmon) | $PB | $PP | $(ratio "$PB" "$PP") | – |
| \`commit\` of 100 MiB of new files, median ms of 3 | $CBm | $CPm | $(ratio "$CBm" "$CPm") | – |

- berth \`run --rm\` over bare \`crun run\`: $(ratio "$RB" "$RC")× (target: within 2×; podman target ratio ≤ 0.20)
- idle rounds (s): berth ${IB[*]}; podman ${IP[*]}; memory per container (KiB): berth ${MBs[*]}; podman ${MPs[*]}
- commit runs (ms): berth ${CB[*]}; podman ${CP[*]}
<!-- containers.sh end -->
MD
)
python3 - "$OUT" "$section" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2]
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmark results\n"
pat = re.compile(r"<!-- containers.sh begin -->.*?<!-- containers.sh end -->", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
echo "$section"
