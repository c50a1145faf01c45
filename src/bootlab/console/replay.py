"""A recorded boot played back as a :class:`~bootlab.console.base.Console`.

The raw log and its ``.times`` index (see :mod:`bootlab.console.rawlog`) give every read of a real boot with its
arrival time. Played back, the boot loop sees exactly what it saw live: the same chunks at the same times. What
the loop writes (menu answers, logins) is recorded in :attr:`ReplayConsole.sent` with the time it was sent, so a
test can check that the right answer went out at the right moment.

Two speeds:

- ``speed=None`` (default): **virtual time**. Nothing sleeps; a read that would wait jumps the console's clock
  forward to the next chunk (or by the whole timeout when the next chunk is later). Every clock of the boot loop
  (quiet, no progress, overall timeout, crash grace) then fires at exactly the recorded times, deterministically,
  in milliseconds of real time.
- ``speed=K``: real time, K times faster than recorded (1.0 = as recorded).

``after_end`` says what the console does once the recording is over: ``"eof"`` (QEMU went away) or
``"silence"`` (the guest stopped printing: how a hang looks).
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from bootlab.console.base import Chunk


class ReplayConsole:
    def __init__(
        self,
        chunks: list[tuple[float, bytes]],
        *,
        speed: float | None = None,
        after_end: Literal["eof", "silence"] = "eof",
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive (or None for virtual time)")
        self._chunks = sorted(chunks, key=lambda c: c[0])
        self._next = 0
        self._speed = speed
        self._after_end = after_end
        self._virtual = 0.0
        self._start = time.monotonic()
        self.sent: list[tuple[float, bytes]] = []
        self.closed = False

    def now(self) -> float:
        if self._speed is None:
            return self._virtual
        return (time.monotonic() - self._start) * self._speed

    @property
    def sent_text(self) -> str:
        return b"".join(d for _, d in self.sent).decode(errors="replace")

    async def read(self, timeout: float | None) -> Chunk | None:
        now = self.now()
        if self._next < len(self._chunks):
            due, data = self._chunks[self._next]
        elif self._after_end == "eof":
            return Chunk(b"", max(now, self._chunks[-1][0] if self._chunks else 0.0))
        else:
            due, data = float("inf"), b""
        if timeout is not None and due > now + timeout:
            await self._pass(timeout)
            return None
        if due == float("inf"):
            if self._speed is None:
                raise RuntimeError("replay: a read without timeout on a silent console would wait for ever")
            await asyncio.Event().wait()  # real time: silent until cancelled, like a guest that stopped printing
        await self._pass(max(0.0, due - now))
        self._next += 1
        return Chunk(data, due)

    async def _pass(self, seconds: float) -> None:
        if self._speed is None:
            self._virtual += seconds
            await asyncio.sleep(0)  # let other tasks of the loop run, as a real read would
        else:
            await asyncio.sleep(seconds / self._speed)

    async def write(self, data: bytes) -> None:
        if not self.closed:
            self.sent.append((self.now(), data))

    async def close(self) -> None:
        self.closed = True
