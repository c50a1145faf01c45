"""A ready guest's shell, shared with the loop that keeps watching its console: :class:`ShellSession`.

After ready, two things read one console at once: the :class:`~bootlab.console.loop.BootLoop`, whose observer
must keep watching for a crash (a guest that dies while a command runs has crashed, and its dump must be read
to the end like any other), and the :class:`~bootlab.console.shell.GuestShell` running framed commands. A
:class:`~bootlab.console.hub.ConsoleHub` gives each its own view: the loop reads one tap for the whole session,
each command a fresh tap that sees only what follows it. Commands run one at a time (a lock), and a command
still waiting when the watch ends (crash, or QEMU gone) is abandoned with
:class:`~bootlab.console.shell.ExecAborted`.

The named-VM supervisor (``vm exec``) and a boot running its checks (:mod:`bootlab.lab.checks`) both work
through this class, so an exec and a check behave alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from bootlab.console.shell import PREFIX, ExecOutcome, GuestShell

if TYPE_CHECKING:
    from bootlab.console.hub import ConsoleHub
    from bootlab.console.loop import BootLoop, Ending

_PREFIX = PREFIX.encode()


def own_lines(hub: ConsoleHub) -> Callable[[bytes], bool]:
    """What the loop's observer must skip on a shared console: lines of bootlab's own framing (markers) and the
    echo of anything typed (an exec's command line, wrapped by the guest's line editor into pieces without a
    marker, or what an attached user types), so that a command naming a failure (``grep 'Kernel panic'``) is not
    one."""
    return lambda line: _PREFIX in line or hub.echoed(line)


class ShellSession:
    """Framed commands on fresh taps of ``hub`` while ``loop`` (reading its own tap of the same hub) watches
    for a crash. Start it once the boot is ready; ``should_stop`` (default: the watch has ended) abandons a
    waiting command."""

    def __init__(self, hub: ConsoleHub, loop: BootLoop, should_stop: Callable[[], bool] | None = None) -> None:
        self.hub = hub
        self.loop = loop
        self.watch: asyncio.Task[Ending] = asyncio.create_task(loop.until_crash())
        # the packs' shell prompts: a sync answered by the prompt without bootlab's marker fails at once
        self.shell = GuestShell(should_stop=should_stop or self.watch.done, prompts=loop.obs.packs.shell)
        self.lock = asyncio.Lock()

    @property
    def crash_pending(self) -> bool:
        """A fatal line was seen and its dump is still being read: the watch is about to end in a crash."""
        return self.loop.clock.fatal_at is not None

    async def sync(self) -> bool:
        """Make sure the shell answers a marker (after login it may still be printing its greeting)."""
        async with self.lock:
            tap = self.hub.tap()
            try:
                return await self.shell.sync(tap)
            finally:
                await tap.close()

    async def run(
        self,
        command: list[str] | str,
        timeout: float | None = None,
        abandoned: asyncio.Event | None = None,
        *,
        stage: bool = False,
    ) -> ExecOutcome:
        """:meth:`GuestShell.run <bootlab.console.shell.GuestShell.run>` on a fresh tap, after any command before."""
        async with self.lock:
            tap = self.hub.tap()
            try:
                return await self.shell.run(tap, command, timeout, abandoned, stage=stage)
            finally:
                await tap.close()

    async def run_script(
        self, text: bytes, timeout: float | None = None, abandoned: asyncio.Event | None = None
    ) -> ExecOutcome:
        """:meth:`GuestShell.run_script <bootlab.console.shell.GuestShell.run_script>` on a fresh tap."""
        async with self.lock:
            tap = self.hub.tap()
            try:
                return await self.shell.run_script(tap, text, timeout, abandoned)
            finally:
                await tap.close()

    async def ending(self) -> Ending:
        """How the watch ended (``crash`` or ``closed``): waits for it."""
        return await self.watch

    async def stop(self) -> None:
        """Stop watching (the caller has what it needs; a crash pending should be awaited with :meth:`ending`)."""
        if not self.watch.done():
            self.watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watch
