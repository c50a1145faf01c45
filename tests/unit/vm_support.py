"""Shared set-up for the VM supervisor unit tests (no tests here): a QemuMachine stand-in and recorded consoles."""

from __future__ import annotations

from pathlib import Path

from bootlab.console.rawlog import read_chunks

TESTS = Path(__file__).resolve().parents[1]
#: The recorded redox-sim kernel panic every supervisor test replays.
REDOX_PANIC = TESTS / "replay" / "redox-sim-kernel-panic.log"
#: A recorded redox-sim boot that logs in and ends at the shell's prompt.
REDOX_SHELL = TESTS / "replay" / "redox-sim-shell.log"


class FakeMachine:
    """What a supervisor (a named VM's or a one-shot boot's) asks of its QemuMachine once the console is up,
    without QEMU; it records what was asked (registers read, how it was stopped, the gdb stub started)."""

    pid = None
    returncode = None

    def __init__(self, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir
        self.running = True
        self.paused = False
        self.stopped = False
        self.stopped_gracefully: bool | None = None
        self.gdb_socket: Path | None = None

    def pause_on_guest_stop(self, keep: object) -> None:
        pass

    async def registers(self, symbols: str | None = None) -> list[object]:
        self.paused = True
        return []

    async def start_gdb(self, socket: Path) -> Path:
        self.gdb_socket = socket
        return socket

    async def stop(self, *, graceful: bool) -> None:
        self.stopped, self.stopped_gracefully, self.running = True, graceful, False

    async def wait(self, timeout: float | None = None) -> int:
        return 0

    def stderr_text(self) -> str:
        return ""

    def kill(self) -> None:
        self.running = False


def recorded_until(log: Path, marker: bytes) -> tuple[list[tuple[float, bytes]], float]:
    """A recorded console's chunks, and the time at which ``marker`` had been printed (a test's yardstick)."""
    data = read_chunks(log)
    seen = b""
    for t, chunk in data:
        seen += chunk
        if marker in seen:
            return data, t
    raise AssertionError(f"{marker!r} is not in {log}")


def lines_from(log: Path, needle: bytes, start: float) -> list[tuple[float, bytes]]:
    """A recorded console's chunks from the start of the line holding ``needle`` on, moved to begin at ``start``:
    a recorded crash that can follow another recording (a crash after ready)."""
    data = read_chunks(log)
    stream = b"".join(d for _, d in data)
    cut = stream.rfind(b"\n", 0, stream.index(needle)) + 1
    out: list[tuple[float, bytes]] = []
    offset = 0
    for t, d in data:
        if offset + len(d) > cut:
            out.append((t, d[max(0, cut - offset) :]))
        offset += len(d)
    return [(start + t - out[0][0], d) for t, d in out]
