"""A real POSIX shell in a pseudo-terminal, as a :class:`~bootlab.console.base.Console`: the unit tests' stand-in for
a guest's serial console (echo, CR/LF translation, a line discipline, Ctrl-C as SIGINT), with no QEMU."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import subprocess
import termios
import time

from bootlab.console.base import Chunk


class PtyShell:
    """A Console over ``sh -i`` in a pseudo-terminal (the test's stand-in for a guest's serial console)."""

    def __init__(self, prompt: str = "root:/# ", shell: str = "sh", env: dict[str, str] | None = None) -> None:
        master, slave = pty.openpty()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PS1": prompt,
            "HOME": "/",
            "LC_ALL": "C",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [shell, "-i"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            close_fds=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the pty is its terminal: Ctrl-C is SIGINT
        )
        os.close(slave)
        self.master = master
        self.t0 = time.monotonic()
        self.typed_after: bytes | None = None  # typed right after the next framed command line
        self.seen = bytearray()

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def read(self, timeout: float | None) -> Chunk | None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self.master, lambda: ready.done() or ready.set_result(None))
        try:
            await asyncio.wait_for(ready, timeout)
        except TimeoutError:
            return None
        finally:
            loop.remove_reader(self.master)
        try:
            data = os.read(self.master, 65536)
        except OSError:
            data = b""
        self.seen += data
        return Chunk(data, self.now())

    async def write(self, data: bytes) -> None:
        os.write(self.master, data)
        if self.typed_after is not None and b"__BL B" in data:
            await asyncio.sleep(0.3)  # the command has started: what follows is type-ahead in the tty
            os.write(self.master, self.typed_after)
            self.typed_after = None

    async def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        os.close(self.master)
