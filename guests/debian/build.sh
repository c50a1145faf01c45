#!/usr/bin/env bash
# Build the debian-amd64 test guest: a real Debian 12 (systemd, udev, the Debian kernel and an initramfs-tools
# initramfs) made with mmdebstrap from Debian's mirror, as an ext4 disk image plus the kernel and initrd copied out
# of it for direct kernel boot.
#
#   bash guests/debian/build.sh OUTDIR     # called by guests/build.sh with OUTDIR = guests/out/debian-amd64
#
# Writes OUTDIR/{rootfs.img,vmlinuz,initrd.img,versions.txt,.stamp}. Cached on a hash of this script, overlay/ and
# the package list: a warm run only compares the stamp. Needs mmdebstrap and mke2fs (e2fsprogs); as root it uses
# mmdebstrap's root mode, otherwise its unshare mode (needs uidmap and user namespaces). Downloads come only from
# the Debian mirror (BOOTLAB_DEBIAN_MIRROR, default mmdebstrap's: deb.debian.org plus bookworm-updates/security).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:?usage: build.sh OUTDIR}
SUITE=bookworm
MIRROR=${BOOTLAB_DEBIAN_MIRROR:-}
# What systemd needs to boot to a getty and nothing else (minbase has login, passwd, util-linux's agetty).
# dbus: systemd-logind (in the systemd package) fails without it; zstd: initramfs-tools' default compressor.
PACKAGES="systemd,systemd-sysv,udev,dbus,linux-image-amd64,initramfs-tools,zstd"
ROOT_PASSWORD=bootlab
IMAGE_SIZE=1G

die() { echo "guests/debian/build.sh: $*" >&2; exit 1; }
say() { echo "guests: debian-amd64: $*" >&2; }
export PATH=$PATH:/usr/sbin:/sbin
command -v mmdebstrap >/dev/null || die "missing tool 'mmdebstrap': install it with 'apt-get install mmdebstrap' (or run 'make setup')"
command -v mke2fs >/dev/null || die "missing tool 'mke2fs': install it with 'apt-get install e2fsprogs'"

# cache key: every file here (build.sh, customize.sh, overlay/) and the mirror
KEY=$( (echo "$MIRROR"; cd "$HERE" && find . -type f | LC_ALL=C sort |
        while IFS= read -r f; do echo "$f"; cat "$f"; done) | sha256sum | cut -c1-16)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$KEY" ] &&
   [ -s "$OUT/rootfs.img" ] && [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ]; then
    exit 0
fi

START=$(date +%s)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)  # the hooks run in mmdebstrap's working directory: absolute paths only
TMP=$(mktemp -d "$OUT/build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
say "building with mmdebstrap from the Debian mirror (cold build: a few minutes)"

# dpkg leaves out what a test guest never reads: documentation, manuals, translations, and the kernel modules of
# hardware QEMU's q35 machine does not have (the kernel package stays installed; only those files are skipped).
set -f  # the patterns are dpkg globs, not the host's files
EXCLUDES=(/usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* /usr/share/lintian/*
          /lib/modules/*/kernel/drivers/gpu/* /lib/modules/*/kernel/drivers/media/* /lib/modules/*/kernel/sound/*
          /lib/modules/*/kernel/drivers/net/wireless/* /lib/modules/*/kernel/drivers/net/ethernet/*
          /lib/modules/*/kernel/drivers/infiniband/* /lib/modules/*/kernel/drivers/staging/*
          /lib/modules/*/kernel/drivers/bluetooth/* /lib/modules/*/kernel/net/bluetooth/*
          /lib/modules/*/kernel/drivers/isdn/* /lib/modules/*/kernel/drivers/iio/*
          /lib/modules/*/kernel/drivers/hid/* /lib/modules/*/kernel/drivers/usb/* /lib/modules/*/kernel/net/wireless/*
          /lib/modules/*/kernel/net/mac80211/* /lib/modules/*/kernel/fs/ocfs2/* /lib/modules/*/kernel/fs/xfs/*
          /lib/modules/*/kernel/fs/btrfs/*)
DPKGOPTS=()
for p in "${EXCLUDES[@]}"; do DPKGOPTS+=("--dpkgopt=path-exclude=$p"); done
DPKGOPTS+=("--dpkgopt=path-include=/usr/share/doc/*/copyright")
# virtio (network, console, ...) stays: udev loads it for the devices QEMU gives the guest.
DPKGOPTS+=("--dpkgopt=path-include=/lib/modules/*/kernel/drivers/net/ethernet/intel/e1000e/*")
set +f

# The customize hook (customize.sh) sets the password, enables the failing unit, copies the kernel and initramfs out
# and makes the ext4 image.
export DEBIAN_GUEST_TMP=$TMP DEBIAN_GUEST_KEY=$KEY DEBIAN_GUEST_PASSWORD=$ROOT_PASSWORD DEBIAN_GUEST_IMAGE_SIZE=$IMAGE_SIZE
mmdebstrap --variant=minbase --mode=auto --format=null --include="$PACKAGES" \
    --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata \
    --aptopt='Acquire::Languages "none"' \
    "${DPKGOPTS[@]}" \
    --essential-hook="sync-in '$HERE/overlay' /" \
    --customize-hook="$HERE/customize.sh" \
    "$SUITE" /dev/null ${MIRROR:+"$MIRROR"} </dev/null 2>"$TMP/mmdebstrap.log" \
    || { tail -20 "$TMP/mmdebstrap.log" >&2; die "mmdebstrap failed (its last lines are above; is the Debian mirror reachable?)"; }

for f in vmlinuz initrd.img rootfs.img versions.txt; do mv "$TMP/$f" "$OUT/$f"; done
echo "$KEY" > "$OUT/.stamp"
say "done in $(( $(date +%s) - START )) s: $(tr '\n' ' ' < "$OUT/versions.txt")"
