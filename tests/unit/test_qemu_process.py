"""The short QEMU runs of the host probe (``-version``, ``-accel help``, the vCPU smoke test) go through
:func:`~bootlab.qemu.process.run_once`: the same session, parent-death signal and group kill as a boot's QEMU,
which :class:`~bootlab.qemu.machine.QemuMachine` owns. Stand-in binaries are shell scripts, so what is checked is
the process handling, not QEMU; processes are checked by the pid they were started with, never found by name."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bootlab.errors import BootlabError, InfraError
from bootlab.qemu.machine import LaunchFailure, QemuMachine
from bootlab.qemu.process import run_once


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "qemu-system-test"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_output_of_both_streams_stdin_and_the_c_locale(tmp_path: Path) -> None:
    qemu = script(tmp_path, 'read line; echo "out $line"; echo "err $LC_ALL" >&2; exit 3')
    assert run_once([qemu], stdin=b"quit\n") == (3, "out quit\nerr C\n")


def test_a_run_that_does_not_end_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    """A hung probe (a QEMU that never reads its `quit`) returns None at the timeout, and its process group goes:
    the child it forked into the background is gone too."""
    pidfile = tmp_path / "child.pid"
    qemu = script(tmp_path, f"sleep 300 & echo $! > {pidfile}; wait")
    started = time.monotonic()
    assert run_once([qemu], timeout=1.0) == (None, "")
    assert time.monotonic() - started < 30
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_a_missing_binary_is_an_infra_error(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="not found"):
        run_once([str(tmp_path / "no-such-qemu"), "-version"])


def wait_gone(pid: int, limit: float = 10.0) -> bool:
    deadline = time.monotonic() + limit
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return gone(pid)


def test_qemu_exiting_before_its_console_is_a_launch_failure_with_its_argv_status_and_words(tmp_path: Path) -> None:
    qemu = script(tmp_path, 'echo "qemu-system-test: unsupported machine type: \\"x\\"" >&2; exit 1')

    async def launch() -> None:
        async with QemuMachine() as m:
            m.launch([qemu, "-M", "x"])
            await m.console()

    with pytest.raises(LaunchFailure) as caught:
        asyncio.run(launch())
    failure = caught.value
    assert isinstance(failure, BootlabError)
    assert (failure.argv, failure.returncode) == ([qemu, "-M", "x"], 1)
    assert failure.stderr == 'qemu-system-test: unsupported machine type: "x"\n'
    assert str(failure) == "qemu: unsupported machine type"  # the qemu pack's title of QEMU's words


def sleeping_qemu(tmp_path: Path) -> tuple[str, Path]:
    """A stand-in that never serves a console, with a child of its own (QEMU's helpers) in the background."""
    pidfile = tmp_path / "child.pid"
    return script(tmp_path, f"sleep 300 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait"), pidfile


async def started(m: QemuMachine, qemu: str, pidfile: Path) -> list[int]:
    """Launch ``qemu`` in ``m``; its pid and its child's, once the child is there."""
    m.launch([qemu])
    assert m.pid is not None
    for _ in range(200):
        if pidfile.exists():
            break
        await asyncio.sleep(0.05)
    pids = [m.pid, int(pidfile.read_text())]
    assert not any(gone(p) for p in pids)
    return pids


def test_an_exception_inside_the_machine_leaves_no_qemu(tmp_path: Path) -> None:
    qemu, pidfile = sleeping_qemu(tmp_path)
    pids: list[int] = []

    async def boom() -> None:
        async with QemuMachine() as m:
            pids.extend(await started(m, qemu, pidfile))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(boom())
    assert len(pids) == 2 and all(wait_gone(p) for p in pids)


def test_a_cancelled_task_inside_the_machine_leaves_no_qemu(tmp_path: Path) -> None:
    qemu, pidfile = sleeping_qemu(tmp_path)
    pids: list[int] = []

    async def boot() -> None:
        async with QemuMachine() as m:
            pids.extend(await started(m, qemu, pidfile))
            await asyncio.sleep(300)

    async def main() -> None:
        task = asyncio.create_task(boot())
        while len(pids) < 2 and not task.done():  # a failed start ends the task: its error, not a hang
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert all(wait_gone(p) for p in pids)
