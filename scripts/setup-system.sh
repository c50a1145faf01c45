#!/usr/bin/env bash
# Install what bootlab and its test guests need from the system's package manager, only when missing.
# Quiet when everything is present; uses sudo when not root. On macOS it says what to install with Homebrew.
# With --test (what `make test` runs) also the browser the report tests open pages in: Debian's chromium, and
# the DejaVu fonts the report's plots are laid out with.
set -euo pipefail
test_deps=0
[[ "${1:-}" == "--test" ]] && test_deps=1

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

# gdb-multiarch: the e2e tests check the registers bootlab reads through QEMU's gdb stub against gdb's own reading
# (bootlab itself never needs gdb).
packages=(qemu-efi-aarch64 ovmf mtools dosfstools cpio gdb-multiarch)
qemu=(qemu-system-arm qemu-system-x86 qemu-utils)
# gcc: unit tests build a small ELF with symbols to check crash addresses are named from it
[[ $test_deps -eq 1 ]] && packages+=(chromium fonts-dejavu-core gcc libc6-dev)
# the debian-amd64 test guest (guests/debian/build.sh): mmdebstrap makes the tree, mke2fs -d the disk image;
# as a normal user mmdebstrap runs in a user namespace, which needs newuidmap/newgidmap
packages+=(mmdebstrap e2fsprogs)
# U-Boot for QEMU's virt board: the e2e test of a pack written from the README (tests/packs/uboot/)
packages+=(u-boot-qemu)
[[ "$(id -u)" -eq 0 ]] || packages+=(uidmap)
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)

sudo=""
[[ "$(id -u)" -eq 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
updated=""
apt_update() { [[ -n "$updated" ]] || { $sudo apt-get update -qq >/dev/null; updated=1; }; }

# QEMU: our users run 10.x. Debian 12 ships 7.2; its bookworm-backports suite has 10.0.x, which is what `make test`
# tests (7.2 stays covered by tests/e2e/test_qemu_versions.py). BOOTLAB_QEMU=distro keeps the distribution's QEMU.
. /etc/os-release 2>/dev/null || true
if [[ "${VERSION_CODENAME:-}" == "bookworm" && "${BOOTLAB_QEMU:-backports}" == "backports" ]]; then
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "setup: adding Debian's bookworm-backports suite (QEMU 10.x)" >&2
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      | $sudo tee /etc/apt/sources.list.d/bootlab-backports.sources >/dev/null
    updated=""
  fi
  version=$(dpkg-query -W -f='${Version}' qemu-system-arm 2>/dev/null || true)
  if [[ -z "$version" ]] || dpkg --compare-versions "$version" lt "1:10"; then
    echo "setup: installing QEMU 10.x from bookworm-backports (${qemu[*]})" >&2
    apt_update
    $sudo apt-get install -o DPkg::Lock::Timeout=120 -y -qq --no-install-recommends -t bookworm-backports "${qemu[@]}" >/dev/null
  fi
else
  packages+=("${qemu[@]}")
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup: installing ${missing[*]}" >&2
apt_update
$sudo apt-get install -o DPkg::Lock::Timeout=120 -y -qq --no-install-recommends "${missing[@]}" >/dev/null
