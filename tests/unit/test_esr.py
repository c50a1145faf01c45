"""ESR_EL1 decoding: the Redox dumps in tests/packs/redox (their ``ty=`` is the exception class in binary),
examples built field by field from the Arm ARM's ESR_EL1 layout, and values Linux itself decodes in its arm64
"Mem abort info" report (a second, independent decoder)."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from bootlab.faults import decode, decode_ec_bits, describe, el_from_psr, tables

REDOX = Path(__file__).resolve().parents[1] / "packs" / "redox"


def esr(ec: int, iss: int = 0, il: int = 1) -> int:
    """ESR_EL1 from its fields (DDI0487 D17.2.37: EC [31:26], IL [25], ISS [24:0])."""
    return (ec << 26) | (il << 25) | iss


# ---------------------------------------------------------------------------------------------- the Arm ARM's layout
@pytest.mark.parametrize(
    ("value", "far", "line"),
    [
        # the issue's own example: user-space write to an unmapped page
        (esr(0x24, 0b1000111), 0x11000, "data abort from EL0: translation fault, level 3, write, FAR 0x11000"),
        (esr(0x25, 0b0000101), 0x0, "data abort from EL1: translation fault, level 1, read, FAR 0x0"),
        (esr(0x25, 0b1001111), 0x1234, "data abort from EL1: permission fault, level 3, write, FAR 0x1234"),
        (esr(0x24, 0b0001011), 0x4000, "data abort from EL0: access flag fault, level 3, read, FAR 0x4000"),
        (esr(0x24, 0b0100001), 0x1001, "data abort from EL0: alignment fault, read, FAR 0x1001"),
        (esr(0x25, 0b0010000), 0x8000, "data abort from EL1: synchronous external abort, read, FAR 0x8000"),
        (esr(0x20, 0b0001111), 0x400000, "instruction abort from EL0: permission fault, level 3, FAR 0x400000"),
        (esr(0x21, 0b0000110), 0xFFFF0000, "instruction abort from EL1: translation fault, level 2, FAR 0xffff0000"),
        # FnV (ISS[10]): FAR is not valid
        (esr(0x24, (1 << 10) | 0b0010000), 0x0, "data abort from EL0: synchronous external abort, read, FAR not valid"),
        # CM (ISS[8]): a cache maintenance instruction faulted; WnR says nothing then
        (
            esr(0x25, (1 << 8) | (1 << 6) | 0b0000111),
            0x9000,
            "data abort from EL1: translation fault, level 3, cache maintenance, FAR 0x9000",
        ),
        # S1PTW (ISS[7]): the fault happened walking the stage 1 tables
        (
            esr(0x24, (1 << 7) | 0b0000110),
            0x20,
            "data abort from EL0: translation fault, level 2, read, on a stage 1 table walk, FAR 0x20",
        ),
        # ISV (ISS[24]) with SAS=0b11 (8 bytes), SF=1, SRT=3: an 8-byte store from x3
        (
            esr(0x24, (1 << 24) | (0b11 << 22) | (3 << 16) | (1 << 15) | (1 << 6) | 0b0000111),
            0x10,
            "data abort from EL0: translation fault, level 3, write, 8 bytes via x3, FAR 0x10",
        ),
        (esr(0x24, 0b111111), 0x10, "data abort from EL0: fault status 0x3f, read, FAR 0x10"),  # reserved code
        (esr(0x15, 0x0), None, "SVC #0x0"),
        (esr(0x3C, 0x800), None, "BRK #0x800"),
        (esr(0x00, 0, il=1), None, "unknown reason"),
        (esr(0x2F, 0), None, "SError interrupt"),
        (esr(0x22, 0), 0x1002, "PC alignment fault: FAR 0x1002"),
        (esr(0x3F, 0), None, "exception class 0x3f (reserved)"),
    ],
)
def test_arm_arm_examples(value: int, far: int | None, line: str) -> None:
    assert describe(value, far) == line


def test_fields() -> None:
    s = decode(0x93C08006)
    assert (s.ec, s.il, s.iss) == (0x24, True, 0x1C08006)
    assert s.exception is not None and s.exception.kind == "abort" and s.from_el == 0
    assert s.fault is not None and (s.fault.fault, s.fault.level) == ("translation fault", 2)
    assert (s.write, s.access_bytes, s.access_register) == (False, 8, "x0")


def test_instruction_aborts_have_no_data_only_codes() -> None:
    # 0b100001 (alignment) and 0b010001 (tag check) are DFSC-only: an IFSC with them is not named
    assert decode(esr(0x20, 0b100001)).fault is None


def test_zero_means_nothing_recorded() -> None:
    assert describe(0) is None and describe(None) is None


def test_from_el_given_by_caller_only_when_the_class_does_not_say() -> None:
    assert describe(esr(0x15), from_el=0) == "SVC #0x0 from EL0"
    assert (
        describe(esr(0x24, 0b111), 0x8, from_el=1) == "data abort from EL0: translation fault, level 3, read, FAR 0x8"
    )


# ---------------------------------------------------------------------------------------------- Linux's decoder
@pytest.mark.parametrize(
    ("value", "linux_ec", "linux_fsc", "wnr"),
    [
        # (ESR, Linux "EC = 0x..: <class>", Linux fault_info name, WnR) as Linux 6.1 prints them in "Mem abort info"
        (0x96000005, "DABT (current EL)", "level 1 translation fault", 0),
        (0x96000045, "DABT (current EL)", "level 1 translation fault", 1),
        (0x9600004F, "DABT (current EL)", "level 3 permission fault", 1),
        (0x92000007, "DABT (lower EL)", "level 3 translation fault", 0),
        (0x8600000F, "IABT (current EL)", "level 3 permission fault", None),
        (0x9600000B, "DABT (current EL)", "level 3 access flag fault", 0),
        (0x96000021, "DABT (current EL)", "alignment fault", 0),
    ],
)
def test_agrees_with_linux(value: int, linux_ec: str, linux_fsc: str, wnr: int | None) -> None:
    s = decode(value)
    assert s.exception is not None and s.fault is not None
    kind = {"data abort": "DABT", "instruction abort": "IABT"}[s.exception.name]
    where = "current EL" if s.from_el == 1 else "lower EL"
    assert f"{kind} ({where})" == linux_ec
    ours = f"level {s.fault.level} {s.fault.fault}" if s.fault.level is not None else s.fault.fault
    assert ours == linux_fsc
    assert s.write == (None if wnr is None else bool(wnr))


# ---------------------------------------------------------------------------------------------- Redox's ty=
def redox_dumps() -> list[tuple[str, str, int | None, int | None]]:
    """(file, ty bits, ESR_EL1, FAR_EL1) for every 'Not an SVC' dump in the Redox golden logs."""
    out = []
    for log in sorted(REDOX.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        for i, line in enumerate(lines):
            m = re.search(r"\(ty=([01]+)\)", line)
            if not m:
                continue
            esr_v = far_v = None
            for follow in lines[i + 1 : i + 8]:
                if mm := re.search(r"ESR_EL1: ([0-9A-Fa-f]+)", follow):
                    esr_v = int(mm.group(1), 16)
                if mm := re.search(r"FAR_EL1: (0x[0-9a-fA-F]+)", follow):
                    far_v = int(mm.group(1), 16)
            out.append((log.name, m.group(1), esr_v, far_v))
    return out


def test_redox_ty_is_the_exception_class_of_the_esr_it_prints() -> None:
    dumps = redox_dumps()
    with_esr = [d for d in dumps if d[2] is not None]
    assert len(dumps) >= 6 and len(with_esr) >= 4  # the samples and the redox-sim guest logs
    for name, ty, value, _ in with_esr:
        assert int(ty, 2) == value >> 26, name  # type: ignore[operator]


def test_redox_dumps_decode() -> None:
    lines = {(n, describe(v, f)) for n, _, v, f in redox_dumps() if v is not None}
    assert (
        "guest-redox-sim-lacks-grant.log",
        "data abort from EL0: translation fault, level 3, read, FAR 0x88",
    ) in lines
    # the user's own redoxfs sample has only ty= and FAR (its ESR line was not pasted): the class still decodes
    ty = {n: t for n, t, _, _ in redox_dumps()}
    cls = decode_ec_bits(ty["sample-github-pannous-redox-claude-md-redoxfs-lacks-grant.log"])
    assert cls is not None and (cls.name, cls.from_el) == ("data abort", "lower")
    brk = decode_ec_bits(ty["sample-github-pannous-redox-notes-notes-md.log"])  # ty=111100
    assert brk is not None and brk.code == 0x3C and brk.name == "BRK"


@pytest.mark.parametrize(
    ("ty", "value", "far", "line"),
    [
        # values seen printed together in Redox aarch64 crash dumps (ty=, then ESR_EL1 and FAR_EL1)
        ("100100", 0x92000047, 0x8, "data abort from EL0: translation fault, level 3, write, FAR 0x8"),
        ("111100", 0xF2000001, None, "BRK #0x1"),
        ("0", 0x02000000, None, "unknown reason"),
    ],
)
def test_redox_ty_with_its_esr(ty: str, value: int, far: int | None, line: str) -> None:
    cls = decode_ec_bits(ty)
    assert cls is not None and cls.code == value >> 26
    assert describe(value, far) == line


def test_redox_el1_exception_dump() -> None:
    text = (REDOX / "guest-redox-sim-el1-exception.log").read_text()
    value = int(re.search(r"ESR_EL1: ([0-9A-F]+)", text).group(1), 16)  # type: ignore[union-attr]
    far = int(re.search(r"FAR_EL1 = (0x[0-9a-f]+)", text).group(1), 16)  # type: ignore[union-attr]
    assert describe(value, far) == "data abort from EL1: translation fault, level 1, write, FAR 0xffffff00fc982f0f"


def test_bad_ty_bits() -> None:
    for bad in ("", "102", "1111111", "0x24"):
        with pytest.raises(ValueError):
            decode_ec_bits(bad)


# ---------------------------------------------------------------------------------------------- PSTATE / SPSR
@pytest.mark.parametrize(
    ("psr", "el"),
    [(0x3C5, 1), (0x800000C5, 1), (0x60000000, 0), (0x80000000, 0), (0x60000005, 1), (0x3C9, 2), (0x10, 0), (0x13, 1)],
)
def test_el_from_psr(psr: int, el: int) -> None:
    assert el_from_psr(psr) == el


# ---------------------------------------------------------------------------------------------- the data file
def test_every_table_entry_has_a_reference_and_valid_fields() -> None:
    raw = tomllib.loads((resources.files("bootlab.data") / "esr.toml").read_text(encoding="utf-8"))
    assert raw["reference"]
    for key, entry in raw["ec"].items():
        assert 0 <= int(key, 16) < 64 and key == f"0x{int(key, 16):02X}", key
        assert entry["reference"].startswith("DDI0487") and entry["name"] and entry["description"]
        assert entry["kind"] in {"abort", "call", "trap", "debug", "error", "other"}
        assert entry.get("from_el") in (None, "lower", "same")
    for key, entry in raw["fsc"].items():
        assert 0 <= int(key, 16) < 64 and key == f"0x{int(key, 16):02X}", key
        assert entry["reference"].startswith("DDI0487") and entry["fault"]
        assert entry.get("level") in (None, -1, 0, 1, 2, 3)
    ecs, fscs = tables()
    assert len(ecs) == len(raw["ec"]) and len(fscs) == len(raw["fsc"])
