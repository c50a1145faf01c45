#!/bin/sh
# mmdebstrap --customize-hook for the debian-amd64 guest (guests/debian/build.sh). $1 is the finished chroot;
# DEBIAN_GUEST_TMP (where the outputs go), DEBIAN_GUEST_KEY and DEBIAN_GUEST_PASSWORD come from build.sh.
# In unshare mode this runs inside the user namespace, so the tree is owned by root as seen from here.
set -eu
root=$1
out=$DEBIAN_GUEST_TMP

echo "root:$DEBIAN_GUEST_PASSWORD" | chroot "$root" chpasswd
chroot "$root" systemctl enable bootlab-fail.service
# a fixed machine-id: an empty one would make every boot a "first boot" (ConditionFirstBoot units)
echo "$DEBIAN_GUEST_KEY$DEBIAN_GUEST_KEY" > "$root/etc/machine-id"
# mmdebstrap leaves the build host's resolv.conf; QEMU's user-mode network has its DNS at 10.0.2.3
echo "nameserver 10.0.2.3" > "$root/etc/resolv.conf"

# for direct kernel boot
cp "$root"/boot/vmlinuz-* "$out/vmlinuz"
cp "$root"/boot/initrd.img-* "$out/initrd.img"
chroot "$root" dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\n' 'linux-image-[0-9]*' systemd |
    awk '$1 == "ii" {print $2, $3}' > "$out/versions.txt"

# what mmdebstrap's own cleanup would remove (it runs after the hooks: too late for the image)
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
       "$root"/var/log/apt/* "$root"/var/cache/ldconfig/aux-cache

# the tree without the /proc, /sys and /dev mounts, then an ext4 image made from it: no loop device, no mount
mkdir "$out/tree"
tar -C "$root" --one-file-system --xattrs -cf - . | tar -C "$out/tree" --xattrs --xattrs-include='*' -xpf -
mke2fs -q -F -t ext4 -L debian-root -d "$out/tree" "$out/rootfs.img" "$DEBIAN_GUEST_IMAGE_SIZE"
rm -rf "$out/tree"
