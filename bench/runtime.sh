#!/usr/bin/env bash
# Startup benchmark of berth-runtime against crun and runc: `run` (create + start + wait +
# delete) of a busybox /bin/true bundle with Docker's default hardening. Regenerates
# bench/RESULTS.md. See bench/README.md.
#
#   sudo bench/runtime.sh                 # RUNS=60 WARMUP=5, profile included
#   RUNS=100 bench/runtime.sh --no-profile
#
# Env: RUNS (default 60), WARMUP (5), BENCH_WORK (scratch dir, default /tmp/berth-bench),
#      OUT (results file, default bench/RESULTS.md), BERTH_RUNTIME_BIN (skip the cargo build).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
RUNS=${RUNS:-60}
WARMUP=${WARMUP:-5}
WORK=${BENCH_WORK:-/tmp/berth-bench}
OUT=${OUT:-$HERE/RESULTS.md}
PROFILE=1
for a in "$@"; do
    case $a in
        --no-profile) PROFILE=0 ;;
        -h|--help) sed -n 2,10p "$0"; exit 0 ;;
        *) echo "unknown argument: $a" >&2; exit 2 ;;
    esac
done

log() { printf '== %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "run as root (the runtimes need it)" >&2; exit 1; }

# ---------------------------------------------------------------- tools
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v crun >/dev/null || need+=(crun)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/bin/time ] || need+=(time)
command -v jq >/dev/null || need+=(jq)
command -v strace >/dev/null || need+=(strace)
command -v python3 >/dev/null || need+=(python3)
[ -e /bin/busybox ] || [ -e /usr/bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
BUSYBOX=/bin/busybox
[ -e $BUSYBOX ] || BUSYBOX=/usr/bin/busybox
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' \
    || { echo "$BUSYBOX is not static: apt-get install busybox-static" >&2; exit 1; }

# ---------------------------------------------------------------- build
if [ -n "${BERTH_RUNTIME_BIN:-}" ]; then
    BERTH=$BERTH_RUNTIME_BIN
else
    log "cargo build --release -p berth-runtime"
    (cd "$REPO" && cargo build --release -q -p berth-runtime)
    TARGET=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
    BERTH=$TARGET/release/berth-runtime
fi
[ -x "$BERTH" ] || { echo "no berth-runtime binary at $BERTH" >&2; exit 1; }
CRUN=$(command -v crun)
RUNC=$(command -v runc)

# ---------------------------------------------------------------- bundle
# Clean up what a previous (interrupted) run may have left, then start afresh.
for id in bb-berth bb-crun bb-runc; do
    "$BERTH" --root "$WORK/root-berth" delete --force "$id" >/dev/null 2>&1 || true
    "$RUNC" --root "$WORK/root-runc" delete --force "$id" >/dev/null 2>&1 || true
done
rm -rf "$WORK"
mkdir -p "$WORK"/{root-berth,root-crun,root-runc,out}
BUNDLE=$WORK/bundle
RF=$BUNDLE/rootfs
log "bundle in $BUNDLE"
# Same layout as tests/src/lib.rs make_busybox_rootfs.
for d in bin sbin usr/bin usr/sbin etc proc sys dev tmp root var/run run home; do
    mkdir -p "$RF/$d"
done
cp "$BUSYBOX" "$RF/bin/busybox"
"$BUSYBOX" --list-full | while read -r l; do
    [ -z "$l" ] || [ "$l" = bin/busybox ] && continue
    mkdir -p "$RF/$(dirname "$l")"
    [ -e "$RF/$l" ] || ln "$RF/bin/busybox" "$RF/$l"
done
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'daemon:x:1:1:daemon:/usr/sbin:/bin/false' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$RF/etc/passwd"
printf '%s\n' 'root:x:0:' 'daemon:x:1:' 'tty:x:5:' 'users:x:100:' 'nogroup:x:65534:' >"$RF/etc/group"
chmod 1777 "$RF/tmp"

# config.json: Docker's defaults (caps, masked/readonly paths, seccomp profile, no-new-privs),
# five namespaces (no user ns, no cgroup ns), the usual mounts, no terminal, cgroupsPath unset
# (each runtime picks its own default cgroup for the id).
jq -n --slurpfile seccomp "$HERE/docker-default-seccomp.json" '
def caps: ["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW",
           "CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE",
           "CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"];
{
  ociVersion: "1.0.2",
  process: {
    terminal: false,
    user: {uid: 0, gid: 0},
    args: ["/bin/true"],
    env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    cwd: "/",
    capabilities: {bounding: caps, effective: caps, permitted: caps},
    noNewPrivileges: true
  },
  root: {path: "rootfs", readonly: false},
  hostname: "bench",
  mounts: [
    {destination: "/proc", type: "proc", source: "proc", options: ["nosuid","noexec","nodev"]},
    {destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid","strictatime","mode=755","size=65536k"]},
    {destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]},
    {destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid","noexec","nodev","mode=1777","size=65536k"]},
    {destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid","noexec","nodev"]},
    {destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid","noexec","nodev","ro"]}
  ],
  linux: {
    namespaces: [{type: "pid"}, {type: "network"}, {type: "ipc"}, {type: "uts"}, {type: "mount"}],
    resources: {devices: [{allow: false, access: "rwm"}]},
    maskedPaths: ["/proc/asound","/proc/acpi","/proc/kcore","/proc/keys","/proc/latency_stats",
                  "/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi",
                  "/sys/firmware","/sys/devices/virtual/powercap"],
    readonlyPaths: ["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"],
    seccomp: $seccomp[0]
  }
}' >"$BUNDLE/config.json"

# crun 1.8 refuses hybrid cgroup hosts: give it a private mount namespace without the cgroup2
# mount. WRAP_FLOOR is the same wrapper around `true`, measured so its cost can be subtracted.
UNIFIED=/sys/fs/cgroup/unified
wrap() { echo "unshare -m --propagation private sh -c 'umount -l $UNIFIED 2>/dev/null; exec \"\$0\" \"\$@\"' $*"; }
CMD_BERTH="$BERTH --root $WORK/root-berth run -b $BUNDLE bb-berth"
CMD_CRUN=$(wrap "$CRUN --root $WORK/root-crun run -b $BUNDLE bb-crun")
CMD_RUNC="$RUNC --root $WORK/root-runc run -b $BUNDLE bb-runc"
CMD_FLOOR=$(wrap true)

# Smoke: each must exit 0 (and leave no container behind).
for c in "$CMD_BERTH" "$CMD_CRUN" "$CMD_RUNC"; do
    eval "$c" </dev/null || { echo "smoke run failed: $c" >&2; exit 1; }
done

[ -z "$(ls "$WORK/root-berth" | grep -v '^\.')" ] || { echo "berth-runtime left state behind" >&2; exit 1; }

# ---------------------------------------------------------------- timing
# One hyperfine run, all commands interleaved per benchmark (hyperfine runs them one after
# another). berth-runtime-cold removes its seccomp BPF cache before each run (crun and runc
# have no such cache and compile the profile with libseccomp on every run).
log "hyperfine --warmup $WARMUP --runs $RUNS"
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$WORK/out/hyperfine.json" \
    -n berth-runtime --prepare true "$CMD_BERTH" \
    -n berth-runtime-cold --prepare "rm -rf $WORK/root-berth/.cache" "$CMD_BERTH" \
    -n crun --prepare true "$CMD_CRUN" \
    -n runc --prepare true "$CMD_RUNC" \
    -n crun-wrapper-floor --prepare true "$CMD_FLOOR" >&2

# ---------------------------------------------------------------- peak RSS
# GNU time's %M is the max RSS over the process and the descendants it reaped: the runtime plus
# its intermediate/init children (the same process image until the exec of /bin/true, whose
# static busybox is small). Median of 5 runs.
rss() { # name prepare cmd...
    local n=$1 prep=$2; shift 2
    for _ in 1 2 3 4 5; do
        eval "$prep"
        /usr/bin/time -f %M -o "$WORK/out/rss.tmp" "$@" </dev/null >/dev/null
        cat "$WORK/out/rss.tmp"
    done | sort -n | sed -n 3p >"$WORK/out/rss-$n"
}
log "peak RSS"
rss berth-runtime : "$BERTH" --root "$WORK/root-berth" run -b "$BUNDLE" bb-berth
rss berth-runtime-cold "rm -rf $WORK/root-berth/.cache" \
    "$BERTH" --root "$WORK/root-berth" run -b "$BUNDLE" bb-berth
# time runs inside the wrapper so unshare/sh/umount are not counted.
rss crun : unshare -m --propagation private sh -c \
    "umount -l $UNIFIED 2>/dev/null; exec /usr/bin/time -f %M -o $WORK/out/rss.tmp \"\$0\" \"\$@\"" \
    "$CRUN" --root "$WORK/root-crun" run -b "$BUNDLE" bb-crun
rss runc : "$RUNC" --root "$WORK/root-runc" run -b "$BUNDLE" bb-runc

# ---------------------------------------------------------------- profile of berth-runtime
if [ "$PROFILE" = 1 ]; then
    PRUNS=$(( RUNS < 30 ? RUNS : 30 ))
    log "profile: variants (state root on tmpfs, no seccomp)"
    # fsync cost: the same run with the state root on a tmpfs (fsync is a no-op there).
    mkdir -p "$WORK/tmpfs-root"
    mount -t tmpfs -o size=16m tmpfs "$WORK/tmpfs-root"
    trap 'umount -l "$WORK/tmpfs-root" 2>/dev/null || true' EXIT
    mkdir -p "$WORK/bundle-noseccomp"
    jq --arg rf "$RF" 'del(.linux.seccomp) | .root.path = $rf' "$BUNDLE/config.json" \
        >"$WORK/bundle-noseccomp/config.json"
    hyperfine -N --warmup 3 --runs "$PRUNS" --export-json "$WORK/out/profile.json" \
        -n warm "$CMD_BERTH" \
        -n root-on-tmpfs "$BERTH --root $WORK/tmpfs-root run -b $BUNDLE bb-berth" \
        -n no-seccomp "$BERTH --root $WORK/root-berth run -b $WORK/bundle-noseccomp bb-berth" >&2

    # Kernel floor of a cgroup v1 attach: the first write of a pid to a cgroup.procs file waits
    # for an RCU grace period (percpu rwsem cgroup_threadgroup_rwsem taken for writing).
    log "profile: cgroup v1 attach floor"
    python3 - "$WORK/out/cgroup-attach.txt" <<'PY'
import os, sys, time
d = "/sys/fs/cgroup/pids/berth-bench-probe"
os.makedirs(d, exist_ok=True)
first, second = [], []
try:
    for _ in range(15):
        pid = os.fork()
        if pid == 0:
            time.sleep(0.3)
            os._exit(0)
        time.sleep(0.05)
        t0 = time.perf_counter()
        with open(d + "/cgroup.procs", "w") as f:
            f.write(str(pid))
        t1 = time.perf_counter()
        with open("/sys/fs/cgroup/pids/cgroup.procs", "w") as f:
            f.write(str(pid))
        t2 = time.perf_counter()
        os.waitpid(pid, 0)
        first.append((t1 - t0) * 1e3)
        second.append((t2 - t1) * 1e3)
finally:
    os.rmdir(d)
first.sort(); second.sort()
open(sys.argv[1], "w").write(f"{first[len(first)//2]:.2f} {second[len(second)//2]:.2f} {first[0]:.2f} {first[-1]:.2f}\n")
PY

    # Traced runs: only the syscalls of interest stop under strace (--seccomp-bpf), with
    # durations (-T), fd paths (-y) and timestamps; all processes (-f). Warm seccomp cache.
    log "profile: strace"
    TRACE=write,fsync,fdatasync,rename,renameat2,mkdir,mkdirat,rmdir,unlink,unlinkat,mount,umount2,pivot_root,unshare,setns,clone,clone3,fork,vfork,execve,prctl,seccomp,nanosleep,clock_nanosleep,mknodat,symlinkat,openat,exit_group
    for i in $(seq 1 15); do
        strace -f -T -y -q -ttt --seccomp-bpf -e trace=$TRACE -o "$WORK/out/strace-$i.txt" \
            "$BERTH" --root "$WORK/root-berth" run -b "$BUNDLE" bb-berth </dev/null
    done
    # One full trace (every syscall) for reading by hand.
    strace -f -T -y -tt -qq -o "$WORK/out/strace-full.txt" \
        "$BERTH" --root "$WORK/root-berth" run -b "$BUNDLE" bb-berth </dev/null
    if perf stat -e task-clock true >/dev/null 2>&1; then
        perf stat -r 20 -e task-clock,context-switches,cpu-migrations,page-faults \
            -o "$WORK/out/perf-stat.txt" \
            "$BERTH" --root "$WORK/root-berth" run -b "$BUNDLE" bb-berth </dev/null
    fi
fi

# ---------------------------------------------------------------- RESULTS.md
log "writing $OUT"
BERTH_REV=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(cd "$REPO" && git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    BERTH_REV="$BERTH_REV + uncommitted changes in crates/"
fi
export WORK RUNS WARMUP PROFILE OUT BERTH_REV BUNDLE CMD_BERTH CMD_CRUN CMD_RUNC CMD_FLOOR
export CRUN_V="$("$CRUN" --version | head -1), commit $("$CRUN" --version | sed -n 's/^commit: //p' | cut -c1-12)"
export RUNC_V="$("$RUNC" --version | head -1), $("$RUNC" --version | sed -n 's/^go: //p'), $("$RUNC" --version | sed -n 's/^libseccomp: /libseccomp /p')"
export HYPERFINE_V="$(hyperfine --version)"
python3 - <<'PY'
PY_REPORT_PLACEHOLDER
PY
cat "$OUT"
