"""Decode AArch64 ESR_EL1 (with FAR_EL1) into the one line a kernel developer needs first.

``0x92000007`` with FAR ``0x88`` becomes ``data abort from EL0: translation fault, level 3, read, FAR 0x88``: what
kind of exception, whether user space (EL0) or the kernel (EL1) took it, and for aborts the fault status
(translation / permission / access flag, and the translation table level), read or write, and the address.
The tables are data (``bootlab/data/esr.toml``, each entry with its Arm ARM reference); this module only cuts
the register into fields.

Redox prints the exception class in binary in its own dumps (``Not an SVC induced synchronous exception
(ty=100100)``): :func:`decode_ec_bits` reads that too.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

EC_SHIFT = 26
EC_MASK = 0x3F
IL_BIT = 1 << 25
ISS_MASK = (1 << 25) - 1
# ISS bits of instruction and data aborts (DDI0487 D17.2.37, "ISS encoding for an exception from a Data Abort")
FSC_MASK = 0x3F
WNR = 1 << 6
S1PTW = 1 << 7
CM = 1 << 8
EA = 1 << 9
FNV = 1 << 10
ISV = 1 << 24
SAS_SHIFT = 22
SRT_SHIFT = 16
SF = 1 << 15  # ISV: the transfer register is 64-bit (Xn), else 32-bit (Wn)
CALL_IMM_MASK = 0xFFFF  # SVC/HVC/SMC/BRK immediates in ISS[15:0]

_ABORT_ECS = frozenset({0x20, 0x21, 0x24, 0x25})
_DATA_ABORT_ECS = frozenset({0x24, 0x25})
_IMMEDIATE_ECS = frozenset({0x11, 0x15, 0x16, 0x17, 0x3C})


@dataclass(frozen=True)
class ExceptionClass:
    code: int
    name: str
    description: str
    kind: str
    from_el: str | None  # "lower" | "same" | None (the EC does not say)
    reference: str


@dataclass(frozen=True)
class FaultStatus:
    code: int
    fault: str
    level: int | None
    data_only: bool
    reference: str


@cache
def tables() -> tuple[dict[int, ExceptionClass], dict[int, FaultStatus]]:
    """The EC and fault-status tables from ``data/esr.toml``, keyed by code."""
    raw: dict[str, Any] = tomllib.loads((resources.files("bootlab.data") / "esr.toml").read_text(encoding="utf-8"))
    ecs = {
        int(k, 16): ExceptionClass(int(k, 16), v["name"], v["description"], v["kind"], v.get("from_el"), v["reference"])
        for k, v in raw["ec"].items()
    }
    fscs = {
        int(k, 16): FaultStatus(int(k, 16), v["fault"], v.get("level"), bool(v.get("data_only")), v["reference"])
        for k, v in raw["fsc"].items()
    }
    return ecs, fscs


@dataclass(frozen=True)
class Syndrome:
    """ESR_EL1 cut into its fields, with the table entries that name them."""

    esr: int
    ec: int
    il: bool
    iss: int
    exception: ExceptionClass | None
    from_el: int | None  # 0 = user space, 1 = kernel; None when neither the EC nor the caller says
    fault: FaultStatus | None = None  # aborts only
    fsc: int | None = None
    write: bool | None = None  # data aborts only (None for cache maintenance)
    cache_maintenance: bool = False
    stage1_walk: bool = False
    external: bool = False
    far_valid: bool = True
    access_bytes: int | None = None  # ISV: size of the faulting access
    access_register: str | None = None  # ISV: the register transferred ("x3", "w3")
    immediate: int | None = None  # SVC/HVC/SMC/BRK #imm

    @property
    def is_abort(self) -> bool:
        return self.ec in _ABORT_ECS

    def line(self, far: int | None = None) -> str:
        """One line: ``data abort from EL0: translation fault, level 3, write, FAR 0x11000``."""
        if self.exception is None:
            head = f"exception class {self.ec:#04x} (reserved)"
        else:
            head = self.exception.name
            if self.immediate is not None:
                head += f" #{self.immediate:#x}"
        if self.from_el is not None:
            head += f" from EL{self.from_el}"
        details: list[str] = []
        if self.is_abort:
            if self.fault is None:
                details.append(f"fault status {self.fsc:#04x}")
            else:
                details.append(self.fault.fault)
                if self.fault.level is not None:
                    details.append(f"level {self.fault.level}")
            if self.cache_maintenance:
                details.append("cache maintenance")
            elif self.write is not None:
                details.append("write" if self.write else "read")
            if self.access_bytes is not None:
                reg = f" via {self.access_register}" if self.access_register is not None else ""
                details.append(f"{self.access_bytes} bytes{reg}")
            if self.stage1_walk:
                details.append("on a stage 1 table walk")
            if far is not None or not self.far_valid:
                details.append(f"FAR {far:#x}" if self.far_valid and far is not None else "FAR not valid")
        elif self.ec in (0x22, 0x26) and far is not None:  # alignment faults report the address in FAR
            details.append(f"FAR {far:#x}")
        return f"{head}: {', '.join(details)}" if details else head


def decode(esr: int, *, from_el: int | None = None) -> Syndrome:
    """Cut ``esr`` (ESR_EL1) into fields. ``from_el`` is the EL the exception came from when the caller knows it
    (SPSR_EL1.M of *the same* exception, as Redox's dump prints it); the EC's own lower/same split wins."""
    ecs, fscs = tables()
    ec = (esr >> EC_SHIFT) & EC_MASK
    iss = esr & ISS_MASK
    cls = ecs.get(ec)
    el = from_el
    if cls is not None and cls.from_el == "lower":
        el = 0
    elif cls is not None and cls.from_el == "same":
        el = 1
    fields: dict[str, Any] = {}
    if ec in _ABORT_ECS:
        fsc = iss & FSC_MASK
        fault = fscs.get(fsc)
        if fault is not None and fault.data_only and ec not in _DATA_ABORT_ECS:
            fault = None
        fields.update(
            fsc=fsc,
            fault=fault,
            stage1_walk=bool(iss & S1PTW),
            external=bool(iss & EA),
            far_valid=not (iss & FNV),
        )
        if ec in _DATA_ABORT_ECS:
            cm = bool(iss & CM)
            fields.update(cache_maintenance=cm, write=None if cm else bool(iss & WNR))
            if iss & ISV:
                width = "x" if iss & SF else "w"
                fields.update(
                    access_bytes=1 << ((iss >> SAS_SHIFT) & 0x3), access_register=f"{width}{(iss >> SRT_SHIFT) & 0x1F}"
                )
    elif ec in _IMMEDIATE_ECS:
        fields["immediate"] = iss & CALL_IMM_MASK
    return Syndrome(esr=esr, ec=ec, il=bool(esr & IL_BIT), iss=iss, exception=cls, from_el=el, **fields)


def describe(esr: int | None, far: int | None = None, *, from_el: int | None = None) -> str | None:
    """The one-line decoding, or None when there is nothing to decode (no value, or 0: no exception recorded
    since reset; QEMU resets ESR_EL1 to 0)."""
    if not esr:
        return None
    return decode(esr, from_el=from_el).line(far)


def decode_ec_bits(bits: str) -> ExceptionClass | None:
    """Redox's ``ty=100100``: the exception class printed in binary (``esr >> 26``). 0b100100 is 0x24, a data
    abort from a lower EL (user space); 0b111100 is 0x3C, a BRK instruction."""
    text = bits.strip().removeprefix("0b")
    if not text or any(c not in "01" for c in text) or len(text) > 6:
        raise ValueError(f"not an exception class in binary: {bits!r}")
    return tables()[0].get(int(text, 2))


def el_from_psr(psr: int) -> int:
    """The EL in a program status value: SPSR_EL1 (the EL an exception came from) or the PSTATE that QEMU's gdb
    stub reports as ``cpsr`` (the EL the vCPU runs at). M[4] = 0 is AArch64 with the EL in M[3:2]; in AArch32,
    user mode (0x10) is EL0 and the other modes EL1."""
    if psr & 0x10:
        return 0 if (psr & 0x1F) == 0x10 else 1
    return (psr >> 2) & 0x3
