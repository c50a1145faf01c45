"""Reading the fault registers through a (fake) QEMU: the QMP commands sent, the stub session, the values put
into the verdict's registers, and every way it can fail without costing the verdict. The same code runs on
real QEMU in tests/e2e/test_gdbstub_e2e.py."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from elf_support import elf_with_function, needs_cc
from fake_gdbstub import ANNEXES, HVF_REFUSAL, FakeQemu, FakeStub, aarch64_stub, le

from bootlab.qemu.gdbstub import GdbStubError
from bootlab.qemu.registers import parse_registers, symbolise
from bootlab.qemu.sysregs import SystemRegisters, fill_system_registers, read_system_registers


def test_reads_every_vcpu_and_leaves_nothing_behind() -> None:
    qemu = FakeQemu(aarch64_stub())
    found = asyncio.run(read_system_registers(qemu, timeout=3))
    assert [s.cpu for s in found] == [0, 1]
    assert found[0].values == {
        "ELR_EL1": 0x44A7CC,
        "ESR_EL1": 0x92000047,
        "FAR_EL1": 0x11000,
        "SPSR_EL1": 0,
        "cpsr": 0x3C5,
    }
    assert found[0].el == 1
    assert found[0].exception == "data abort from EL0: translation fault, level 3, write, FAR 0x11000"
    assert found[1].exception is None  # ESR 0: nothing taken yet
    # exactly these commands, in this order, whatever the accelerator (TCG, KVM, HVF from QEMU 8.1)
    assert qemu.socket is not None
    assert qemu.lines == [
        "info chardev",
        f"gdbserver unix:{qemu.socket},server=on,wait=off",
        "gdbserver none",
    ]
    assert not qemu.socket.parent.exists()  # the private directory is gone
    assert qemu.stub is not None and not any(p.startswith(("D", "c", "s", "vCont")) for p in qemu.stub.received)


def test_the_socket_goes_where_the_caller_says(tmp_path: Path) -> None:
    short = Path(__import__("tempfile").mkdtemp(prefix="bl-rt-", dir="/tmp"))
    try:
        qemu = FakeQemu(aarch64_stub())
        asyncio.run(read_system_registers(qemu, directory=short))
        assert qemu.socket == short / "gdb.sock" and short.is_dir()  # the caller's directory is kept
    finally:
        shutil.rmtree(short)


def test_hvf_before_qemu_8_1_refuses_and_says_why() -> None:
    qemu = FakeQemu(None, refuse=HVF_REFUSAL)
    with pytest.raises(GdbStubError) as info:
        asyncio.run(read_system_registers(qemu))
    msg = str(info.value)
    assert "doesn't support guest debugging" in msg and "HVF on Apple silicon from QEMU 8.1" in msg
    assert qemu.lines[-1].startswith("gdbserver unix:")  # nothing to stop: it never started


def test_the_profiles_own_stub_is_left_alone() -> None:
    qemu = FakeQemu(aarch64_stub(), chardevs="gdb: filename=disconnected:tcp:0.0.0.0:1234,server=on\n")
    with pytest.raises(GdbStubError, match="own gdb stub"):
        asyncio.run(read_system_registers(qemu))
    assert qemu.lines == ["info chardev"]


def test_x86_64_reads_cr2_and_cr3() -> None:
    target = (
        '<?xml version="1.0"?><target><architecture>i386:x86-64</architecture><feature name="org.gnu.gdb.i386.core">'
        + "".join(f'<reg name="r{i}" bitsize="64"/>' for i in range(28))
        + '<reg name="cr2" bitsize="64"/><reg name="cr3" bitsize="64"/></feature></target>'
    )
    stub = FakeStub({"target.xml": target}, ["p01.01"], {"p01.01": {28: le(0x1379B0D8), 29: le(0x1070000)}})
    (found,) = asyncio.run(read_system_registers(FakeQemu(stub)))
    regs = found.apply(parse_registers(0, "RIP=ffffffff81000000 RSP=0000000000001000"))
    assert (regs.cr2, regs.cr3, regs.esr, regs.exception, regs.el) == ("1379b0d8", "1070000", None, None, None)


def test_fill_puts_the_values_into_the_verdicts_registers() -> None:
    regs = [parse_registers(0, "PC=ffff000000001000 X30=ffff000000000ff0"), parse_registers(1, "PC=0")]
    asyncio.run(fill_system_registers(FakeQemu(aarch64_stub()), regs))
    assert (regs[0].elr, regs[0].esr, regs[0].far, regs[0].spsr, regs[0].el) == ("44a7cc", "92000047", "11000", "0", 1)
    assert regs[0].exception == "data abort from EL0: translation fault, level 3, write, FAR 0x11000"
    assert regs[0].stub_error is None and regs[1].elr == "400100"


def test_fill_records_why_when_the_stub_cannot_be_read() -> None:
    regs = [parse_registers(0, "PC=ffff000000001000")]
    asyncio.run(fill_system_registers(FakeQemu(None, refuse=HVF_REFUSAL), regs))
    assert regs[0].pc == "ffff000000001000" and regs[0].esr is None
    assert regs[0].stub_error and "guest debugging" in regs[0].stub_error


def test_a_hung_stub_is_bounded_by_the_timeout() -> None:
    qemu = FakeQemu(FakeStub(ANNEXES, ["p01.01"], {}, mute_on="qXfer"))
    with pytest.raises(GdbStubError, match=r"did not answer|took over"):
        asyncio.run(read_system_registers(qemu, timeout=0.5))
    assert qemu.lines[-1] == "gdbserver none"  # stopped all the same


@needs_cc
def test_elr_and_lr_are_symbolised_like_pc(tmp_path: Path) -> None:
    elf, addr = elf_with_function(tmp_path, "el0_fault")
    regs = parse_registers(0, f"PC=0000000000000010 X30={addr + 8:016x}")
    SystemRegisters(0, "aarch64", {"ELR_EL1": addr + 4, "ESR_EL1": 0x56000000}).apply(regs)
    symbolise(regs, str(elf))
    assert regs.symbols == {"elr": "el0_fault+0x4", "lr": "el0_fault+0x8"}


def test_register_lines_show_the_decoded_exception() -> None:
    from bootlab.report.text import register_lines

    regs = parse_registers(0, "PC=ffff000000001000 SP=ffff000000002000 X30=ffff000000000ff0")
    SystemRegisters(
        0, "aarch64", {"ELR_EL1": 0x4005D0, "ESR_EL1": 0x92000047, "FAR_EL1": 0x11000, "cpsr": 0x3C5}
    ).apply(regs)
    assert register_lines([regs.model_dump()]) == [
        "cpu0: pc=ffff000000001000 sp=ffff000000002000 lr=ffff000000000ff0",
        "cpu0: last exception: data abort from EL0: translation fault, level 3, write, FAR 0x11000; "
        "esr=92000047 elr=4005d0 (cpu at EL1)",
    ]
    # a verdict stored before these fields existed still prints
    assert register_lines([{"cpu": 1, "pc": "10", "sp": None, "lr": None, "symbols": {}, "raw": ""}]) == [
        "cpu1: pc=10 sp=None lr=None"
    ]


def test_register_lines_show_spsr_x86_fault_registers_and_why_the_stub_failed() -> None:
    from bootlab.report.text import register_lines

    arm = parse_registers(0, "PC=ffff000000001000 SP=ffff000000002000 X30=ffff000000000ff0")
    SystemRegisters(
        0, "aarch64", {"ESR_EL1": 0x92000047, "FAR_EL1": 0x11000, "SPSR_EL1": 0x80000000, "cpsr": 0x3C5}
    ).apply(arm)
    assert register_lines([arm.model_dump()])[1].endswith("esr=92000047 elr=None spsr=80000000 (cpu at EL1)")
    x86 = SystemRegisters(1, "i386:x86-64", {"cr2": 0x1379B0D8, "cr3": 0x1070000}).apply(
        parse_registers(1, "RIP=ffffffff81000000 RSP=0000000000001000")
    )
    assert register_lines([x86.model_dump()])[1:] == ["cpu1: cr2=1379b0d8 cr3=1070000"]
    regs = [parse_registers(0, "PC=ffff000000001000")]
    asyncio.run(fill_system_registers(FakeQemu(None, refuse=HVF_REFUSAL), regs))
    (why,) = register_lines([regs[0].model_dump()])[1:]
    assert why.startswith("cpu0: no fault registers: ") and "guest debugging" in why
