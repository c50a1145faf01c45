"""QEMU's size syntax, as ``-m`` reads it: ``2G``, ``512M``, ``1.5G``, ``2048`` (a bare number is MiB).

Used by the profile model (``memory = "2G"``) and by the command-line parser (``-m 2G`` in a pasted run script),
so both read sizes exactly as QEMU does.
"""

from __future__ import annotations

import re

_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([bkmgtpe]?)(?:i?b)?\s*$", re.IGNORECASE)


def size_bytes(text: str) -> float:
    """The size in bytes; ValueError when ``text`` is not a size."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size; write it like 2G or 512M")
    number, unit = m.groups()
    return float(number) * _UNITS[unit.lower() if unit else "m"]


def size_mib(text: str) -> float:
    """The size in MiB (possibly fractional)."""
    return size_bytes(text) / (1 << 20)


def format_size_mib(mib: int) -> str:
    """The shortest ``-m`` spelling: 2048 -> ``2G``, 512 -> ``512M``."""
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"
