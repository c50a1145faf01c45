"""What QEMU does when a command line does not say (``data/qemu_defaults.toml``): the machine, cpu model,
accelerator, vCPU count and memory it picks. The importer writes them into profiles; the exactness check treats
"absent" and "the default" as the same."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["default_cpu", "qemu_defaults"]


@cache
def qemu_defaults() -> dict[str, Any]:
    return tomllib.loads((resources.files("bootlab.data") / "qemu_defaults.toml").read_text(encoding="utf-8"))


def default_cpu(arch: str, machine: str | None) -> str | None:
    """QEMU's cpu model for ``machine`` when the command gives no ``-cpu`` (None: not known to bootlab)."""
    for entry in qemu_defaults()["cpu"]:
        if entry["arch"] == arch and machine and re.fullmatch(entry["machines"], machine):
            return str(entry["cpu"])
    return None
