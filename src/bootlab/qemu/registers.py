"""Registers at a crash: read QEMU's ``info registers`` text per vCPU, symbolise PC, ELR and LR.

A crash verdict with the PC (and on aarch64 ELR/LR, ESR/FAR) is where debugging starts; reading them costs a
few tens of milliseconds while the VM is paused anyway. The QMP side (pausing, asking per vCPU, the fault
registers through QEMU's gdb stub: :mod:`bootlab.qemu.sysregs`) is :meth:`bootlab.qemu.machine.QemuMachine.registers`;
this module only reads the text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from bootlab.verdict import VcpuRegisters

# name in the verdict -> regexes over `info registers` text (aarch64 TCG/KVM/HVF, x86_64)
_FIELDS: dict[str, tuple[str, ...]] = {
    "pc": (r"\bPC=([0-9a-fA-F]+)", r"\bRIP=([0-9a-fA-F]+)", r"\bEIP=([0-9a-fA-F]+)", r"\bpc\s*[:=]\s*([0-9a-fx]+)"),
    "sp": (r"\bSP=([0-9a-fA-F]+)", r"\bRSP=([0-9a-fA-F]+)", r"\bESP=([0-9a-fA-F]+)", r"\bSP_EL1=([0-9a-fA-F]+)"),
    "lr": (r"\bX30=([0-9a-fA-F]+)",),
    "elr": (r"\bELR_EL1=([0-9a-fA-F]+)",),
    "esr": (r"\bESR_EL1=([0-9a-fA-F]+)",),
    "far": (r"\bFAR_EL1=([0-9a-fA-F]+)",),
}


def parse_registers(cpu: int, text: str) -> VcpuRegisters:
    """Pick the registers a developer looks at first out of ``info registers`` text; keep the raw text."""
    found: dict[str, str] = {}
    for name, patterns in _FIELDS.items():
        for pat in patterns:
            m = re.search(pat, text)
            if m:
                found[name] = m.group(1).lower().removeprefix("0x")
                break
    return VcpuRegisters.model_validate({"cpu": cpu, "raw": text.replace("\r\n", "\n").strip(), **found})


class Symbolizer:
    """Address -> ``function+0xoff`` from an ELF's symbol table (pyelftools), built once per file."""

    def __init__(self, elf: Path) -> None:
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        funcs: list[tuple[int, int, str]] = []
        with elf.open("rb") as fh:
            for section in ELFFile(fh).iter_sections():
                if not isinstance(section, SymbolTableSection):
                    continue
                for sym in section.iter_symbols():
                    if sym["st_info"]["type"] == "STT_FUNC" and sym["st_value"]:
                        funcs.append((int(sym["st_value"]), int(sym["st_size"]), sym.name))
        funcs.sort()
        self._starts = [f[0] for f in funcs]
        self._funcs = funcs

    def lookup(self, addr: int) -> str | None:
        import bisect

        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0:
            return None
        start, size, name = self._funcs[i]
        if size and addr >= start + size:
            return None
        return f"{name}+{addr - start:#x}"


@lru_cache(maxsize=8)
def symbolizer(path: str) -> Symbolizer:
    return Symbolizer(Path(path))


def symbolise(regs: VcpuRegisters, elf: str | None) -> VcpuRegisters:
    """Fill ``symbols`` for pc/elr/lr when the profile names a kernel ELF with symbols."""
    if not elf:
        return regs
    try:
        sym = symbolizer(elf)
    except Exception as exc:  # a bad ELF must not cost the verdict
        regs.symbols["error"] = f"cannot read symbols from {elf}: {exc}"
        return regs
    for name in ("pc", "elr", "lr"):
        value = getattr(regs, name)
        if value:
            where = sym.lookup(int(value, 16))
            if where:
                regs.symbols[name] = where
    return regs
