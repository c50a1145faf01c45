"""The one place that reads a live console into the observer: :class:`BootLoop`.

``bootlab boot``, every boot of a trial, matrix, comparison or bisect, and the named-VM supervisor run their
console through this loop. It reads chunks (with their arrival times) from any
:class:`~bootlab.console.base.Console`, writes each to the raw log, feeds the observer, sends what the packs'
interactions answer (menus, countdowns, logins; delayed answers are due on the console's clock, so a replayed
boot sends them deterministically), and keeps the clocks (:class:`~bootlab.console.clock.BootClock`):

- :meth:`BootLoop.until_verdict` while the guest boots: ends in ``pass`` (ready), ``crash`` (a fatal line and
  its dump: the pack's ``dump_end`` line, or ``grace`` seconds of quiet, ``max_grace`` at most),
  ``login-failed`` (the guest refused the login bootlab typed: at once), ``hang`` (no output for
  ``quiet_timeout``, or output without progress for twice that), ``timeout``, or ``closed`` (the console closed
  first: QEMU exited, and its exit status says why).
- :meth:`BootLoop.until_crash` after ready (a named VM, or a boot running checks): only whole lines are read,
  lines the caller marks as its own (exec framing) are skipped, nothing is answered any more, and no hang clock
  runs; ends in ``crash`` or ``closed``.
- :meth:`BootLoop.pump` just keeps the log going (a crashed VM stays attachable).

What happens to QEMU after an ending (registers, stop) is :func:`bootlab.lab.boot.conclude`'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Literal

from bootlab.console.base import Chunk, Console
from bootlab.console.clock import BootClock
from bootlab.console.observer import Observer
from bootlab.console.rawlog import RawLog

#: (kind, text, t): kind is "stage", "send", "fatal" or "ready", as they happen
EventHook = Callable[[str, str, float], None]
Ending = Literal["pass", "crash", "hang", "timeout", "login-failed", "closed"]
# how often a drain or pump with nothing to time wakes up (only matters for replayed consoles)
_IDLE = 0.5
# quiet that means a paused guest's last output has been read (see BootLoop.settled)
SETTLE = 0.1


class BootLoop:
    def __init__(
        self,
        console: Console,
        observer: Observer,
        clock: BootClock,
        *,
        log: RawLog | None = None,
        interact: bool = True,
        on_event: EventHook | None = None,
        skip_line: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.console = console
        self.obs = observer
        self.clock = clock
        self.log = log
        self.interact = interact
        self.on_event = on_event
        self.skip_line = skip_line
        self._sends: list[tuple[float, bytes]] = []  # (due time, bytes), in due order
        self._line_buf = bytearray()
        self._drain: asyncio.Task[None] | None = None
        self._last_chunk = 0.0  # console time of the last chunk read
        self.decided = False  # finish() was called: the boot (or the VM's crash) is decided

    # ------------------------------------------------------------------ the phases

    async def until_verdict(self) -> Ending:
        """Read until the boot is decided."""
        obs, clock = self.obs, self.clock
        while True:
            chunk = await self._read(clock.wait(self.console.now()))
            if chunk is None:
                now = self.console.now()
                if clock.wait(now) == 0:
                    return clock.expired(now)  # type: ignore[return-value]
                continue  # an answer fell due
            if chunk.eof:
                obs.finish(chunk.t)
                return "crash" if obs.fatal_seen else "closed"
            self._record(chunk)
            for action in obs.feed(chunk.data, chunk.t):
                if self.interact:
                    self._event("send", action.interaction, chunk.t)
                    self._schedule(chunk.t + action.delay, action.send.encode())
            self._progress(chunk.t, watch_fatal=True)
            if clock.fatal_at is not None:
                if obs.dump_complete and (obs.dump_ended or clock.grace <= 0):
                    return "crash"
            elif obs.login_failed is not None:
                self._event("fatal", obs.login_failed.line, chunk.t)
                return "login-failed"
            elif obs.ready:
                self._event("ready", obs.ready_line or "", chunk.t)
                return "pass"

    async def until_crash(self) -> Ending:
        """After ready: read whole lines for fatal signatures until a crash (and its dump) or the console closes."""
        self._sends.clear()  # a boot's pending answers are moot once it is ready
        obs, clock = self.obs, self.clock
        while True:
            wait = clock.wait(self.console.now(), booting=False)
            chunk = await self._read(wait)
            if chunk is None:
                if wait is not None and clock.wait(self.console.now(), booting=False) == 0:
                    return "crash"
                continue
            if chunk.eof:
                obs.finish(chunk.t)
                return "crash" if clock.fatal_at is not None else "closed"
            self._record(chunk)
            lines = self._whole_lines(chunk.data)
            if lines:
                obs.feed(lines, chunk.t)
            self._progress(chunk.t, watch_fatal=True)
            if clock.fatal_at is not None and obs.dump_complete and (obs.dump_ended or clock.grace <= 0):
                return "crash"

    async def pump(self) -> None:
        """Keep reading into the log until the console closes (nothing is judged any more)."""
        while True:
            chunk = await self.console.read(_IDLE)
            if chunk is None:
                continue
            if chunk.eof:
                return
            self._record(chunk)

    async def settled(self, quiet: float = SETTLE, limit: float = 1.0) -> None:
        """Until nothing has arrived for ``quiet`` seconds (``limit`` at most). A guest that QEMU has just paused
        prints nothing more: what it printed before is then read and fed (its console and QMP are two sockets,
        so QMP's news may arrive before the console's last line)."""
        deadline = self.console.now() + limit
        while (now := self.console.now()) < deadline and now - self._last_chunk < quiet:
            await asyncio.sleep(min(quiet, deadline - now))

    def finish(self) -> None:
        """The boot is decided: pending answers are dropped, the observer resolves what it still holds."""
        self.decided = True
        self._sends.clear()
        self.obs.finish(self.console.now())

    def start_drain(self) -> None:
        """Keep the console drained while the caller pauses or stops QEMU: a guest blocked on a full serial
        socket holds QEMU's lock, and QMP would stall."""
        if self._drain is None:
            self._drain = asyncio.create_task(self.pump())

    async def stop_drain(self) -> None:
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._drain
            self._drain = None

    # ------------------------------------------------------------------ internals

    async def _read(self, wait: float | None) -> Chunk | None:
        """The next chunk within ``wait`` (None: no limit), sending answers as they fall due."""
        await self._send_due()
        if self._sends:
            due = max(0.0, self._sends[0][0] - self.console.now())
            wait = due if wait is None else min(wait, due)
        chunk = await self.console.read(wait)
        await self._send_due()
        return chunk

    def _schedule(self, due: float, data: bytes) -> None:
        self._sends.append((due, data))
        self._sends.sort(key=lambda s: s[0])

    async def _send_due(self) -> None:
        now = self.console.now()
        while self._sends and self._sends[0][0] <= now:
            _, data = self._sends.pop(0)
            await self.console.write(data)

    def _record(self, chunk: Chunk) -> None:
        self._last_chunk = chunk.t
        if self.log is not None:
            self.log.write(chunk.data, chunk.t)

    def _progress(self, t: float, *, watch_fatal: bool) -> None:
        step = self.clock.observe(t, self.obs, watch_fatal=watch_fatal)
        for s in step.stages:
            self._event("stage", s.name, s.t if s.t is not None else t)
        if step.fatal_new:
            self._event("fatal", self.obs.fatal.line if self.obs.fatal else self._pending_fatal_line(), t)

    def _pending_fatal_line(self) -> str:
        pending = self.obs.fatal_pending_line
        return pending if pending is not None else "fatal line"

    def _whole_lines(self, data: bytes) -> bytes:
        """Complete lines of ``data`` (the rest waits for its newline), minus the caller's own lines."""
        self._line_buf += data
        if b"\n" not in self._line_buf:
            if len(self._line_buf) > 65536:
                del self._line_buf[:-4096]
            return b""
        head, _, rest = bytes(self._line_buf).rpartition(b"\n")
        self._line_buf = bytearray(rest)
        lines = head.split(b"\n")
        if self.skip_line is not None:
            lines = [ln for ln in lines if not self.skip_line(ln)]
        return b"\n".join(lines) + b"\n" if lines else b""

    def _event(self, kind: str, text: str, t: float) -> None:
        if self.on_event is not None:
            self.on_event(kind, text, t)
