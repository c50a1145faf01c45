#!/usr/bin/env bash
# Install what bootlab and its test guests need from the system's package manager, only when missing.
# Quiet when everything is present; uses sudo when not root. On macOS it says what to install with Homebrew.
set -euo pipefail

if [[ "$(uname -s)" == "Darwin" ]]; then
  if ! command -v qemu-system-aarch64 >/dev/null; then
    echo "setup: QEMU is missing: brew install qemu   (it ships the edk2 firmware too)" >&2
    exit 1
  fi
  exit 0
fi

if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
  for bin in qemu-system-aarch64 qemu-system-x86_64; do
    command -v "$bin" >/dev/null || { echo "setup: $bin missing and this is not Debian/Ubuntu: install QEMU with your package manager" >&2; exit 1; }
  done
  exit 0
fi

packages=(qemu-system-arm qemu-system-x86 qemu-efi-aarch64 ovmf qemu-utils mtools dosfstools cpio)
# the debian-amd64 test guest (guests/debian/build.sh): mmdebstrap makes the tree, mke2fs -d the disk image;
# as a normal user mmdebstrap runs in a user namespace, which needs newuidmap/newgidmap
packages+=(mmdebstrap e2fsprogs)
[[ "$(id -u)" -eq 0 ]] || packages+=(uidmap)
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
[[ "$(id -u)" -eq 0 ]] || sudo="sudo"
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
