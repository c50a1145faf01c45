"""One console, several readers: the boot loop, an exec, attached terminals.

A named VM's console is read by the boot loop (its observer watches for crashes for the VM's whole life), by
each exec while it runs, and copied to every attached terminal. :class:`ConsoleHub` reads the console once and
hands every chunk to each :class:`Tap` (a :class:`~bootlab.console.base.Console` of its own, so exec and the
loop are written against the same protocol as everywhere else) and to plain sinks (attached terminals). A tap
sees what arrives after it was opened; writes from any tap go to the one console.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from bootlab.console.base import Chunk, Console

Sink = Callable[[bytes], None]
#: how much of what was written to the console is remembered to recognise its echo (the longest line typed is ~1 KB)
ECHO_WINDOW = 4096


class Tap:
    """A reader's view of a hub: every chunk from when it was opened, in order."""

    def __init__(self, hub: ConsoleHub) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[Chunk] = asyncio.Queue()

    def now(self) -> float:
        return self._hub.now()

    def put(self, chunk: Chunk) -> None:
        self._queue.put_nowait(chunk)

    async def read(self, timeout: float | None) -> Chunk | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def write(self, data: bytes) -> None:
        await self._hub.write(data)

    async def close(self) -> None:
        self._hub.untap(self)


class ConsoleHub:
    def __init__(self, source: Console) -> None:
        self.source = source
        self._taps: set[Tap] = set()
        self._sinks: list[Sink] = []
        self._task: asyncio.Task[None] | None = None
        self._eof: Chunk | None = None
        self._typed = bytearray()  # the last ECHO_WINDOW bytes written, from any tap

    def now(self) -> float:
        return self.source.now()

    @property
    def closed(self) -> bool:
        return self._eof is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._pump())

    def tap(self) -> Tap:
        tap = Tap(self)
        if self._eof is not None:
            tap.put(self._eof)
        else:
            self._taps.add(tap)
        return tap

    def untap(self, tap: Tap) -> None:
        self._taps.discard(tap)

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    async def write(self, data: bytes) -> None:
        self._typed += data
        del self._typed[:-ECHO_WINDOW]
        await self.source.write(data)

    def echoed(self, line: bytes) -> bool:
        """``line`` (from the console) is a piece of what was recently written to it: the tty's echo of a typed
        line, which a line editor such as busybox ash wraps at 80 columns into several console lines."""
        text = line.strip(b"\r\n\t ")
        return bool(text) and text in self._typed

    async def _pump(self) -> None:
        while True:
            chunk = await self.source.read(None)
            if chunk is None:
                continue
            for tap in list(self._taps):
                tap.put(chunk)
            if chunk.eof:
                self._eof = chunk
                self._taps.clear()
                return
            for sink in list(self._sinks):
                sink(chunk.data)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.source.close()
