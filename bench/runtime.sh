#!/usr/bin/env bash
# Startup benchmark of berth-runtime against crun and runc: `run` (create + start + wait +
# delete) of a busybox /bin/true bundle with Docker's default hardening, then a profile of
# where berth-runtime's time goes. Regenerates bench/RESULTS.md. Run as root. See bench/README.md.
#
#   bench/runtime.sh                      # RUNS=100 WARMUP=5, profile included (~2 min)
#   RUNS=100 bench/runtime.sh --no-profile
#
# Env: RUNS (default 100), WARMUP (5), BENCH_WORK (scratch dir, default /tmp/berth-bench),
#      OUT (results file, default bench/RESULTS.md), BERTH_RUNTIME_BIN (skip the cargo build).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
RUNS=${RUNS:-100}
WARMUP=${WARMUP:-5}
WORK=${BENCH_WORK:-/tmp/berth-bench}
OUT=${OUT:-$HERE/RESULTS.md}
PROFILE=1
for a in "$@"; do
    case $a in
        --no-profile) PROFILE=0 ;;
        -h|--help) sed -n 2,11p "$0"; exit 0 ;;
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
! ldd "$BUSYBOX" >/dev/null 2>&1 \
    || { echo "$BUSYBOX is not static: apt-get install busybox-static" >&2; exit 1; }
if [ "$PROFILE" = 1 ] && ! command -v perf >/dev/null; then
    # Optional: without perf the profile falls back to strace's (inflated) durations.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null 2>&1 || true
fi

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
    PRUNS=$(( RUNS < 50 ? RUNS : 50 ))
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

    # Sporadic starts: the same three runs with 100 ms of idle before each (hyperfine's
    # back-to-back loop keeps caches, CPU clocks and the kernel's cgroup rwsem warm).
    log "profile: starts after 100 ms idle"
    hyperfine -N --warmup 2 --runs "$PRUNS" --export-json "$WORK/out/idle.json" \
        -n berth-runtime --prepare "sleep 0.1" "$CMD_BERTH" \
        -n crun --prepare "sleep 0.1" "$CMD_CRUN" \
        -n runc --prepare "sleep 0.1" "$CMD_RUNC" \
        -n crun-wrapper-floor --prepare "sleep 0.1" "$CMD_FLOOR" >&2

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
    # perf trace (tracepoints, no ptrace stops): durations of the costly syscalls, 15 runs.
    if perf trace -e write -o /dev/null true >/dev/null 2>&1; then
        log "profile: perf trace"
        for i in $(seq 1 15); do
            perf trace -o "$WORK/out/perftrace-$i.txt" \
                -e write,fsync,rmdir,unlinkat,unlink,rename,mount,umount2,pivot_root,clone,clone3,unshare,execve,prctl,nanosleep,clock_nanosleep,mkdir,mknodat,exit_group \
                -- "$BERTH" --root "$WORK/root-berth" run -b "$BUNDLE" bb-berth </dev/null >/dev/null
        done
    fi
    # The attach wait inside loops of 20 runs, back to back and with 100 ms idle between runs:
    # only writes of 0.3 ms or more are recorded, so tracing barely slows the loop.
    if perf trace -e write -o /dev/null true >/dev/null 2>&1; then
        perf trace -e write --duration 0.3 -o "$WORK/out/attach-b2b.txt" -- \
            sh -c "for i in \$(seq 20); do $CMD_BERTH </dev/null; done"
        perf trace -e write --duration 0.3 -o "$WORK/out/attach-idle.txt" -- \
            sh -c "for i in \$(seq 20); do sleep 0.1; $CMD_BERTH </dev/null; done"
        perf trace -e write --duration 0.3 -o "$WORK/out/attach-b2b-crun.txt" -- \
            sh -c "for i in \$(seq 20); do $CMD_CRUN </dev/null; done"
        perf trace -e write --duration 0.3 -o "$WORK/out/attach-b2b-runc.txt" -- \
            sh -c "for i in \$(seq 20); do $CMD_RUNC </dev/null; done"
        perf trace -e write --duration 0.3 -o "$WORK/out/attach-idle-crun.txt" -- \
            sh -c "for i in \$(seq 20); do sleep 0.1; $CMD_CRUN </dev/null; done"
        perf trace -e write --duration 0.3 -o "$WORK/out/attach-idle-runc.txt" -- \
            sh -c "for i in \$(seq 20); do sleep 0.1; $CMD_RUNC </dev/null; done"
    fi
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
import glob, json, os, re, statistics, subprocess

E = os.environ
W = E["WORK"]
O = W + "/out"
med = statistics.median


def ms(x):
    return x * 1e3


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


PT = re.compile(r"^\s*([\d.]+|\?) \(\s*([\d.]+)?\s*(?:ms)?\s*\): (\S+)/(\d+)\s+(?:\.\.\. \[continued\]: )?(\w+)\((.*)$")

def perf_run(path):
    ev = []
    for raw in open(path):
        m = PT.match(raw)
        if not m or m.group(2) is None:
            continue
        ts = float(m.group(1)) if m.group(1) != "?" else None
        ev.append((ts, float(m.group(2)), m.group(3), int(m.group(4)), m.group(5), m.group(6)))
    if not ev:
        return None
    main = ev[0][3]
    clones = [e for e in ev if e[3] == main and e[4] in ("clone", "clone3")]
    child_unshare = [e for e in ev if e[3] != main and e[4] == "unshare"]
    if not clones or not child_unshare:
        return None
    t_clone, t_unsh = clones[0][0], child_unshare[0][0]
    r = {}
    def add(k, v):
        r[k] = r.get(k, 0.0) + v
    nsleep = 0
    for ts, d, comm, pid, name, args in ev:
        if comm == "true" and name != "execve":
            continue
        if name == "write" and pid == main and ts is not None and t_clone < ts < t_unsh:
            add("attach", d)
        elif name == "fsync":
            add("fsync", d)
        elif name in ("rename",) or (name == "unlink" and pid == main):
            add("state_other", d)
        elif name == "unlinkat" and pid == main:
            add("state_rm", d)
        elif name == "rmdir" and pid == main:
            add("cg_rmdir", d)
        elif name == "mkdir" and pid == main:
            add("mkdir", d)
        elif name in ("mount", "umount2", "pivot_root", "mknodat") or (name == "unlinkat" and pid != main):
            add("rootfs", d)
        elif name in ("clone", "clone3"):
            add("clone", d)
        elif name == "unshare":
            add("unshare", d)
        elif name == "execve":
            add("exec_true", d)
        elif name == "prctl" and "SET_SECCOMP" in args:
            add("seccomp_load", d)
        elif name == "prctl":
            add("prctl", d)
        elif name in ("nanosleep", "clock_nanosleep"):
            add("sleep", d); nsleep += 1
        elif name == "write" and pid == main and ts is not None and ts < t_clone:
            add("pre_write", d)
    r["sleeps"] = nsleep
    r["wall"] = max(e[0] for e in ev if e[0] is not None)
    return r


hf = {r["command"]: r for r in json.load(open(O + "/hyperfine.json"))["results"]}
rss = {}
for n in ("berth-runtime", "berth-runtime-cold", "crun", "runc"):
    try:
        rss[n] = int(open(f"{O}/rss-{n}").read().split()[0])
    except (OSError, IndexError, ValueError):
        rss[n] = None

crun_med = hf["crun"]["median"]
runc_med = hf["runc"]["median"]
floor_med = hf["crun-wrapper-floor"]["median"]
berth_med = hf["berth-runtime"]["median"]
cold_med = hf["berth-runtime-cold"]["median"]

cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
L = []
p = L.append
p("# berth-runtime startup benchmark")
p("")
p("Generated by `bench/runtime.sh` (see bench/README.md); do not edit by hand.")
p("")
p(f"- date: {sh('date -u')}")
p(f"- machine: {sh('nproc')} CPUs, {cpu}, kernel {sh('uname -r')}; cgroups hybrid "
  "(v1 controllers + cgroup2 at /sys/fs/cgroup/unified); state roots on "
  f"{sh('df --output=fstype ' + W + ' | tail -1')}")
p(f"- berth-runtime: git {E['BERTH_REV']} (release build)")
p(f"- crun: {E['CRUN_V']}")
p(f"- runc: {E['RUNC_V']}")
p(f"- {E['HYPERFINE_V']}, `--warmup {E['WARMUP']} --runs {E['RUNS']}`, no intermediate shell (`-N`)")
p("")
p("Workload: `run` (create + start + wait + delete) of a busybox bundle whose process is "
  "`/bin/true`: pid/mount/uts/ipc/network namespaces, proc, /dev tmpfs, devpts, shm, mqueue, "
  "sysfs ro, Docker's masked/readonly paths, Docker's default capabilities, Docker's default "
  "seccomp profile (x86_64+x86+x32), noNewPrivileges, devices cgroup deny-all + defaults, "
  "no terminal.")
p("")
p("## Results")
p("")
p("| tool | median ms | mean ± σ ms | min ms | ratio to crun | peak RSS KiB |")
p("|---|---:|---:|---:|---:|---:|")
label = {
    "berth-runtime": "berth-runtime",
    "berth-runtime-cold": "berth-runtime, cold seccomp cache",
    "crun": "crun (in the unshare wrapper)",
    "runc": "runc",
    "crun-wrapper-floor": "crun's wrapper alone (`exec true`)",
}
for n in ("berth-runtime", "berth-runtime-cold", "crun", "runc", "crun-wrapper-floor"):
    r = hf[n]
    rs = rss.get(n)
    p(f"| {label[n]} | {ms(r['median']):.1f} | {ms(r['mean']):.1f} ± {ms(r['stddev']):.1f} | "
      f"{ms(r['min']):.1f} | {r['median'] / crun_med:.2f} | {rs if rs else '–'} |")
p("")
p(f"- berth/crun (medians): **{berth_med / crun_med:.2f}**; with crun's wrapper cost "
  f"({ms(floor_med):.1f} ms) subtracted: **{berth_med / (crun_med - floor_med):.2f}**")
p(f"- berth/runc (medians): **{berth_med / runc_med:.2f}**")
p(f"- cold seccomp cache (first run of a new profile): berth/crun {cold_med / crun_med:.2f} "
  f"({cold_med / (crun_med - floor_med):.2f} net of the wrapper), berth/runc {cold_med / runc_med:.2f}")
p("- hyperfine's user/system CPU per run (mean, ms): " + ", ".join(
    f"{n} {ms(hf[n]['user']):.1f}/{ms(hf[n]['system']):.1f}"
    for n in ("berth-runtime", "berth-runtime-cold", "crun", "runc")))
p("- peak RSS: max RSS of the runtime process and the children it reaped (GNU time %M), "
  "median of 5 runs; for crun it is measured inside the wrapper.")

if os.path.exists(O + "/idle.json"):
    idl = {r["command"]: r for r in json.load(open(O + "/idle.json"))["results"]}
    p("")
    p("### Sporadic starts: 100 ms of idle before each run")
    p("")
    p("hyperfine's back-to-back loop keeps CPU caches, clocks and the kernel's cgroup rwsem warm; "
      "a start after a pause (`--prepare 'sleep 0.1'`) is slower for every runtime:")
    p("")
    p("| tool | median ms | mean ± σ ms | min ms | ratio to crun | back-to-back median ms |")
    p("|---|---:|---:|---:|---:|---:|")
    for n in ("berth-runtime", "crun", "runc", "crun-wrapper-floor"):
        r = idl[n]
        p(f"| {label[n]} | {ms(r['median']):.1f} | {ms(r['mean']):.1f} ± {ms(r['stddev']):.1f} | "
          f"{ms(r['min']):.1f} | {r['median'] / idl['crun']['median']:.2f} | {ms(hf[n]['median']):.1f} |")

# ------------------------------------------------------------------ profile
if E.get("PROFILE") == "1" and os.path.exists(O + "/profile.json"):
    pr = {r["command"]: r for r in json.load(open(O + "/profile.json"))["results"]}
    warm = pr["warm"]["median"]
    tmpfs = pr["root-on-tmpfs"]["median"]
    nosec = pr["no-seccomp"]["median"]
    att = open(O + "/cgroup-attach.txt").read().split()
    att_first, att_second, att_min, att_max = map(float, att)

    # strace -f -T -y -ttt --seccomp-bpf traces of warm runs
    line_re = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
    res_re = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
    call_re = re.compile(r"^(\w+)\((.*)$")
    dur_re = re.compile(r"<(\d+\.\d+)>\s*$")
    root = W + "/root-berth"

    def category(name, text, pid, main):
        if name == "write" and "cgroup.procs" in text:
            return "cgroup attach (cgroup.procs writes)"
        if "/sys/fs/cgroup" in text:
            return "cgroup teardown (rmdir)" if name == "rmdir" else "cgroup setup (mkdir, limits, devices)"
        if name in ("fsync", "fdatasync"):
            return "state: fsync"
        if "/.cache/seccomp" in text:
            return "seccomp: cache read"
        if root in text:
            if name in ("unlink", "unlinkat", "rmdir"):
                return "state: remove dir"
            return "state: mkdir/open/write/rename/fifo"
        if name == "seccomp" or (name == "prctl" and "PR_SET_SECCOMP" in text):
            return "seccomp: load filter"
        if name in ("clone", "clone3", "fork", "vfork"):
            return "process spawns (clone)"
        if name in ("unshare", "setns"):
            return "namespaces (unshare)"
        if name in ("mount", "umount2", "pivot_root", "mknodat", "symlinkat", "mkdirat"):
            return "rootfs: mounts, devices, pivot_root"
        if name == "execve":
            return "exec of berth-runtime" if pid == main else "exec of /bin/true"
        if name in ("nanosleep", "clock_nanosleep"):
            return "polling sleeps"
        if name == "prctl":
            return "caps/prctl"
        return "other traced (openat, ...)"

    cats, phases, walls = [], [], []
    for f in sorted(glob.glob(O + "/strace-[0-9]*.txt")):
        pending = {}
        c = {}
        main = None
        t0 = t_clone = t_exec = t_initexit = t_end = None
        exec_pid = None
        for raw in open(f):
            m = line_re.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, ts, rest = int(m.group(1)), float(m.group(2)), m.group(3)
            if main is None:
                main, t0 = pid, ts
            if rest.startswith("+++ exited") or rest.startswith("+++ killed"):
                if pid == exec_pid:
                    t_initexit = ts
                if pid == main:
                    t_end = ts
                continue
            if rest.startswith("---"):
                continue
            rm = res_re.match(rest)
            if rm:
                name = rm.group(1)
                text = pending.pop(pid, "") + rm.group(2)
            else:
                cm = call_re.match(rest)
                if not cm:
                    continue
                name = cm.group(1)
                if rest.endswith("<unfinished ...>"):
                    pending[pid] = rest
                    if name == "execve" and pid != main and t_exec is None:
                        t_exec, exec_pid = ts, pid
                    if name in ("clone", "clone3") and pid == main and t_clone is None:
                        t_clone = ts
                    continue
                text = rest
            if name == "execve" and pid != main and t_exec is None:
                t_exec, exec_pid = ts, pid
            if name in ("clone", "clone3") and pid == main and t_clone is None:
                t_clone = ts
            if exec_pid == pid and name != "execve":
                continue  # the container's own /bin/true
            d = dur_re.search(text)
            if not d:
                continue
            k = category(name, text, pid, main)
            n, s = c.get(k, (0, 0.0))
            c[k] = (n + 1, s + float(d.group(1)))
        if None in (t0, t_clone, t_exec, t_initexit, t_end):
            continue
        cats.append(c)
        walls.append(t_end - t0)
        phases.append({
            "start → first clone (CLI, config, seccomp cache, state files, cgroup dirs)": t_clone - t0,
            "first clone → exec of /bin/true (cgroup attach, namespaces, rootfs, caps, start, seccomp)": t_exec - t_clone,
            "exec of /bin/true → its exit": t_initexit - t_exec,
            "exit → berth-runtime exit (reap, delete: cgroup rmdir, state dir removal)": t_end - t_initexit,
        })

    keys = sorted({k for c in cats for k in c}, key=lambda k: -med([c.get(k, (0, 0))[1] for c in cats]))
    catmed = {k: med([c.get(k, (0, 0.0))[1] for c in cats]) for k in keys}
    catn = {k: med([c.get(k, (0, 0.0))[0] for c in cats]) for k in keys}

    perf = {}
    if os.path.exists(O + "/perf-stat.txt"):
        txt = open(O + "/perf-stat.txt").read()
        m = re.search(r"([\d.,]+)\s+msec task-clock.*?([\d.]+) CPUs utilized", txt)
        if m:
            perf["task"] = float(m.group(1).replace(",", ""))
            perf["util"] = float(m.group(2))
        m = re.search(r"([\d.,]+)\s+context-switches", txt)
        if m:
            perf["cs"] = m.group(1)
        m = re.search(r"([\d.,]+)\s+page-faults", txt)
        if m:
            perf["pf"] = m.group(1)
        m = re.search(r"([\d.]+) \+- [\d.]+ seconds time elapsed", txt)
        if m:
            perf["elapsed"] = float(m.group(1))

    # perf trace runs (low overhead): medians per cost
    pt = [r for r in (perf_run(f) for f in sorted(glob.glob(O + "/perftrace-*.txt"))) if r]
    def P(k):
        return med([r.get(k, 0.0) for r in pt]) if pt else None
    src = f"perf trace, median of {len(pt)} runs" if pt else "strace"
    def pick(pk, sk):
        v = P(pk) if pt else None
        return v if v is not None else ms(sum(catmed.get(x, 0.0) for x in sk))
    attach = pick("attach", ["cgroup attach (cgroup.procs writes)"])
    fs = pick("fsync", ["state: fsync"])
    spawn_c, spawn_u, spawn_e = pick("clone", ["process spawns (clone)"]), pick("unshare", ["namespaces (unshare)"]), pick("exec_true", ["exec of /bin/true"])
    rootfs = pick("rootfs", ["rootfs: mounts, devices, pivot_root"])
    cgsetup = pick("mkdir", ["cgroup setup (mkdir, limits, devices)"]) + (P("pre_write") or 0.0) + pick("cg_rmdir", ["cgroup teardown (rmdir)"])
    sl = pick("sleep", ["polling sleeps"])
    nsl = P("sleeps") if pt else catn.get("polling sleeps", 0)
    def loop_attach(path, n=20):
        v = []
        if os.path.exists(path):
            for raw in open(path):
                m = PT.match(raw)
                # a pid written to cgroup.procs: a write of at most 8 bytes
                c = re.search(r"count: (\d+)", m.group(6)) if m else None
                if m and m.group(2) and m.group(5) == "write" and c and int(c.group(1)) <= 8:
                    v.append(float(m.group(2)))
        if not v:
            return None
        v = (v + [0.0] * n)[:max(n, len(v))]
        return med(v)
    a_b2b = loop_attach(O + "/attach-b2b.txt")
    a_idle = loop_attach(O + "/attach-idle.txt")
    a_crun = loop_attach(O + "/attach-idle-crun.txt")
    a_runc = loop_attach(O + "/attach-idle-runc.txt")
    b_crun = loop_attach(O + "/attach-b2b-crun.txt")
    b_runc = loop_attach(O + "/attach-b2b-runc.txt")
    loops = ""
    if a_b2b is not None and a_idle is not None:
        loops = (f"; in loops of 20 runs where only writes ≥ 0.3 ms are traced: median {a_b2b:.1f} ms "
                 f"back to back, {a_idle:.1f} ms with 100 ms idle between runs (same loops: crun "
                 f"{b_crun or 0:.1f} / {a_crun or 0:.1f} ms, runc {b_runc or 0:.1f} / {a_runc or 0:.1f} ms)")
    costs = [
        (attach, "cgroup v1 attach: writing the pid to the first cgroup.procs (10 hierarchies; only the first write is slow)",
         f"{src}; kernel floor measured alone: median {att_first:.1f} ms (min {att_min:.1f}, max "
         f"{att_max:.1f}) for a first write vs {att_second:.2f} ms for the next one: an RCU grace "
         "period (cgroup_procs_write_start → percpu_down_write → rcu_sync_enter → synchronize_rcu)"
         f"{loops}. berth's init waits for it before unshare (serial); runc and crun pay it too"),
        (ms(warm - tmpfs), "state files on ext4: 4 × (write, fsync, rename), exec fifo, dir removal",
         f"hyperfine, state root on ext4 ({ms(warm):.1f} ms) vs tmpfs ({ms(tmpfs):.1f} ms); "
         f"{src}: fsync {fs:.2f} ms in 4 calls, rename+unlink {(P('state_other') or 0):.2f} ms, "
         f"dir removal {(P('state_rm') or 0):.2f} ms"),
        (spawn_c + spawn_u + spawn_e, "process spawns: 2 clones (intermediate + init), unshare of 5 namespaces, exec of /bin/true",
         f"{src}: clone {spawn_c:.2f}, unshare {spawn_u:.2f}, execve {spawn_e:.2f} ms (syscall time only; "
         "berth-runtime's own exec and dynamic linking come on top)"),
        (rootfs, "rootfs: 6 mounts, 6 device nodes, pivot_root, masked/readonly paths", src),
        (cgsetup, "cgroup setup and teardown: mkdir in 10 hierarchies, cpuset copy, 13 devices rules, 10 rmdir", src),
        (ms(warm - nosec), "seccomp with a warm cache: read the cached BPF, load it",
         f"hyperfine, with vs without linux.seccomp ({ms(nosec):.1f} ms); {src}: "
         f"PR_SET_SECCOMP {(P('seccomp_load') or 0):.2f} ms"),
        (sl, "polling sleeps (nanosleep) in start/wait/delete", f"{src}: {nsl:.0f} calls per run"),
    ]
    costs.sort(key=lambda c: -c[0])

    p("")
    p("## Where berth-runtime's time goes (one warm run)")
    p("")
    p(f"Median wall time of a warm run in this section's own hyperfine run: {ms(warm):.1f} ms.")
    if perf:
        p(f"`perf stat -r 20`: {perf.get('task', 0):.1f} ms task-clock over all processes, "
          f"{perf.get('util', 0):.2f} CPUs utilized, {perf.get('cs', '?')} context switches, "
          f"{perf.get('pf', '?')} page faults, {ms(perf.get('elapsed', 0)):.1f} ms elapsed: the run "
          "is mostly waiting off-CPU, not computing.")
    p("")
    p("Costs, largest first (estimates; each from the measurement named). The perf-traced runs "
      "are spaced apart by perf's own start-up, so they pay the attach wait in full, like a "
      "sporadic start; hyperfine's back-to-back loop hides part of it:")
    p("")
    p("| # | cost | ms per run | how measured |")
    p("|---:|---|---:|---|")
    for i, (v, what, how) in enumerate(costs, 1):
        p(f"| {i} | {what} | {v:.2f} | {how} |")
    p("")
    p(f"Not in a warm run: compiling Docker's profile with libseccomp on a cache miss costs "
      f"**{ms(cold_med - berth_med):.1f} ms** (cold − warm medians in the main run; "
      f"user CPU {ms(hf['berth-runtime-cold']['user']):.1f} vs {ms(hf['berth-runtime']['user']):.1f} ms). "
      f"The cache lives at `<root>/.cache/seccomp`.")
    p("")
    p(f"Syscall time by category, median of {len(cats)} traced warm runs "
      "(`strace -f -T --seccomp-bpf`, only the listed syscalls stop; "
      f"traced wall {ms(med(walls)):.1f} ms vs {ms(warm):.1f} ms untraced):")
    p("")
    p("| category | calls | ms |")
    p("|---|---:|---:|")
    for k in keys:
        p(f"| {k} | {catn[k]:.0f} | {ms(catmed[k]):.2f} |")
    p("")
    p("Wall-clock phases of the traced runs (median):")
    p("")
    p("| phase | ms |")
    p("|---|---:|")
    for k in phases[0]:
        p(f"| {k} | {ms(med([ph[k] for ph in phases])):.2f} |")

p("")
p("## Commands")
p("")
p("```")
for k in ("CMD_BERTH", "CMD_CRUN", "CMD_RUNC", "CMD_FLOOR"):
    p(E[k].replace(W, "$BENCH_WORK"))
p("```")
open(E["OUT"], "w").write("\n".join(L) + "\n")
PY
cat "$OUT"
