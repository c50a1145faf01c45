"""The VM supervisor without QEMU: a boot that cannot start is the VM's verdict, published at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from vm_support import REDOX_PANIC, REDOX_SHELL, TESTS, FakeMachine, lines_from, recorded_until

from bootlab.console.observer import Observer
from bootlab.profile.model import Profile
from bootlab.vm import manager, registry
from bootlab.vm.supervisor import Supervisor


@pytest.fixture(autouse=True)
def vm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "vms"
    monkeypatch.setenv("BOOTLAB_VM_HOME", str(home))
    return home


def make_vm(name: str, tmp_path: Path, pack: list[str]) -> registry.VmDir:
    vm = registry.VmDir.of(name)
    registry.make_private_dir(vm.path)
    vm.write("vm.json", {"name": name, "profile": "t", "project_root": str(tmp_path), "forwards": [], "mounts": []})
    profile = Profile.model_validate(
        {"name": "t", "arch": "aarch64", "machine": "virt", "kernel": "/nonexistent", "pack": pack}
    )
    vm.write("profile.json", profile.model_dump(mode="json"))
    return vm


def test_unknown_pack_is_the_vms_infra_error(tmp_path: Path) -> None:
    vm = make_vm("badpack", tmp_path, ["nope"])
    sup = Supervisor(vm)  # constructing it must not load packs (nor die on them)
    assert asyncio.run(sup.run()) == 0
    state = vm.read("state.json")
    assert state["state"] == "stopped"
    assert state["verdict"]["outcome"] == "infra-error"
    assert "unknown pack 'nope'" in state["verdict"]["title"]
    assert "unknown pack 'nope'" in state["note"]
    assert vm.read("verdicts.json")[-1]["outcome"] == "infra-error"
    assert not vm.supervisor_file.exists()
    assert sup.run_dir is not None and not sup.run_dir.exists()


def test_unknown_pack_is_reported_without_waiting_for_the_start_timeout(tmp_path: Path) -> None:
    vm = make_vm("badpack2", tmp_path, ["nope"])
    t0 = time.monotonic()
    manager.spawn(vm)  # a real detached supervisor process
    result = manager.wait_settled(vm, timeout=10)
    assert time.monotonic() - t0 < manager.START_TIMEOUT / 2
    assert result["state"] == "stopped"
    verdict = result.get("verdict") or vm.read("state.json")["verdict"]
    assert verdict["outcome"] == "infra-error" and "unknown pack 'nope'" in verdict["title"]
    assert "Traceback" not in vm.supervisor_out.read_text()


def test_supervisor_ends_a_crash_on_the_dump_end_line_like_bootlab_boot(tmp_path: Path) -> None:
    """The recorded redox-sim kernel panic, replayed 5x faster than recorded, with the quiet-based crash clocks
    stretched to 60 s: only the pack's dump_end line (`HALT`) can end this boot within a second."""
    from bootlab.console.replay import ReplayConsole
    from bootlab.packs.loader import load_packs

    data, halt = recorded_until(REDOX_PANIC, b"\nHALT")
    vm = make_vm("dumpend", tmp_path, ["redox"])
    sup = Supervisor(vm)
    sup.grace = sup.max_grace = 60.0
    sup.packs = load_packs(["redox"])
    sup.obs = Observer(sup.packs, variables={"user": "root", "password": "password"})
    machine = FakeMachine()
    console = ReplayConsole(data, speed=5.0, after_end="silence")

    async def go() -> None:
        await asyncio.wait_for(sup._life(machine, console), 20.0)

    asyncio.run(go())
    assert sup.verdict is not None and sup.verdict.outcome == "crash"
    assert sup.verdict.title == "redox: kernel panic at src/context/memory.rs:LINE"
    assert sup.verdict.duration_s is not None and halt <= sup.verdict.duration_s < halt + 5.0  # not +60
    assert machine.paused and machine.stopped_gracefully is True  # registers, then a clean quit (overlays)
    assert sup.state == "stopped" and vm.read("state.json")["state"] == "stopped"


def test_a_named_vm_crashing_after_ready_is_crashed_at_the_dump_end_line(tmp_path: Path) -> None:
    """A named VM ready at its redox shell, then the recorded kernel panic, replayed 5x faster than recorded with
    the crash clocks stretched to 60 s: the watch after ready ends the crash at `HALT` (the pack's dump_end), as
    `bootlab boot` does, and the VM is crashed with the panic's title; its registers are not read (it runs on,
    attachable, until stopped)."""
    from bootlab.console.rawlog import read_chunks
    from bootlab.console.replay import ReplayConsole
    from bootlab.packs.loader import load_packs
    from bootlab.vm.state import VmState

    shell = read_chunks(REDOX_SHELL)
    panic = lines_from(REDOX_PANIC, b"KERNEL PANIC", shell[-1][0] + 1.0)
    vm = make_vm("later", tmp_path, ["redox"])
    sup = Supervisor(vm)
    sup.grace = sup.max_grace = 60.0
    sup.packs = load_packs(["redox"])
    sup.obs = Observer(sup.packs, variables={"user": "root", "password": "password"}, wait_for_shell=True)
    machine = FakeMachine()
    console = ReplayConsole(shell + panic, speed=5.0, after_end="silence")

    async def go() -> float:
        life = asyncio.create_task(sup._life(machine, console))
        try:
            while sup.state != VmState.CRASHED:  # only a ready VM becomes crashed (a boot's crash stops it)
                assert not life.done(), "the watch ended without a crash"
                await asyncio.sleep(0.01)
            return console.now()
        finally:
            life.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await life

    crashed_at = asyncio.run(asyncio.wait_for(go(), 20.0))
    halt = next(t for t, d in panic if b"HALT" in d)
    assert halt <= crashed_at < halt + 5.0  # not after the 60 s grace
    assert sup.crash is not None and sup.crash["title"] == "redox: kernel panic at src/context/memory.rs:LINE"
    assert sup.verdict is not None and sup.verdict.outcome == "crash"
    assert sup.verdict.title == sup.crash["title"] and sup.verdict.fatal_line == sup.crash["line"]
    assert not machine.paused and not machine.stopped
    assert vm.read("state.json")["state"] == "crashed"


def test_launch_is_ready_at_the_prompt_without_probing_the_shell(tmp_path: Path) -> None:
    """The recorded U-Boot console (a guest without a POSIX sh), replayed: the VM is ready as soon as `=> ` shows,
    and nothing but the pack's own answer was typed into it. Before, the supervisor typed bootlab's exec sync and
    waited up to 10 s for a marker U-Boot never prints before saying ready (`vm launch` returned after 11.8 s)."""
    from bootlab.console.rawlog import read_chunks
    from bootlab.console.replay import ReplayConsole
    from bootlab.packs.loader import load_packs
    from bootlab.vm.state import VmState

    uboot = TESTS / "packs" / "uboot"
    data = read_chunks(uboot / "uboot-qemu_arm64-stop-autoboot.log")
    vm = make_vm("uboot", tmp_path, ["uboot"])
    sup = Supervisor(vm)
    sup.packs = load_packs(["uboot"], uboot)
    sup.obs = Observer(sup.packs, wait_for_shell=True)
    console = ReplayConsole(data, speed=1.0, after_end="silence")

    async def go() -> tuple[float, list[tuple[float, bytes]]]:
        life = asyncio.create_task(sup._life(FakeMachine(), console))
        try:
            while sup.state != VmState.READY:
                assert not life.done(), "the boot ended before ready"
                await asyncio.sleep(0.01)
            return console.now(), list(console.sent)
        finally:
            life.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await life

    ready_at, typed = asyncio.run(asyncio.wait_for(go(), 30))
    prompt = data[-1][0]
    assert prompt <= ready_at < prompt + 1.0
    assert [d for _, d in typed] == [b"\n"]  # Enter at the countdown, and no exec framing
    assert sup.verdict is not None and sup.verdict.outcome == "pass" and sup.verdict.stage == "autoboot"


def test_launch_with_a_wrong_password_is_login_failed_at_the_first_refusal(tmp_path: Path) -> None:
    """The recorded debian-amd64 console with a wrong password, replayed 50x faster: the VM's boot ends at the first
    `Login incorrect` as login-failed (live it went on for 3 minutes to `hang after login`), and the VM is stopped."""
    from bootlab.console.replay import ReplayConsole
    from bootlab.packs.loader import load_packs

    log = TESTS / "packs" / "linux" / "guest-debian-amd64-wrong-password.log"
    data, refused = recorded_until(log, b"Login incorrect")
    vm = make_vm("wrongpw", tmp_path, ["linux"])
    sup = Supervisor(vm)
    sup.packs = load_packs(["linux"])
    sup.obs = Observer(sup.packs, variables={"user": "root", "password": "wrong"}, wait_for_shell=True)
    machine = FakeMachine()
    console = ReplayConsole(data, speed=50.0, after_end="silence")
    asyncio.run(asyncio.wait_for(sup._life(machine, console), 30.0))
    assert sup.verdict is not None and sup.verdict.outcome == "login-failed"
    assert (sup.verdict.title, sup.verdict.fatal_line) == ("login failed", "Login incorrect")
    assert sup.verdict.duration_s is not None and refused <= sup.verdict.duration_s < refused + 5.0
    assert sup.state == "stopped" and "boot failed: login-failed: login failed" in vm.read("state.json")["note"]


@pytest.mark.parametrize("gdb", [True, False])
def test_launch_with_gdb_starts_the_stub_before_the_boot_and_publishes_its_socket(tmp_path: Path, gdb: bool) -> None:
    """`vm launch --gdb` (vm.json's `gdb`): the stub is started before the guest's first line is read, beside the
    control socket, and state.json (what `vm gdb NAME` reads) names it; without it no stub is started."""
    from bootlab.console.rawlog import read_chunks
    from bootlab.console.replay import ReplayConsole
    from bootlab.packs.loader import load_packs
    from bootlab.vm.state import VmState

    uboot = TESTS / "packs" / "uboot"
    vm = make_vm("withgdb", tmp_path, ["uboot"])
    vm.write("vm.json", {**vm.read("vm.json"), "gdb": gdb})
    sup = Supervisor(vm)
    sup.run_dir = tmp_path / "run"
    sup.packs = load_packs(["uboot"], uboot)
    sup.obs = Observer(sup.packs, wait_for_shell=True)
    console = ReplayConsole(read_chunks(uboot / "uboot-qemu_arm64-stop-autoboot.log"), speed=1.0, after_end="silence")
    seen_at_start: list[tuple[int, int]] = []

    class Machine(FakeMachine):
        async def start_gdb(self, socket: Path) -> Path:
            seen_at_start.append((len(sup.tail), len(sup.obs.stages)))  # nothing of the boot seen yet
            return await super().start_gdb(socket)

    machine = Machine()

    async def go() -> None:
        life = asyncio.create_task(sup._life(machine, console))  # type: ignore[arg-type]
        try:
            while sup.state != VmState.READY:
                assert not life.done(), "the boot ended before ready"
                await asyncio.sleep(0.01)
        finally:
            life.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await life

    asyncio.run(asyncio.wait_for(go(), 30))
    state = vm.read("state.json")
    assert sup.tail and sup.obs.stages  # the boot was seen by ready
    if gdb:
        assert seen_at_start == [(0, 0)] and machine.gdb_socket == tmp_path / "run" / "gdb.sock"
        assert state["gdb_socket"] == str(tmp_path / "run" / "gdb.sock") and state["gdb_error"] is None
    else:
        assert seen_at_start == [] and state["gdb_socket"] is None
