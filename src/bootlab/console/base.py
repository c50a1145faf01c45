"""What a console is, for everything that reads a guest: something you read chunks from and write bytes to.

labgrid's idea: a small protocol, several providers. QEMU's serial unix socket is one provider
(:mod:`bootlab.console.unix`); a recorded raw log played back with its arrival times is another
(:mod:`bootlab.console.replay`), so the boot loop, its clocks and its interactions are tested on real recorded
boots without QEMU. A :class:`~bootlab.console.hub.ConsoleHub` shares one console between several readers (the
boot loop, an exec, attached terminals).

Every console has its own clock (:meth:`Console.now`, seconds since the machine started): arrival times and
every timeout are on that clock, which is what lets a replay run in virtual time, deterministically and fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

READ_SIZE = 65536


@dataclass(frozen=True)
class Chunk:
    """Console output as it arrived: ``data`` at ``t`` seconds on the console's clock. Empty ``data``: the
    console closed (QEMU went away, or the recording ended)."""

    data: bytes
    t: float

    @property
    def eof(self) -> bool:
        return not self.data


class Console(Protocol):
    def now(self) -> float:
        """Seconds since the machine started, on the clock arrival times use."""
        ...

    async def read(self, timeout: float | None) -> Chunk | None:
        """The next chunk; None when ``timeout`` seconds passed without output (None: wait for ever)."""
        ...

    async def write(self, data: bytes) -> None:
        """Send bytes to the guest (errors after the guest went away are swallowed: the reader notices)."""
        ...

    async def close(self) -> None: ...
