#!/bin/sh
# Installs the Debian packages berth's build and tests need (idempotent).
# Usage: sudo scripts/deps.sh
set -eu
PKGS="build-essential curl pkg-config libseccomp-dev busybox-static iproute2 nftables bsdutils
      runc crun podman conmon netavark uidmap fuse-overlayfs binutils
      qemu-system-x86 cpio dpkg-dev python3
      docker-registry skopeo umoci apache2-utils openssl debootstrap
      bind9-dnsutils"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
# Garage, the S3 server the registry's S3 backend is tested against: built
# once per machine (crates.io, ~15 min) into /var/cache/berth-ci/garage.
"$(dirname "$0")/garage.sh" >/dev/null
