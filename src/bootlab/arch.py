"""Guest and host architectures, by QEMU's names, in one place.

QEMU names its binaries ``qemu-system-aarch64``/``-x86_64``; hosts and distributions spell the same machines
``arm64``, ``amd64``, ``x64`` (macOS's ``platform.machine()`` says ``arm64``, Linux's ``aarch64``). Everything
in bootlab compares architectures by QEMU's names, normalised here.
"""

from __future__ import annotations

from typing import Literal, get_args

Arch = Literal["aarch64", "x86_64", "riscv64"]
#: the guest architectures bootlab builds command lines for, in `bootlab doctor`'s order
ARCHES: tuple[str, ...] = get_args(Arch)
#: Debian/Ubuntu package that ships each qemu-system binary
QEMU_PACKAGES = {"aarch64": "qemu-system-arm", "x86_64": "qemu-system-x86", "riscv64": "qemu-system-misc"}
_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64", "i686": "i386", "x86": "i386"}


def normalise_arch(name: str) -> str:
    """``arm64`` -> ``aarch64``, ``amd64``/``x64`` -> ``x86_64``; QEMU's own names pass through (lowercased)."""
    low = name.strip().lower()
    return _ALIASES.get(low, low)
