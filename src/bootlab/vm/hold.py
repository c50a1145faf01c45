"""A boot that may be held: run in a VM supervisor from the start, so that its crash can outlive the command.

``bootlab boot --hold-on-crash`` and ``bootlab trial --hold-first-crash`` boot through here. A QEMU cannot
change parent (its parent-death signal is tied to the process that forked it), so a boot whose crash may be
kept runs inside a one-shot VM supervisor (``python -m bootlab.vm.supervisor --boot``, see
:mod:`bootlab.vm.supervisor`) rather than in this process. The boot itself is decided exactly as
:func:`bootlab.lab.boot.boot_async` decides it: the same observer, loop, clocks, registers and verdict.

This side is the boot's *owner*: it creates the VM (its directory, the resolved profile), starts the supervisor,
asks for the boot over the control socket and streams its events; when the boot ends in a crash or hang, the
supervisor asks whether to hold it and ``hold(verdict)`` answers. A held boot stays as the named VM ``held``
(paused as it died, QEMU's gdb stub on a private socket) until ``bootlab vm stop``; anything else is ended by the
supervisor, which removes the VM. If the owner dies (even SIGKILL) before the boot is decided, its connection
closes and the supervisor ends the boot: no QEMU outlives it. Boots that never ask to be held do not come here
(``bootlab boot`` without the option runs in-process, as fast as ever).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootlab.errors import InfraError, UsageError
from bootlab.verdict import Verdict
from bootlab.vm import protocol
from bootlab.vm.registry import VmDir, make_private_dir, same_process, validate_name, vm_home

if TYPE_CHECKING:
    from bootlab.console.loop import EventHook
    from bootlab.lab.runner import BootFn
    from bootlab.profile.model import Profile

#: the outcomes a boot can be held at (the VM is paused there already, its registers read)
HOLDABLE = frozenset({"crash", "hang"})
#: answers whether to hold a crash or hang, given its verdict
HoldRule = Callable[[Verdict], bool]

GDB = "gdb-multiarch"


@dataclass
class GdbTarget:
    """A VM with QEMU's gdb stub (a held boot, or a VM launched with ``--gdb``): its name, the stub's socket (or
    why there is none), and what gdb needs."""

    vm: str
    gdb_socket: str | None
    gdb_error: str | None
    symbols: str | None
    arch: str | None

    def gdb_argv(self, gdb: str = GDB, batch: tuple[str, ...] = ()) -> list[str]:
        from bootlab.qemu.gdbstub import gdb_argv

        if self.gdb_socket is None:
            raise UsageError(f"vm {self.vm} has no gdb stub: {self.gdb_error or 'none was started'}")
        return gdb_argv(gdb, Path(self.gdb_socket), symbols=self.symbols, batch=batch)

    def attach_argv(self, gdb: str = GDB) -> list[str]:
        """``gdb-multiarch -ex 'target remote SOCKET' SYMBOLS``: what a user types (their .gdbinit applies)."""
        return [gdb, "-ex", f"target remote {self.gdb_socket}"] + ([self.symbols] if self.symbols else [])

    def attach_command(self, gdb: str = GDB) -> str:
        return shlex.join(self.attach_argv(gdb))

    def to_json(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "gdb_socket": self.gdb_socket,
            "gdb_error": self.gdb_error,
            "attach": self.attach_command() if self.gdb_socket else None,
        }

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> GdbTarget:
        return cls(
            vm=str(status["name"]),
            gdb_socket=status.get("gdb_socket"),
            gdb_error=status.get("gdb_error"),
            symbols=status.get("symbols"),
            arch=status.get("arch"),
        )


def held_lines(held: GdbTarget, verdict: Verdict) -> list[str]:
    """What a user needs next to a held crash: how to attach, how to leave gdb, how to end it."""
    name = held.vm
    lines = [f"held: vm {name} keeps this {verdict.outcome}, paused as it died (`bootlab vm list` shows it)"]
    if held.gdb_socket:
        lines += [
            f"  attach:  {held.attach_command()}",
            "           leave gdb with `disconnect`: `detach` and `quit` let the guest run on",
            f"           or `bootlab vm gdb {name}` (`--backtrace`: bt and info registers, in batch mode)",
        ]
    else:
        lines.append(f"  no gdb stub: {held.gdb_error or 'QEMU did not start one'}")
    lines += [
        f"  console: bootlab vm console {name}   log: bootlab vm logs {name}",
        f"  end it:  bootlab vm stop {name}   (bootlab vm delete {name} also removes its log)",
    ]
    return lines


@dataclass
class SupervisedBoot:
    verdict: Verdict
    held: GdbTarget | None = None


# ---------------------------------------------------------------------------------------------- the VM of a boot


def claim_vm(profile_name: str, name: str | None = None) -> VmDir:
    """A fresh VM directory for one boot, taken atomically (``mkdir``): ``name`` when given, else the profile's
    name made a valid VM name plus the first free number (``linux-arm64-1``)."""
    home = make_private_dir(vm_home())
    if name is not None:
        vm = VmDir.of(validate_name(name))
        try:
            vm.path.mkdir(mode=0o700)
        except FileExistsError:
            raise UsageError(
                f"vm {name} already exists; give another --name, or `bootlab vm delete {name}` first"
            ) from None
        return vm
    base = re.sub(r"[^a-z0-9]+", "-", profile_name.lower()).strip("-")[:24].strip("-") or "boot"
    for n in range(1, 100_000):
        candidate = f"{base}-{n}"
        try:
            (home / candidate).mkdir(mode=0o700)
        except FileExistsError:
            continue
        return VmDir(candidate, home / candidate)
    raise InfraError(f"no free vm name for {base}-N under {home}")


def prepare(vm: VmDir, profile: Profile, log_path: Path, project_dir: Path | None) -> None:
    """What the supervisor boots (the resolved profile, seed included) and where the boot's log goes; the VM's
    ``console.log`` points to it until a hold gives the VM a log of its own."""
    vm.write(
        "vm.json",
        {
            "name": vm.name,
            "kind": "boot",
            "profile": profile.name,
            "requested_profile": profile.name,
            "project_root": str(project_dir) if project_dir else None,
            "sets": [],
            "mounts": [],
            "forwards": [f.spec() for f in profile.forwards],
            "persistent": bool(profile.persistent),
            "created": time.time(),
            "seed": profile.seed,
            "boot_log": str(log_path),
        },
    )
    vm.write("profile.json", profile.model_dump(mode="json"))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    vm.log.unlink(missing_ok=True)
    vm.log.symlink_to(log_path)


# ---------------------------------------------------------------------------------------------- the owner


async def supervised_boot(
    profile: Profile,
    *,
    log_path: Path,
    project_dir: Path | None = None,
    hold: HoldRule | None = None,
    name: str | None = None,
    on_event: EventHook | None = None,
) -> SupervisedBoot:
    """Boot ``profile`` once in a one-shot VM supervisor; ``hold`` decides whether a crash or hang is kept as a
    held VM. Cancelling this (Ctrl-C, a trial's early stop) ends the boot and waits until its QEMU is gone."""
    from bootlab.vm import manager

    log_path = log_path.absolute()
    vm = claim_vm(profile.name, name)
    try:
        prepare(vm, profile, log_path, project_dir)
        await asyncio.to_thread(manager.spawn, vm, boot=True)
    except BaseException:
        import shutil

        shutil.rmtree(vm.path, ignore_errors=True)
        raise
    sup = vm.supervisor() or {}
    socket = vm.control_socket()
    if socket is None:  # it ended before serving: nothing was booted
        raise InfraError(f"vm {vm.name}: the supervisor of this boot did not start; see {vm.supervisor_out}")
    try:
        reader, writer = await asyncio.open_unix_connection(str(socket), limit=1 << 24)
    except OSError as exc:
        raise InfraError(f"vm {vm.name}: cannot reach the supervisor of this boot: {exc}") from None
    try:
        writer.write(protocol.BootRequest(hold=hold is not None).encode())
        await writer.drain()
        return await _converse(vm, reader, writer, hold, on_event)
    except asyncio.CancelledError:
        writer.close()  # the supervisor sees its owner go, and ends the boot
        await _gone(sup)
        raise
    finally:
        writer.close()


async def _converse(
    vm: VmDir,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    hold: HoldRule | None,
    on_event: EventHook | None,
) -> SupervisedBoot:
    from bootlab.vm.manager import read_message

    while line := await reader.readline():
        msg = read_message(vm, line)
        if isinstance(msg, protocol.LoopEvent):
            if on_event is not None:
                on_event(msg.kind, msg.text, msg.t)
        elif isinstance(msg, protocol.HoldQuestion):
            answer = hold is not None and hold(Verdict.model_validate(msg.verdict))
            writer.write(protocol.HoldAnswer(hold=answer).encode())
            await writer.drain()
        elif isinstance(msg, protocol.ErrorReply):
            raise InfraError(f"vm {vm.name}: {msg.error}")
        elif isinstance(msg, protocol.Status):
            verdict = Verdict.model_validate(msg.verdict or {"outcome": "infra-error"})
            held = GdbTarget.from_status(msg.model_dump()) if msg.state == "held" else None
            return SupervisedBoot(verdict, held)
    raise InfraError(f"vm {vm.name}: the supervisor of this boot ended without a verdict; see {vm.supervisor_out}")


async def _gone(sup: dict[str, Any], timeout: float = 10.0) -> None:
    """Until the supervisor (and so its QEMU, killed on its way out) is gone."""
    deadline = time.monotonic() + timeout
    while same_process(sup.get("pid"), sup.get("start")) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def boot_held(profile: Profile, **kwargs: Any) -> SupervisedBoot:
    """:func:`supervised_boot` from synchronous code (``bootlab boot --hold-on-crash``); Ctrl-C ends the boot
    unless it is held already."""
    return asyncio.run(supervised_boot(profile, **kwargs))


def hold_crashes(verdict: Verdict) -> bool:
    """``bootlab boot --hold-on-crash``: every crash or hang is held."""
    return verdict.outcome in HOLDABLE


class HoldFirst:
    """``bootlab trial --hold-first-crash``: the trial's first crash (or hang) is held, the others end as usual.
    Boots of one trial run on one event loop, so deciding here is atomic: two crashes at once hold one."""

    def __init__(self) -> None:
        self.claimed = False
        self.held: GdbTarget | None = None
        self.verdict: Verdict | None = None

    def __call__(self, verdict: Verdict) -> bool:
        if self.claimed or verdict.outcome not in HOLDABLE:
            return False
        self.claimed = True
        return True

    def boot_fn(self, project_dir: Path | None = None) -> BootFn:
        """The runner's boot function for such a trial: every boot in a one-shot supervisor, this rule holding."""

        async def run(profile: Profile, log_path: Path) -> Verdict:
            done = await supervised_boot(profile, log_path=log_path, project_dir=project_dir, hold=self)
            if done.held is not None:
                self.held, self.verdict = done.held, done.verdict
            return done.verdict

        return run

    def to_json(self) -> dict[str, Any] | None:
        if self.held is None or self.verdict is None:
            return None
        v = self.verdict
        return {**self.held.to_json(), "seed": v.seed, "outcome": v.outcome, "title": v.title}
