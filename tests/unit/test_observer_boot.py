"""The boot's pieces that need no QEMU: qemu-error reasons, infra errors, register parsing and symbols."""

from __future__ import annotations

from pathlib import Path

import pytest
from elf_support import elf_with_function, needs_cc

from bootlab.console.observer import Observer
from bootlab.errors import UsageError
from bootlab.host import Host
from bootlab.lab.boot import BootOptions, boot, finish_verdict, qemu_exit_verdict
from bootlab.packs.loader import load_packs
from bootlab.profile.model import Profile
from bootlab.qemu.machine import exit_reason
from bootlab.qemu.registers import parse_registers, symbolise
from bootlab.verdict import Verdict

KVM_MSR = (
    "qemu-system-x86_64: -chardev socket,id=serial0,path=/tmp/b/serial.sock,server=on,wait=on: info: QEMU waiting"
    " for connection on: disconnected:unix:/tmp/b/serial.sock,server=on\n"
    "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n"
    "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion"
    " `ret == cpu->kvm_msr_buf->nmsrs' failed.\n"
)


def test_exit_reason_skips_info_lines() -> None:
    line, title = exit_reason(KVM_MSR)
    assert line == "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69"
    assert title == "qemu: error: failed to set MSR ADDR to ADDR"


def test_exit_reason_bad_machine() -> None:
    _, title = exit_reason("qemu-system-aarch64: unsupported machine type\nUse -machine help to list\n")
    assert title == "qemu: unsupported machine type"
    assert exit_reason("") == (None, None)


@pytest.mark.parametrize("refused", ['"no-such-machine"', "'virt-9'"])
def test_exit_reason_title_is_the_same_whether_qemu_quotes_the_refused_value(refused: str) -> None:
    """QEMU 10.x appends the value it refuses (`unsupported machine type: "x"`), 7.2 did not: the qemu pack's
    trailing-quote group leaves it out of the reason, so the title is 7.2's, while the line stays QEMU's own."""
    line, title = exit_reason(f"qemu-system-aarch64: unsupported machine type: {refused}\nUse -machine help\n")
    assert line == f"qemu-system-aarch64: unsupported machine type: {refused}"
    assert title == "qemu: unsupported machine type"


def test_exit_reason_title_has_quoted_values_inside_the_line_as_value() -> None:
    _, title = exit_reason("qemu-system-aarch64: Property 'virt-machine.foo' not found\n")
    assert title == "qemu: Property VALUE not found"
    _, title = exit_reason('qemu-system-aarch64: -cpu "max": bad value "y" for it\n')
    assert title == "qemu: -cpu VALUE: bad value VALUE for it"


def _observed(text: str) -> Observer:
    obs = Observer(load_packs(["linux"]))
    obs.feed_text(text, 1.0)
    obs.finish(2.0)
    return obs


BASE = Verdict(outcome="infra-error", seed=7, log="/l/console.log", accel="tcg", argv=["qemu-system-aarch64"])
BOOTED = "Booting Linux on physical CPU 0x0\n"
PANIC = BOOTED + "Kernel panic - not syncing: VFS: Unable to mount root fs\n"


def test_finish_verdict_keeps_base_and_adds_the_observer() -> None:
    v = finish_verdict(BASE, _observed(BOOTED), "hang", 12.34567)
    assert (v.outcome, v.seed, v.log, v.accel, v.argv) == ("hang", 7, "/l/console.log", "tcg", ["qemu-system-aarch64"])
    assert v.duration_s == 12.346 and v.stage == "kernel" and [s.name for s in v.stages] == ["kernel"]
    assert v.title == "hang after kernel"
    assert finish_verdict(BASE, _observed(""), "timeout", 1).title == "timeout after start"
    assert BASE.outcome == "infra-error" and BASE.stages == []  # the base is not modified


def test_finish_verdict_title_and_fatal_line() -> None:
    crash = finish_verdict(BASE, _observed(PANIC), "crash", 3, title="given")
    assert crash.title == "given" and crash.fatal_line is not None and "Kernel panic" in crash.fatal_line
    infra = finish_verdict(BASE, _observed(PANIC), "infra-error", 3, title="no socket")
    assert infra.title == "no socket" and infra.fatal_line is None
    assert (
        finish_verdict(BASE, _observed(PANIC), "crash", 3).title == "linux: kernel panic: VFS: Unable to mount root fs"
    )


def test_qemu_exit_verdict() -> None:
    stopped = qemu_exit_verdict(BASE, _observed(BOOTED), 0, 5, stderr="")
    assert (stopped.outcome, stopped.title) == ("crash", "guest stopped before ready (QEMU exited with 0)")
    err = qemu_exit_verdict(BASE, _observed(BOOTED), 1, 5, stderr=KVM_MSR)
    assert err.outcome == "qemu-error" and err.title == "qemu: error: failed to set MSR ADDR to ADDR"
    assert err.fatal_line == "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69"
    plain = qemu_exit_verdict(BASE, _observed(BOOTED), 1, 5, stderr="nothing known\n")
    assert (plain.outcome, plain.title, plain.fatal_line) == ("qemu-error", "QEMU exited with status 1", None)
    assert qemu_exit_verdict(BASE, _observed(""), 0, 5, stderr=KVM_MSR).outcome == "qemu-error"


def _profile(**kw: object) -> Profile:
    base: dict[str, object] = {"name": "t", "arch": "aarch64", "machine": "virt", "kernel": "/nonexistent"}
    return Profile.model_validate({**base, **kw})


def test_missing_qemu_binary_is_infra_error(tmp_path: Path) -> None:
    verdict = boot(
        _profile(pack=["linux"]),
        host=Host(os="linux", arch="x86_64"),
        options=BootOptions(log_path=tmp_path / "b.log"),
    )
    assert verdict.outcome == "infra-error"
    assert verdict.title is not None and "qemu-system-aarch64 not found" in verdict.title
    assert verdict.exit_code() == 3


def test_profile_without_pack_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="names no pack"):
        boot(_profile(), host=Host(os="linux", arch="x86_64"), options=BootOptions(log_path=tmp_path / "b.log"))


AARCH64_REGS = """CPU#0\r
 PC=ffffcf480a024e50 X00=ffffcf480ad03cb8 X01=0000000000000004\r
X29=ffffcf480bcb3d40 X30=ffffcf480a022c7c  SP=ffffcf480bcb3d40\r
PSTATE=800000c5 N--- EL1h     FPCR=00000000 FPSR=00000000\r
"""
X86_REGS = "RAX=0000000000000000 RBX=0000000000000001\nRSP=ffffc90000013e50 RBP=0\nRIP=ffffffff81a3c2d4 RFL=00000246\n"


def test_parse_aarch64_registers() -> None:
    r = parse_registers(0, AARCH64_REGS)
    assert (r.pc, r.sp, r.lr) == ("ffffcf480a024e50", "ffffcf480bcb3d40", "ffffcf480a022c7c")
    assert "\r" not in r.raw


def test_parse_x86_registers() -> None:
    r = parse_registers(1, X86_REGS)
    assert (r.cpu, r.pc, r.sp, r.lr) == (1, "ffffffff81a3c2d4", "ffffc90000013e50", None)


@needs_cc
def test_symbolise_pc_with_an_elf(tmp_path: Path) -> None:
    elf, addr = elf_with_function(tmp_path, "crash_here")
    regs = parse_registers(0, f"PC={addr + 4:016x} SP=0000000000001000 X30={addr:016x}")
    symbolise(regs, str(elf))
    assert regs.symbols == {"pc": "crash_here+0x4", "lr": "crash_here+0x0"}


def test_symbolise_bad_elf_does_not_raise(tmp_path: Path) -> None:
    bad = tmp_path / "bad.elf"
    bad.write_bytes(b"not an elf")
    regs = symbolise(parse_registers(0, "PC=0000000000001000"), str(bad))
    assert "error" in regs.symbols


def test_a_hang_at_a_prompt_is_titled_by_it_and_says_where_it_stopped() -> None:
    from bootlab.console.clock import BootClock
    from bootlab.report.text import stopped_lines

    obs = Observer(load_packs(["linux"]))
    obs.feed(BOOTED.encode() + b"Choose the boot entry\r\nboot: ", 1.0)
    clock = BootClock(timeout=100, quiet_timeout=10)
    clock.observe(1.0, obs)
    assert clock.expired(11.0) == "hang"
    v = finish_verdict(BASE, obs, "hang", 11.0, clock=clock)
    assert v.title == 'stopped at prompt "boot:"' and v.stage == "kernel"
    assert v.stopped is not None and (v.stopped.rule, v.stopped.flowing, v.stopped.silent_s) == ("quiet", False, 10.0)
    text = stopped_lines(v.stopped.model_dump())
    assert text[0] == "  stopped: no console output for 10.0s (quiet timeout)"
    assert text[-2:] == ["    | Choose the boot entry", "    | boot:"]
    # a timeout keeps its title and says where it was too
    t = finish_verdict(BASE, obs, "timeout", 100.0, clock=clock)
    assert t.title == "timeout after kernel" and t.stopped is not None and t.stopped.prompt == "boot:"
    assert t.stopped.rule == "timeout"
