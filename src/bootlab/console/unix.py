"""QEMU's serial console as a :class:`~bootlab.console.base.Console`: a unix socket QEMU serves.

QEMU serves it with ``wait=on``: the guest does not run until we are connected, so the first chunk is the first
byte of firmware output. Only :class:`~bootlab.qemu.machine.QemuMachine` opens one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from bootlab.console.base import READ_SIZE, Chunk


class UnixConsole:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, t0: float) -> None:
        self._reader = reader
        self._writer = writer
        self._t0 = t0  # time.monotonic() when QEMU started
        self._closed = False

    def now(self) -> float:
        return time.monotonic() - self._t0

    async def read(self, timeout: float | None) -> Chunk | None:
        try:
            data = await asyncio.wait_for(self._reader.read(READ_SIZE), timeout)
        except TimeoutError:
            return None
        except OSError:
            data = b""
        return Chunk(data, self.now())

    async def write(self, data: bytes) -> None:
        if self._closed:
            return
        with contextlib.suppress(OSError, RuntimeError):
            self._writer.write(data)
            await self._writer.drain()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
