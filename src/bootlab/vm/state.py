"""The states of a named VM and the moves between them, in one table.

The supervisor is the only writer of a VM's state (``state.json``); :data:`TRANSITIONS` is the whole story of
a VM's life, and :func:`advance` refuses any other move, so a bug shows as an error instead of a VM that says
``ready`` after it stopped. ``died`` is the one state the supervisor never writes: it is what the CLI reports
when it finds the supervisor gone (killed; QEMU died with it) and cleans up after it.

``held`` is reached only by a boot run in a supervisor so that it can be held (``bootlab boot --hold-on-crash``,
``bootlab trial --hold-first-crash``): its crash or hang is kept paused, with QEMU's gdb stub, until stopped.
"""

from __future__ import annotations

from enum import StrEnum


class VmState(StrEnum):
    BOOTING = "booting"  # QEMU started, the boot loop is reading the console
    READY = "ready"  # the pack's ready condition (the shell, once logged in) was reached
    CRASHED = "crashed"  # a fatal signature after ready; QEMU is kept for a look (console, logs)
    HELD = "held"  # a boot's crash or hang, paused as it died, with a gdb stub, until stopped
    STOPPING = "stopping"  # `vm stop` is powering it down
    STOPPED = "stopped"  # no QEMU: stopped, boot failed, or QEMU exited; the last verdict says which
    DIED = "died"  # the supervisor was killed; reported (and cleaned up) by the CLI, never written by it


TRANSITIONS: dict[VmState, frozenset[VmState]] = {
    VmState.BOOTING: frozenset({VmState.READY, VmState.HELD, VmState.STOPPING, VmState.STOPPED}),
    VmState.READY: frozenset({VmState.CRASHED, VmState.STOPPING, VmState.STOPPED}),
    VmState.CRASHED: frozenset({VmState.STOPPING, VmState.STOPPED}),
    VmState.HELD: frozenset({VmState.STOPPING, VmState.STOPPED}),
    VmState.STOPPING: frozenset({VmState.STOPPED}),
    VmState.STOPPED: frozenset({VmState.BOOTING}),  # `vm start`
    VmState.DIED: frozenset({VmState.BOOTING}),
}

#: states in which a supervisor (and its QEMU) is alive
LIVE: frozenset[VmState] = frozenset({VmState.BOOTING, VmState.READY, VmState.CRASHED, VmState.HELD, VmState.STOPPING})


def advance(current: VmState, new: VmState) -> VmState:
    """``new`` if the table allows the move from ``current`` (staying put is always allowed)."""
    if new != current and new not in TRANSITIONS[current]:
        raise ValueError(f"vm state cannot go from {current} to {new}")
    return new
