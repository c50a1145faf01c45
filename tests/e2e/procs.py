"""Process checks for e2e tests that prove no QEMU outlives bootlab: by pid from /proc, never by name."""

from __future__ import annotations

import time
from pathlib import Path


def children(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def children_of_process(pid: int) -> list[int]:
    """The direct children of ``pid`` forked by any of its threads (``children`` reads the main thread's only; a
    bootlab worker forks QEMU from each boot's own thread)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids
