#!/bin/sh
# Assembles the initramfs for the pure cgroup v2 test (tests/tests/cgroup_v2_qemu.rs):
#   /init                 guest init (init.sh beside this file)
#   /bin/busybox + links  static busybox for the guest
#   /usr/bin/berth-runtime and the shared libraries it links, at their host paths
#   /bundle               config.json (given) + a busybox rootfs running probe.sh
# Usage: build-initramfs.sh OUT.cpio.gz RUNTIME_BIN CONFIG_JSON
set -eu
out=$1 runtime=$2 config=$3
here=$(cd "$(dirname "$0")" && pwd)
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "busybox is missing: apt-get install busybox-static" >&2; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then
    echo "$busybox is dynamically linked: apt-get install busybox-static" >&2; exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# busybox with every applet as a symlink in /bin
mkdir -p "$stage/bin"
cp "$busybox" "$stage/bin/busybox"
for a in $("$busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$stage/bin/$a"
done
ln -s bin "$stage/sbin"
mkdir -p "$stage/proc" "$stage/sys" "$stage/dev" "$stage/run" "$stage/tmp" "$stage/newroot"

# berth-runtime (without debug info: TCG unpacks the initramfs slowly) and its libraries
mkdir -p "$stage/usr/bin"
strip -o "$stage/usr/bin/berth-runtime" "$runtime" 2>/dev/null || cp "$runtime" "$stage/usr/bin/berth-runtime"
for lib in $(ldd "$runtime" | grep -o '/[^ ]*'); do
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
done

# the bundle: the container's rootfs shares the guest's busybox (a hard link)
rootfs=$stage/bundle/rootfs
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" "$rootfs/etc"
ln "$stage/bin/busybox" "$rootfs/bin/busybox"
for a in $("$busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"
done
echo "root:x:0:0:root:/:/bin/sh" > "$rootfs/etc/passwd"
cp "$here/probe.sh" "$rootfs/probe.sh"
cp "$config" "$stage/bundle/config.json"
cp "$here/init.sh" "$stage/init"
chmod 755 "$stage/init" "$rootfs/probe.sh"

(cd "$stage" && find . | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -6 > "$out"
