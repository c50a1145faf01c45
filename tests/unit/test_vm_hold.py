"""Held boots without QEMU: the hold rules, the held VM's name and gdb commands, the reset rule of observed boots,
the gdb stub under HVF (QEMU's refusal said plainly), the `held` state, and the CLI's one-line errors."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from fake_gdbstub import HVF_REFUSAL, FakeQemu, FakeStub, aarch64_stub
from vm_support import REDOX_PANIC, FakeMachine

from bootlab.cli.main import main
from bootlab.console.clock import BootClock
from bootlab.console.loop import BootLoop
from bootlab.console.observer import Observer
from bootlab.errors import InfraError, UsageError
from bootlab.lab.boot import keep_crashed
from bootlab.packs.loader import load_packs
from bootlab.profile.model import Profile
from bootlab.qemu.machine import QemuMachine, chooses_actions
from bootlab.verdict import Verdict
from bootlab.vm import manager, registry
from bootlab.vm.hold import GdbTarget, HoldFirst, claim_vm, held_lines, hold_crashes, prepare
from bootlab.vm.state import VmState, advance
from bootlab.vm.supervisor import Supervisor


@pytest.fixture(autouse=True)
def vm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "vms"
    monkeypatch.setenv("BOOTLAB_VM_HOME", str(home))
    return home


def profile(**extra: object) -> Profile:
    return Profile.model_validate(
        {"name": "Linux_Arm64", "arch": "aarch64", "machine": "virt", "kernel": "/k", "pack": ["linux"], **extra}
    )


# ---------------------------------------------------------------------------------------------- hold rules


def test_boot_holds_every_crash_and_hang_only() -> None:
    assert [hold_crashes(Verdict(outcome=o)) for o in ("crash", "hang", "pass", "timeout", "qemu-error")] == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_a_trial_holds_its_first_crash_and_no_other() -> None:
    rule = HoldFirst()
    assert not rule(Verdict(outcome="pass")) and not rule(Verdict(outcome="infra-error"))
    assert rule(Verdict(outcome="crash"))
    assert not rule(Verdict(outcome="crash")) and not rule(Verdict(outcome="hang"))
    assert rule.to_json() is None  # claimed, but nothing held yet (the VM reports back when it is)


# ---------------------------------------------------------------------------------------------- the held VM


def test_held_vms_are_named_after_the_profile_and_never_collide(vm_home: Path) -> None:
    first, second = claim_vm("Linux_Arm64"), claim_vm("Linux_Arm64")
    assert (first.name, second.name) == ("linux-arm64-1", "linux-arm64-2")
    assert oct(first.path.stat().st_mode & 0o777) == "0o700"
    assert claim_vm("x" * 40).name == "x" * 24 + "-1"
    assert claim_vm("p", "mine").name == "mine"
    with pytest.raises(UsageError, match="vm mine already exists"):
        claim_vm("p", "mine")
    with pytest.raises(UsageError, match="not valid"):
        claim_vm("p", "Bad_Name")


def test_prepare_points_the_vm_log_at_the_boots_log(tmp_path: Path) -> None:
    vm = claim_vm("p")
    log = tmp_path / "logs" / "boot.log"
    prepare(vm, profile(seed=7), log, tmp_path)
    assert vm.log.resolve() == log and vm.meta()["kind"] == "boot" and vm.meta()["seed"] == 7
    assert Profile.model_validate(vm.read("profile.json")).seed == 7


def test_the_attach_command_and_gdbs_batch_line() -> None:
    t = GdbTarget(
        vm="k", gdb_socket="/run/b/k-1/gdb.sock", gdb_error=None, symbols="/src/my kernel.elf", arch="aarch64"
    )
    assert t.attach_command() == "gdb-multiarch -ex 'target remote /run/b/k-1/gdb.sock' '/src/my kernel.elf'"
    argv = t.gdb_argv("/usr/bin/gdb-multiarch", batch=("bt", "info registers"))
    assert argv[:3] == ["/usr/bin/gdb-multiarch", "-nx", "-batch"]
    assert argv[-3:] == ["-ex", "disconnect", "/src/my kernel.elf"]  # never quit-detach: that resumes the guest
    lines = held_lines(t, Verdict(outcome="crash", title="linux: kernel panic"))
    assert any("`disconnect`" in ln for ln in lines) and any("bootlab vm stop k" in ln for ln in lines)
    none = GdbTarget(vm="k", gdb_socket=None, gdb_error="no stub here", symbols=None, arch=None)
    assert "  no gdb stub: no stub here" in held_lines(none, Verdict(outcome="hang"))
    with pytest.raises(UsageError, match="no gdb stub: no stub here"):
        none.gdb_argv()


class StubMachine:
    """The part of a QemuMachine that starts its gdb stub, over a fake QMP."""

    start_gdb = QemuMachine.start_gdb

    def __init__(self, qemu: FakeQemu) -> None:
        self.execute = qemu
        self.gdb_socket: Path | None = None


def held_supervisor(tmp_path: Path) -> Supervisor:
    vm = claim_vm("p", "held")
    prepare(vm, profile(), tmp_path / "boot.log", tmp_path)
    sup = Supervisor(vm, boot=True)
    sup.run_dir = registry.make_private_dir(tmp_path / "run")
    return sup


def test_a_held_vm_keeps_its_stub_on_a_private_socket(tmp_path: Path) -> None:
    sup = held_supervisor(tmp_path)
    qemu = FakeQemu(aarch64_stub())

    async def go() -> FakeStub:
        await sup._start_gdb(StubMachine(qemu))
        assert qemu.stub is not None
        return qemu.stub

    stub = asyncio.run(go())
    assert sup.gdb_socket == tmp_path / "run" / "gdb.sock" and sup.gdb_error is None
    assert qemu.lines == [f"gdbserver unix:{sup.gdb_socket},server=on,wait=off"]  # kept: no `gdbserver none`
    assert sup.status().gdb_socket == str(sup.gdb_socket)
    assert stub is not None


def test_hvf_without_guest_debug_holds_the_vm_and_says_why_there_is_no_stub(tmp_path: Path) -> None:
    """QEMU before 8.1 on Apple silicon (and x86 HVF) refuses `gdbserver`: the crash stays held (paused, its
    console and log there) and the reason is shown where the attach command would be."""
    sup = held_supervisor(tmp_path)
    asyncio.run(sup._start_gdb(StubMachine(FakeQemu(None, refuse=HVF_REFUSAL))))
    assert sup.gdb_socket is None and sup.gdb_error is not None
    assert "doesn't support guest debugging" in sup.gdb_error and "HVF on Apple silicon from QEMU 8.1" in sup.gdb_error
    status = sup.status().model_dump()
    target = GdbTarget.from_status(status)
    assert held_lines(target, Verdict(outcome="crash"))[1].startswith("  no gdb stub: ")
    # `vm gdb` on it: one line, exit 3 (the host's accelerator, not the user's input)
    sup.vm.write("state.json", status)
    sup.vm.write(
        "supervisor.json",
        {"pid": os.getpid(), "start": registry.process_start_time(os.getpid())},
    )
    with pytest.raises(InfraError, match=r"has no gdb stub: .*guest debugging"):
        manager.gdb_target("held")


def test_held_is_a_state_of_its_own() -> None:
    assert advance(VmState.BOOTING, VmState.HELD) == VmState.HELD
    assert advance(VmState.HELD, VmState.STOPPING) == VmState.STOPPING
    with pytest.raises(ValueError, match="cannot go from held to ready"):
        advance(VmState.HELD, VmState.READY)
    with pytest.raises(ValueError):
        advance(VmState.READY, VmState.HELD)  # only a boot's crash is held, never a ready VM


# ---------------------------------------------------------------------------------------------- the reset rule


class QuietConsole:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def read(self, timeout: float | None) -> None:
        await asyncio.sleep(timeout or 0)

    async def write(self, data: bytes) -> None:
        pass


def test_a_reset_after_a_fatal_line_is_kept_any_other_is_carried_out() -> None:
    obs = Observer(load_packs(["linux"]))
    loop = BootLoop(QuietConsole(), obs, BootClock(60, 30))  # type: ignore[arg-type]
    keep = keep_crashed(loop)
    obs.feed(b"[    1.0] Booting Linux on physical CPU 0x0\n", 1.0)
    assert asyncio.run(keep("guest-reset")) is False  # a reboot on purpose reboots
    obs.feed(b"[    2.0] Kernel panic - not syncing: sysrq triggered crash\n", 2.0)
    assert asyncio.run(keep("guest-reset")) is True  # panic=-1: paused as it died
    fresh = BootLoop(QuietConsole(), Observer(load_packs(["linux"])), BootClock(60, 30))  # type: ignore[arg-type]
    fresh.finish()
    assert asyncio.run(keep_crashed(fresh)("guest-shutdown")) is True  # decided: registers being read


@pytest.mark.parametrize(
    ("argv", "chooses"),
    [
        (["qemu-system-aarch64", "-M", "virt"], False),
        (["qemu-system-aarch64", "-no-reboot"], True),
        (["qemu-system-aarch64", "--no-shutdown"], True),
        (["qemu-system-aarch64", "-action", "reboot=shutdown"], True),
        (["qemu-system-aarch64", "-append", "no-reboot"], False),
    ],
)
def test_a_command_line_that_chooses_reset_actions_keeps_them(argv: list[str], chooses: bool) -> None:
    assert chooses_actions(argv) is chooses


# ---------------------------------------------------------------------------------------------- CLI bad input


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["boot", "linux-arm64", "--name", "x"], "--name names a held VM"),
        (["boot", "linux-arm64", "--hold-on-crash", "--fallback"], "give one of them"),
        (["boot", "linux-arm64", "--hold-on-crash", "--name", "Bad_Name"], "not valid"),
        (["vm", "gdb", "nosuch"], "vm 'nosuch' not found"),
        (["trial", "linux-arm64", "-n", "2", "--hold-first-crash", "--cluster", "tcp://127.0.0.1:1"], "--cluster"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_vm_gdb_on_a_vm_without_a_stub_says_how_to_get_one(capsys: pytest.CaptureFixture[str]) -> None:
    vm = registry.VmDir.of("plain")
    registry.make_private_dir(vm.path)
    vm.write("vm.json", {"name": "plain", "profile": "p", "forwards": [], "mounts": []})
    vm.write("state.json", {"name": "plain", "state": "ready"})
    vm.write("supervisor.json", {"pid": os.getpid(), "start": registry.process_start_time(os.getpid())})
    assert main(["vm", "gdb", "plain"]) == 2
    assert "launch it with `bootlab vm launch plain PROFILE --gdb`" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the owner's conversation


def one_shot(tmp_path: Path) -> tuple[Supervisor, FakeMachine, object]:
    """A one-shot supervisor on the recorded redox-sim kernel panic (replayed 5x faster), its boot log in tmp."""
    from bootlab.console.rawlog import read_chunks
    from bootlab.console.replay import ReplayConsole

    vm = claim_vm("redox-sim")
    prepare(vm, profile(), tmp_path / "boot.log", tmp_path)
    sup = Supervisor(vm, boot=True)
    sup.run_dir = registry.make_private_dir(tmp_path / "run")
    sup.packs = load_packs(["redox"])
    sup.obs = Observer(sup.packs, variables={"user": "root", "password": "password"})
    console = ReplayConsole(read_chunks(REDOX_PANIC), speed=5.0, after_end="silence")
    return sup, FakeMachine(sup.run_dir), console


async def owner_pair() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.StreamReader, asyncio.StreamWriter]:
    import socket as socket_module

    a, b = socket_module.socketpair()
    sr, sw = await asyncio.open_connection(sock=a)
    cr, cw = await asyncio.open_connection(sock=b)
    return sr, sw, cr, cw


def test_the_owner_gets_the_timeline_is_asked_and_the_crash_is_held(tmp_path: Path) -> None:
    import json

    from bootlab.vm import protocol

    sup, machine, console = one_shot(tmp_path)

    async def go() -> tuple[list[str], dict[str, object], asyncio.Task[None]]:
        sr, sw, cr, cw = await owner_pair()
        serve = asyncio.create_task(sup._serve_owner(protocol.BootRequest(hold=True), sr, sw))
        life = asyncio.create_task(sup._life(machine, console))
        kinds: list[str] = []
        while True:
            msg = json.loads(await asyncio.wait_for(cr.readline(), 30))
            if msg.get("event") == "loop":
                kinds.append(msg["kind"])
            elif msg.get("event") == "hold?":
                assert msg["verdict"]["outcome"] == "crash"
                cw.write(protocol.HoldAnswer(hold=True).encode())
            else:
                break
        cw.close()  # the owner goes: a held VM no longer depends on it
        await asyncio.wait_for(serve, 5)
        await asyncio.sleep(0.2)
        assert not life.done()  # still held, its console pumped into its own log
        life.cancel()
        return kinds, msg, life

    kinds, final, _ = asyncio.run(go())
    assert "stage" in kinds and "fatal" in kinds and "send" in kinds  # the menu answered, as `bootlab boot` does
    assert final["state"] == "held" and final["gdb_socket"] == str(tmp_path / "run" / "gdb.sock")
    assert final["verdict"]["title"] == "redox: kernel panic at src/context/memory.rs:LINE"  # type: ignore[index]
    assert sup.state == VmState.HELD and not machine.stopped and not sup.discard
    assert not sup.vm.log.is_symlink() and b"KERNEL PANIC" in sup.vm.log.read_bytes()  # a log of its own now
    assert (tmp_path / "boot.log").read_bytes() in sup.vm.log.read_bytes()


def test_an_owner_that_says_no_gets_the_verdict_and_the_vm_goes(tmp_path: Path) -> None:
    import json

    from bootlab.vm import protocol

    sup, machine, console = one_shot(tmp_path)

    async def go() -> dict[str, object]:
        sr, sw, cr, cw = await owner_pair()
        serve = asyncio.create_task(sup._serve_owner(protocol.BootRequest(hold=True), sr, sw))
        life = asyncio.create_task(sup._life(machine, console))
        while True:
            msg = json.loads(await asyncio.wait_for(cr.readline(), 30))
            if msg.get("event") == "hold?":
                cw.write(protocol.HoldAnswer(hold=False).encode())
            elif msg.get("event") is None:
                break
        await asyncio.wait_for(life, 5)
        cw.close()
        await asyncio.wait_for(serve, 5)
        return msg

    final = asyncio.run(go())
    assert final["state"] == "stopped" and final["verdict"]["outcome"] == "crash"  # type: ignore[index]
    assert machine.stopped and sup.discard and not sup.held  # _shutdown then removes the VM


def test_an_owner_gone_before_the_verdict_ends_the_boot(tmp_path: Path) -> None:
    import json

    from bootlab.vm import protocol

    sup, machine, console = one_shot(tmp_path)

    async def go() -> None:
        sr, sw, cr, cw = await owner_pair()
        serve = asyncio.create_task(sup._serve_owner(protocol.BootRequest(hold=True), sr, sw))
        life = asyncio.create_task(sup._life(machine, console))
        sup.task = life
        assert json.loads(await asyncio.wait_for(cr.readline(), 30))["event"] == "loop"
        cw.close()  # SIGKILLed bootlab: its socket closes
        await asyncio.wait_for(serve, 5)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(life, 5)

    asyncio.run(go())
    assert sup.stopping and sup.discard and not sup.held and sup.state == VmState.BOOTING
