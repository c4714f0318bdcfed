#!/bin/sh
# The container's process: reports its own cgroup as seen through its cgroup namespace.
phase=$(cat /phase)
say() { echo "BERTH-QEMU $phase.$1=$2"; }

say self_cgroup "$(cat /proc/self/cgroup)"
say cgroup_fs "$(grep ' /sys/fs/cgroup ' /proc/mounts | cut -d' ' -f1-3)"
for f in memory.max memory.swap.max cpu.max cpu.weight pids.max; do
    say "in.$f" "$(cat /sys/fs/cgroup/$f 2>&1)"
done

# Devices: mknod is allowed (c *:* m) but /dev/kmsg (1:11) is not in the allow list.
if mknod /dev/bt-kmsg c 1 11 2>/tmp/err; then
    if (echo x >/dev/bt-kmsg) 2>/tmp/err; then say dev.kmsg_write allowed
    else say dev.kmsg_write "denied: $(cat /tmp/err)"; fi
else
    say dev.kmsg_write "mknod failed: $(cat /tmp/err)"
fi
if (echo x >/dev/null) 2>/tmp/err; then say dev.null_write allowed
else say dev.null_write "denied: $(cat /tmp/err)"; fi

# pids.max: fork sleepers until fork fails. ash exits on a failed fork, so do it in a
# subshell; from here on only builtins (the pids are used up).
(i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); echo $i >/tmp/forked; done) 2>/tmp/forkerr
read -r forked </tmp/forked
read -r forkerr </tmp/forkerr
say fork.started "$forked"
say fork.error "$forkerr"
kill -9 -1
: >/tmp/probe-done
[ "$phase" = run ] && exit 0
exec sleep 600
