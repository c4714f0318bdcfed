#!/usr/bin/env bash
# Pull benchmark: cold pull of a 3-layer Debian minbase image from a loopback
# docker-registry by `berth pull` (fresh --root), `podman pull` (fresh private
# storage) and `skopeo copy docker://… oci:DIR`, in one hyperfine run; a warm
# pull (everything present); and the floors: single-core `gzip -dc` of the
# largest layer blob and a raw `curl` GET of it.
#
# Usage: sudo bench/pull.sh
#   env: RUNS (cold runs, default 10), WARM_RUNS (default 30),
#        BENCH_WORK (default /tmp/berth-bench-pull, wiped),
#        DEBIAN_LAYOUT (an OCI layout with tag `latest`; default: the cache of
#          tests/src/images.rs debian_minbase_layout(), built here with
#          debootstrap + umoci when missing), BERTH_DEBIAN_MIRROR,
#        BERTH_BIN (skip the cargo build), OUT (default bench/RESULTS.md: the
#          "## pull" section is replaced, everything else is kept).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-10}
WARM_RUNS=${WARM_RUNS:-30}
WORK=${BENCH_WORK:-/tmp/berth-bench-pull}
OUT=${OUT:-$HERE/RESULTS.md}
CACHE=/var/cache/berth-test/debian-minbase-v1

log() { echo "pull.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"

need=()
for p in hyperfine:hyperfine podman:podman skopeo:skopeo docker-registry:docker-registry \
    umoci:umoci jq:jq curl:curl debootstrap:debootstrap taskset:util-linux python3:python3; do
    command -v "${p%%:*}" >/dev/null || need+=("${p#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get install -y "${need[@]}" >/dev/null
fi

if [ -z "${BERTH_BIN:-}" ]; then
    log "cargo build --release -p berth"
    (cd "$REPO" && cargo build --release -p berth >&2)
    BERTH_BIN=$REPO/target/release/berth
fi

# --- work dir; everything we start is stopped on exit ------------------------
REG_PID=
cleanup() {
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
    # podman's overlay driver may leave mounts under its graph root.
    { grep -o " $WORK/[^ ]*" /proc/self/mounts 2>/dev/null || true; } | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK"

# --- the image ---------------------------------------------------------------
layout_dir() { # an OCI layout dir at $1 or $1/layout
    if [ -f "$1/index.json" ]; then echo "$1"; elif [ -f "$1/layout/index.json" ]; then echo "$1/layout"; fi
}
LAYOUT=
if [ -n "${DEBIAN_LAYOUT:-}" ]; then
    LAYOUT=$(layout_dir "$DEBIAN_LAYOUT")
    [ -n "$LAYOUT" ] || die "no OCI layout at $DEBIAN_LAYOUT"
else
    LAYOUT=$(layout_dir "$CACHE")
fi
if [ -z "$LAYOUT" ]; then
    # What tests/src/images.rs build_debian_minbase() does.
    log "building the Debian minbase layout (debootstrap; a minute or more)"
    B=$WORK/build
    mkdir -p "$B"
    debootstrap --variant=minbase bookworm "$B/rootfs" "${BERTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2
    (cd "$B/rootfs" && rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* \
        var/log/* dev/* proc/* sys/* run/* tmp/* var/cache/debconf/*-old var/lib/dpkg/*-old)
    L=$B/layout
    umoci init --layout "$L"
    umoci new --image "$L:latest"
    rest=$(cd "$B/rootfs" && ls -A | grep -vx -e usr -e etc -e var | sort | tr '\n' ' ')
    i=0
    for g in "usr" "etc var" "$rest"; do
        # shellcheck disable=SC2086
        tar -C "$B/rootfs" --sort=name --numeric-owner --xattrs -cf "$B/layer$i.tar" $g
        umoci raw add-layer --image "$L:latest" \
            --history.created_by "debootstrap --variant=minbase bookworm: $g" "$B/layer$i.tar"
        rm -f "$B/layer$i.tar"
        i=$((i + 1))
    done
    arch=$(dpkg --print-architecture)
    umoci config --image "$L:latest" --config.cmd bash \
        --config.env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --os linux --architecture "$arch"
    umoci gc --layout "$L"
    rm -rf "$B/rootfs"
    mkdir -p "$(dirname "$CACHE")"
    cp -a "$L" "$CACHE.tmp.$$" && mv -T "$CACHE.tmp.$$" "$CACHE" 2>/dev/null || rm -rf "$CACHE.tmp.$$"
    LAYOUT=$L
fi
MANIFEST=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="latest") | .digest' "$LAYOUT/index.json")
blob() { echo "$LAYOUT/blobs/sha256/${1#sha256:}"; }
NLAYERS=$(jq '.layers | length' "$(blob "$MANIFEST")")
IMAGE_BYTES=$(jq '[.layers[].size] | add' "$(blob "$MANIFEST")")
BIGGEST=$(jq -r '.layers | max_by(.size) | .digest' "$(blob "$MANIFEST")")
BIGGEST_SIZE=$(jq -r '.layers | max_by(.size) | .size' "$(blob "$MANIFEST")")
log "image: $NLAYERS layers, $IMAGE_BYTES bytes compressed; largest layer $BIGGEST_SIZE bytes"

# --- the registry ------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
mkdir -p "$WORK/registry"
cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
http:
  addr: $ADDR
  secret: berth-bench
EOF
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REG_PID=$!
for _ in $(seq 200); do
    curl -fs "http://$ADDR/v2/" >/dev/null 2>&1 && break
    sleep 0.05
done
curl -fs "http://$ADDR/v2/" >/dev/null || die "docker-registry did not start: $(cat "$WORK/registry/log")"
REF=$ADDR/debian:minbase
SKOPEO_HOME=$WORK/skopeo-home
mkdir -p "$SKOPEO_HOME"
# A private blob-info cache (root's is shared and would let skopeo skip work).
skopeo_() {
    _CONTAINERS_ROOTLESS_UID=1 XDG_DATA_HOME=$SKOPEO_HOME XDG_RUNTIME_DIR=$SKOPEO_HOME \
        REGISTRY_AUTH_FILE=$SKOPEO_HOME/auth.json skopeo --insecure-policy "$@"
}
export -f skopeo_
export SKOPEO_HOME
log "pushing to $REF"
skopeo_ copy -q --dest-tls-verify=false "oci:$LAYOUT:latest" "docker://$REF" >&2

# --- podman's private configuration -----------------------------------------
P=$WORK/podman
mkdir -p "$P/tmp" "$P/net" "$P/image-tmp"
cat >"$P/containers.conf" <<EOF
[network]
network_config_dir = "$P/net"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$P/events.log"
tmp_dir = "$P/tmp"
static_dir = "$P/graph/libpod"
volume_path = "$P/graph/volumes"
image_copy_tmp_dir = "$P/image-tmp"
EOF
cat >"$P/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$P/graph"
runroot = "$P/run"
EOF
cat >"$P/registries.conf" <<EOF
unqualified-search-registries = []

[[registry]]
location = "$ADDR"
insecure = true
EOF
export CONTAINERS_CONF=$P/containers.conf CONTAINERS_STORAGE_CONF=$P/storage.conf \
    CONTAINERS_REGISTRIES_CONF=$P/registries.conf
PODMAN_WIPE="umount -R $P/graph/overlay 2>/dev/null; rm -rf $P/graph $P/run"

# The same stores on a private tmpfs: without the disk. On ext4 a store made
# right after the last one was wiped allocates its inodes where the deleted
# ones were, and ext4 scans past every recently deleted inode on each
# allocation (find_inode_bit -> recently_deleted): seconds of system CPU for
# a store whose tree parents lack the Orlov top-dir flag (podman's here;
# berth sets it, see crates/image/src/topdir.rs).
T=$WORK/tmpfs
mkdir -p "$T"
mount -t tmpfs -o size=4g berth-bench "$T"
sed -e "s|$P/graph|$T/podman-graph|; s|$P/run|$T/podman-run|" "$P/storage.conf" >"$P/storage-tmpfs.conf"
# libpod's database (static_dir) remembers the graph root and wins over
# storage.conf: the tmpfs variant needs its own.
sed -e "s|$P/graph|$T/podman-graph|g" "$P/containers.conf" >"$P/containers-tmpfs.conf"
PODMAN_TMPFS_WIPE="umount -R $T/podman-graph/overlay 2>/dev/null; rm -rf $T/podman-graph $T/podman-run"
CMD_BERTH_T="$BERTH_BIN --root $T/berth-root pull -q $REF"
CMD_PODMAN_T="CONTAINERS_CONF=$P/containers-tmpfs.conf CONTAINERS_STORAGE_CONF=$P/storage-tmpfs.conf podman pull -q $REF"

BROOT=$WORK/berth-root
SOCI=$WORK/skopeo-oci
CMD_BERTH="$BERTH_BIN --root $BROOT pull -q $REF"
CMD_PODMAN="podman pull -q $REF"
CMD_SKOPEO="skopeo_ copy -q --src-tls-verify=false docker://$REF oci:$SOCI:latest"

# Sanity: each pulls the image.
log "checking each tool once"
rm -rf "$BROOT" "$SOCI"; sh -c "$PODMAN_WIPE"
$CMD_BERTH >/dev/null
$CMD_PODMAN >/dev/null
bash -c "$CMD_SKOPEO" >/dev/null
[ "$("$BERTH_BIN" --root "$BROOT" images -q | wc -l)" = 1 ] || die "berth did not store the image"
[ -n "$(podman images -q)" ] || die "podman did not store the image"
bash -c "$CMD_BERTH_T" >/dev/null
bash -c "$CMD_PODMAN_T" >/dev/null
[ -n "$(ls -A "$T/podman-graph/overlay" 2>/dev/null)" ] || die "podman did not store the image on tmpfs"

J=$WORK/json
mkdir -p "$J"
log "cold pulls ($RUNS runs each)"
hyperfine --style basic --warmup 1 --runs "$RUNS" --shell bash \
    --export-json "$J/cold.json" \
    --prepare "rm -rf $BROOT; sync" -n berth "$CMD_BERTH" \
    --prepare "$PODMAN_WIPE; sync" -n podman "$CMD_PODMAN" \
    --prepare "rm -rf $SOCI; sync" -n skopeo "$CMD_SKOPEO" \
    --prepare "rm -rf $T/berth-root" -n berth-tmpfs "$CMD_BERTH_T" \
    --prepare "$PODMAN_TMPFS_WIPE" -n podman-tmpfs "$CMD_PODMAN_T" >&2

log "warm pulls ($WARM_RUNS runs each)"
rm -rf "$BROOT"; $CMD_BERTH >/dev/null
sh -c "$PODMAN_WIPE"; $CMD_PODMAN >/dev/null
hyperfine --style basic -N --warmup 3 --runs "$WARM_RUNS" --export-json "$J/warm.json" \
    -n berth-warm "$CMD_BERTH" -n podman-warm "$CMD_PODMAN" >&2

log "floors"
BLOB=$(blob "$BIGGEST")
hyperfine --style basic --warmup 1 --runs 10 --shell bash --export-json "$J/floor.json" \
    -n gunzip-1core "taskset -c 0 gzip -dc $BLOB >/dev/null" \
    -n curl-blob "curl -fs -o /dev/null http://$ADDR/v2/debian/blobs/$BIGGEST" >&2

# --- the table ---------------------------------------------------------------
BERTH_REV=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! (cd "$REPO" && git diff --quiet HEAD -- crates 2>/dev/null); then BERTH_REV="$BERTH_REV+changes"; fi
export J OUT BERTH_REV NLAYERS IMAGE_BYTES BIGGEST_SIZE RUNS WARM_RUNS
python3 - <<'PY'
import json, os, re, subprocess, datetime
E = os.environ
def load(n):
    return {r["command"]: r for r in json.load(open(f'{E["J"]}/{n}.json'))["results"]}
cold, warm, floor = load("cold"), load("warm"), load("floor")
ms = lambda s: s * 1000
def row(name, r, ref=None):
    med = r["median"]
    ratio = f"{med / ref:.2f}" if ref else "–"
    return (f"| {name} | {ms(med):.0f} | {ms(r['mean']):.0f} ± {ms(r['stddev'] or 0):.0f} "
            f"| {ms(r['min']):.0f} | {ratio} |")
def v(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"
pm = cold["podman"]["median"]
cpus = os.cpu_count()
L = ["## pull", "",
     "Generated by `bench/pull.sh` (see bench/README.md); do not edit by hand.", "",
     f"- date: {datetime.datetime.utcnow():%a %b %d %H:%M:%S UTC %Y}; {cpus} CPUs",
     f"- berth: git {E['BERTH_REV']} (release build); {v('podman --version')}; {v('skopeo --version')}; {v('hyperfine --version')}",
     f"- image: Debian bookworm `debootstrap --variant=minbase`, {E['NLAYERS']} gzip layers, "
     f"{int(E['IMAGE_BYTES'])/1e6:.1f} MB compressed (largest layer {int(E['BIGGEST_SIZE'])/1e6:.1f} MB), "
     "from Debian's docker-registry on 127.0.0.1 (plain http)",
     f"- cold: fresh store before each run (`--prepare` wipes it, then `sync`), {E['RUNS']} runs + 1 warmup; "
     "berth into a fresh `--root`, podman into fresh private overlay storage (cgroupfs, file events, "
     "registries.conf marking the registry insecure), skopeo into a fresh OCI layout dir", "",
     "| pull | median ms | mean ± σ ms | min ms | ratio to podman |", "|---|---:|---:|---:|---:|",
     row("berth pull (cold)", cold["berth"], pm),
     row("podman pull (cold)", cold["podman"], pm),
     row("skopeo copy docker:// → oci: (cold)", cold["skopeo"], pm),
     row("berth pull (cold), store on tmpfs", cold["berth-tmpfs"], cold["podman-tmpfs"]["median"]),
     row("podman pull (cold), storage on tmpfs", cold["podman-tmpfs"], cold["podman-tmpfs"]["median"]),
     row("berth pull (warm: everything present)", warm["berth-warm"], warm["podman-warm"]["median"]),
     row("podman pull (warm)", warm["podman-warm"], warm["podman-warm"]["median"]),
     row("floor: `gzip -dc` of the largest layer, one core", floor["gunzip-1core"]),
     row("floor: `curl` GET of the largest layer blob", floor["curl-blob"]),
     "",
     f"- berth/podman cold (medians): **{cold['berth']['median'] / pm:.2f}**; "
     f"berth/skopeo: **{cold['berth']['median'] / cold['skopeo']['median']:.2f}**; "
     f"stores on tmpfs, berth/podman: **{cold['berth-tmpfs']['median'] / cold['podman-tmpfs']['median']:.2f}** "
     "(the tmpfs rows' ratio column is to podman on tmpfs)",
     f"- berth warm pull: **{ms(warm['berth-warm']['median']):.1f} ms** (target < 50 ms); "
     f"ratio to podman's warm pull: {warm['berth-warm']['median'] / warm['podman-warm']['median']:.2f} (the warm rows' ratio column is to podman warm)",
     f"- berth cold over the gunzip floor: {cold['berth']['median'] / floor['gunzip-1core']['median']:.2f}× on disk, "
     f"{cold['berth-tmpfs']['median'] / floor['gunzip-1core']['median']:.2f}× on tmpfs "
     "(the floor is max(network, slowest layer's decompression); berth also hashes, untars and syncs each layer)",
     f"- user/system CPU per cold run (mean, ms): " + ", ".join(
         f"{k} {ms(cold[k]['user']):.0f}/{ms(cold[k]['system']):.0f}" for k in cold),
     "- on disk, each cold run follows the `--prepare` that wiped the last store: ext4 then scans past the "
     "recently deleted inodes on every inode allocation in their block groups (`find_inode_bit` → "
     "`recently_deleted`, seen with perf), which costs podman seconds of system CPU; berth's layer and "
     "container parents carry the Orlov top-dir flag (`chattr +T`, crates/image/src/topdir.rs), so its new "
     "trees land in other groups; the tmpfs rows take the disk out",
     ""]
section = "<!-- pull.sh begin -->\n" + "\n".join(L) + "<!-- pull.sh end -->\n"
out = E["OUT"]
old = open(out).read() if os.path.exists(out) else ""
if "<!-- pull.sh begin -->" in old:
    new = re.sub(r"<!-- pull\.sh begin -->.*?<!-- pull\.sh end -->\n?", lambda _: section, old, flags=re.S)
else:
    new = old.rstrip("\n") + ("\n\n" if old else "") + section
open(out, "w").write(new)
print(section)
PY
