"""The short QEMU runs of the host probe (``-version``, ``-accel help``, the vCPU smoke test) go through
:func:`~bootlab.qemu.process.run_once`: the same session, parent-death signal and group kill as a boot's QEMU.
Stand-in binaries are shell scripts, so what is checked is the process handling, not QEMU."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bootlab.errors import InfraError
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
