#!/bin/sh
# Guest init (PID 1) of the pure cgroup v2 test. Mounts only cgroup2, runs the bundle in
# /bundle with berth-runtime (detached, then with `run`), reads the container's cgroup
# from the host side and prints every result as a "BERTH-QEMU key=value" line.
export PATH=/bin:/usr/bin

if [ "${1:-}" != stage2 ]; then
    # pivot_root(2) refuses the initramfs as the current root: put a bind mount of it
    # on / (as switch_root does with a real root) and start again from there.
    mount --bind / /newroot && cd /newroot && mount --move . / && exec chroot . /init stage2
    echo "BERTH-QEMU fail=could not re-root the initramfs"
    poweroff -f
fi

say() { echo "BERTH-QEMU $1=$2"; }
bye() { say done "$1"; sync; poweroff -f; sleep 10; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup || bye "no cgroup2"
say kernel "$(uname -r)"
say cgroup_mounts "$(grep cgroup /proc/mounts | cut -d' ' -f1-3 | tr '\n' ';')"
say root_controllers "$(cat /sys/fs/cgroup/cgroup.controllers)"
# Left empty on purpose: berth-runtime must enable the controllers along the path.
say root_subtree_before "$(cat /sys/fs/cgroup/cgroup.subtree_control)"

rt() { timeout 30 berth-runtime --root /run/berth "$@"; }
cgpath=$(sed -n 's/.*"cgroupsPath": *"\([^"]*\)".*/\1/p' /bundle/config.json)
cg=/sys/fs/cgroup$cgpath
rootfs=/bundle/rootfs

# 1. create + start, then read the cgroup from outside while the container runs
echo detached > $rootfs/phase
rt --debug --log /tmp/create.log create --bundle /bundle c1 2>/tmp/err || { say create.error "$(cat /tmp/err)"; bye create; }
say create.clone3 "$(grep -c CLONE_INTO_CGROUP /tmp/create.log)"
say root_subtree_after "$(cat /sys/fs/cgroup/cgroup.subtree_control)"
rt start c1 2>/tmp/err || { say start.error "$(cat /tmp/err)"; bye start; }
i=0
while [ ! -e $rootfs/tmp/probe-done ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
[ -e $rootfs/tmp/probe-done ] || say probe.error "no probe-done after 30 s"
say host.status "$(rt state c1 | grep -o '"status": *"[a-z]*"' | cut -d'"' -f4)"
[ -d "$cg" ] && say host.cgroup_dir "$cg"
for f in memory.max memory.swap.max cpu.max cpu.weight pids.max; do
    say "host.$f" "$(cat $cg/$f 2>&1)"
done
say host.pids.events "$(grep '^max ' $cg/pids.events)"
say host.subtree_of_parent "$(cat "$(dirname $cg)/cgroup.subtree_control")"
echo berth-qemu-host-kmsg > /dev/kmsg && say host.kmsg_write allowed
rt kill c1 KILL 2>/tmp/err || say kill.error "$(cat /tmp/err)"
i=0
while [ "$(rt state c1 | grep -o stopped)" != stopped ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
rt delete c1 2>/tmp/err || say delete.error "$(cat /tmp/err)"
if [ -e "$cg" ]; then say host.after_delete present; else say host.after_delete gone; fi

# 2. run: the same bundle in the foreground; its cgroup must be gone when it returns
echo run > $rootfs/phase
rm -f $rootfs/tmp/*
rt run --bundle /bundle c2 2>/tmp/err
say run.exit "$? $(cat /tmp/err)"
if [ -e "$cg" ]; then say run.after_exit present; else say run.after_exit gone; fi
bye ok
