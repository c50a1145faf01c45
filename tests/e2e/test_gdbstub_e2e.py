"""The fault registers through QEMU's gdb stub, on real QEMU with the linux-arm64 test guest.

The reference is gdb itself: ``gdb-multiarch -batch -ex 'target remote SOCK' -ex 'info registers ESR_EL1 ...'``
on the same paused machine must print the values bootlab read without gdb. Also checked on the real stub: the
guest stays paused (bootlab never detaches, and ``gdbserver none`` removes the stub and its socket), and a gdb
that quits *does* resume a paused guest unless it ``disconnect``s first (what a held crash must tell its user).

The guests reboot on panic (``panic=-1``); the tests that drive QEMU themselves make it pause instead of resetting
(QMP ``set-action reboot=shutdown,shutdown=pause``), as bootlab's observed boots do, so the registers are still
the panicked kernel's.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bootlab.faults import describe
from bootlab.lab.boot import BootOptions, boot
from bootlab.qemu.gdbstub import gdb_argv, gdbserver, has_gdbserver
from bootlab.qemu.sysregs import read_system_registers
from prereq import need_guests, requires

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "bootlab.toml"
GDB = shutil.which("gdb-multiarch")

pytestmark = pytest.mark.e2e
need_guests()
needs_gdb = requires(GDB is not None, "needs gdb-multiarch (make setup installs it)")

SYSREGS = ("ESR_EL1", "FAR_EL1", "ELR_EL1", "SPSR_EL1", "cpsr")


@asynccontextmanager
async def guest(mode: str, until: bytes, profile: str = "linux-arm64") -> AsyncIterator[tuple[Any, Path]]:
    """``profile`` in ``mode`` under real QEMU, its console read until ``until``; yields (QMP client, runtime
    dir). QEMU is killed (process group) on the way out."""
    from qemu.qmp import QMPClient

    from bootlab.host import probe
    from bootlab.profile.loader import load_project, resolve_profile
    from bootlab.qemu.invocation import binary_path, build_invocation
    from bootlab.qemu.process import QemuProcess
    from bootlab.qemu.runtime import RuntimeDir

    prof = resolve_profile(profile, project=load_project(GUESTS), sets=[f"vars.mode={mode}"])
    with RuntimeDir() as rt:
        inv = build_invocation(prof, probe(), rt)
        with QemuProcess([binary_path(inv.argv), *inv.argv[1:]], stderr_path=rt.stderr) as proc:
            for _ in range(1500):
                if rt.serial.exists():
                    break
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_unix_connection(str(rt.serial))
            qmp = QMPClient("e2e")
            await qmp.connect(str(rt.qmp))  # answers once the serial console is connected
            await qmp.execute("set-action", {"reboot": "shutdown", "shutdown": "pause"})
            seen = b""
            while until not in seen:
                data = await asyncio.wait_for(reader.read(65536), 180)
                assert data, seen[-2000:].decode(errors="replace")
                seen += data
            drain = asyncio.create_task(_drain(reader))
            try:
                yield qmp, rt.path
            finally:
                drain.cancel()
                writer.close()
                await qmp.disconnect()
        assert proc.returncode is not None  # no QEMU left behind


async def _drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def status(qmp: Any) -> str:
    return str((await qmp.execute("query-status"))["status"])


async def wait_paused_by_reset(qmp: Any) -> None:
    for _ in range(200):  # panic=-1: the guest asks for a reset, which QEMU turns into a pause
        if await status(qmp) == "shutdown":
            return
        await asyncio.sleep(0.05)
    assert await status(qmp) == "shutdown"


async def run_gdb(qmp: Any, directory: Path, *commands: str, arch: str = "aarch64", disconnect: bool = True) -> str:
    """gdb-multiarch in batch mode against a fresh stub on ``directory``/gdb.sock (stub removed afterwards):
    bootlab's own gdb command line (which ends with ``disconnect``), or, with ``disconnect=False``, the plain one
    a user would type (which detaches on exit)."""
    assert GDB is not None
    async with gdbserver(qmp.execute, directory / "gdb.sock") as sock:
        if disconnect:
            argv = gdb_argv(GDB, sock, architecture=arch, batch=commands)
        else:
            argv = [GDB, "-nx", "-batch", "-ex", f"target remote {sock}"]
            for c in commands:
                argv += ["-ex", c]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return out.decode(errors="replace")


def gdb_values(text: str) -> dict[str, int]:
    """``ESR_EL1        0x56000000          1442840576`` -> {"ESR_EL1": 0x56000000}."""
    return {m.group(1): int(m.group(2), 16) for m in re.finditer(r"^(\w+)\s+(0x[0-9a-f]+)\b", text, re.MULTILINE)}


@needs_gdb
def test_panic_registers_read_without_gdb_equal_what_gdb_reads() -> None:
    async def go() -> None:
        async with guest("panic", b"Kernel panic - not syncing") as (qmp, rundir):
            await wait_paused_by_reset(qmp)
            (cpu0,) = await read_system_registers(qmp.execute, directory=rundir)
            assert await status(qmp) == "shutdown"  # untouched
            assert not (rundir / "gdb.sock").exists() and not await has_gdbserver(qmp.execute)  # stub removed

            gdb = gdb_values(await run_gdb(qmp, rundir, f"info registers {' '.join(SYSREGS)}"))
            ours = {name: cpu0.get(name) for name in SYSREGS}
            assert ours == {name: gdb[name] for name in SYSREGS}
            # the panic came from `echo c > /proc/sysrq-trigger`: the last exception taken to EL1 is that write's
            # SVC, and the vCPU is in the kernel
            assert ours["ESR_EL1"] is not None and ours["ESR_EL1"] >> 26 == 0x15
            assert cpu0.exception == describe(ours["ESR_EL1"], ours["FAR_EL1"]) == "SVC #0x0"
            assert cpu0.el == 1

    asyncio.run(go())


@needs_gdb
@requires(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 not installed: run `make setup`")
def test_x86_64_cr2_cr3_equal_what_gdb_reads() -> None:
    async def go() -> None:
        async with guest("panic", b"Kernel panic - not syncing", "linux-x86_64") as (qmp, rundir):
            await wait_paused_by_reset(qmp)
            (cpu0,) = await read_system_registers(qmp.execute, directory=rundir)
            assert cpu0.architecture == "i386:x86-64" and cpu0.exception is None
            gdb = gdb_values(await run_gdb(qmp, rundir, "info registers cr2 cr3", arch="i386:x86-64"))
            assert cpu0.values == {"cr2": gdb["cr2"], "cr3": gdb["cr3"]}
            assert cpu0.values["cr3"]  # paging is on in a running Linux

    asyncio.run(go())


@needs_gdb
def test_a_paused_guest_stays_paused_and_gdb_must_disconnect_not_detach() -> None:
    async def go() -> None:
        async with guest("hang", b"bootlab-guest: hanging") as (qmp, rundir):
            await qmp.execute("stop")
            assert await status(qmp) == "paused"
            (cpu0,) = await read_system_registers(qmp.execute, directory=rundir)
            assert cpu0.get("ESR_EL1") is not None and cpu0.get("ELR_EL1") is not None
            assert await status(qmp) == "paused"  # bootlab never detaches: the guest did not run
            again = await read_system_registers(qmp.execute, directory=rundir)
            assert again[0].values == cpu0.values  # frozen: nothing moved in between

            await run_gdb(qmp, rundir, "info registers pc")
            assert await status(qmp) == "paused"  # bootlab's gdb command line ends with `disconnect`
            await run_gdb(qmp, rundir, "info registers pc", disconnect=False)  # batch mode ends with a detach...
            assert await status(qmp) == "running"  # ...which QEMU treats as "continue"

    asyncio.run(go())


def test_the_verdict_carries_the_panics_fault_registers(tmp_path: Path) -> None:
    """Through bootlab's own boot, with the guest as built (``panic=-1``: the kernel asks for a reset within
    milliseconds of its panic): bootlab makes QEMU pause at that request, so the verdict's registers are the
    panicked kernel's, decoded: the last exception taken to EL1 is the SVC of the `echo c > /proc/sysrq-trigger`
    write, from user space, and the vCPU is in the kernel. A rebooted guest would show a fresh boot's (ESR 0, nothing
    decoded). ELR is the SVC's return address in user space unless an interrupt taken in the kernel on its way to
    the panic overwrote it (an IRQ sets ELR_EL1, not ESR_EL1): either half is a real address, never zero."""
    from bootlab.profile.loader import load_project, resolve_profile

    prof = resolve_profile("linux-arm64", project=load_project(GUESTS), sets=["vars.mode=panic"])
    v = boot(prof, options=BootOptions(log_path=tmp_path / "panic.log"))
    assert v.outcome == "crash" and v.registers
    assert (tmp_path / "panic.log").read_bytes().count(b"Booting Linux") == 1  # paused, not rebooted
    r = v.registers[0]
    assert r.stub_error is None
    assert r.esr is not None and int(r.esr, 16) >> 26 == 0x15
    assert r.elr and (int(r.elr, 16) < 1 << 48 or int(r.elr, 16) >= 0xFFFF000000000000) and int(r.elr, 16) != 0
    assert r.far and r.spsr is not None and r.el == 1
    assert r.exception == "SVC #0x0"
    assert r.pc is not None and int(r.pc, 16) >= 0xFFFF000000000000  # in the kernel, where it panicked


def test_a_guest_that_resets_without_a_crash_still_reboots() -> None:
    """The other half of the rule: a reset request with no fatal line is carried out as QEMU would have (reset,
    run on), so a guest rebooting on purpose reboots; the next one, after a fatal line, is kept paused."""
    from bootlab.host import probe
    from bootlab.profile.loader import load_project, resolve_profile
    from bootlab.qemu.invocation import build_invocation
    from bootlab.qemu.machine import QemuMachine

    async def go() -> None:
        prof = resolve_profile("linux-arm64", project=load_project(GUESTS), sets=["vars.mode=panic"])
        async with QemuMachine() as m:
            m.launch(build_invocation(prof, probe(), m.runtime).argv)
            console = await m.console()
            asked: list[str] = []

            async def keep(reason: str) -> bool:  # the first panic is let go (a reboot), the second kept
                asked.append(reason)
                return len(asked) > 1

            m.pause_on_guest_stop(keep)
            seen = b""
            async with asyncio.timeout(180):
                while len(asked) < 2:
                    chunk = await console.read(0.2)
                    assert chunk is None or not chunk.eof, seen[-2000:].decode(errors="replace")
                    seen += chunk.data if chunk is not None else b""
            assert m.pauses_on_guest_stop and asked == ["guest-reset", "guest-reset"]
            assert seen.count(b"Booting Linux") == 2 and seen.count(b"Kernel panic - not syncing") == 2
            await wait_paused_by_reset(await m.qmp())  # kept: paused at the second reset request (bounded wait)
            assert not await m.guest_running() and m.running

    asyncio.run(go())
