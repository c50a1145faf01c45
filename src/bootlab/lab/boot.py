"""One observed boot: profile in, verdict out. Trials, matrices, comparisons and the cluster call
:func:`boot_async`; the named-VM supervisor uses the same parts (:func:`conclude`, the loop, the machine).

The flow of one boot: the packs and the argv (built against the machine's private runtime directory), a
:class:`~bootlab.qemu.machine.QemuMachine`, its serial console, and the :class:`~bootlab.console.loop.BootLoop`
that feeds the observer until the boot is decided. QEMU serves the console with ``wait=on``: the guest does not
run until we are connected, so the raw log (with its ``.times`` index) holds every byte from the first firmware
message. On crash and hang the VM is paused over QMP and its registers recorded (:func:`conclude`). Then QEMU
stops: a clean QMP ``quit`` when the profile writes a persistent disk, otherwise its process group is simply
killed (snapshot disks lose nothing, and a boot that ends sooner makes trials faster).

A profile with ``checks`` waits for the shell (the packs log in), then runs them (:mod:`bootlab.lab.checks`)
while the loop keeps watching for a crash: the console is shared through a
:class:`~bootlab.console.hub.ConsoleHub`, as in a named VM. A failed check makes the outcome ``check-failed``.

QEMU exiting with an error on its own is ``qemu-error`` (its stderr says why); bootlab failing to run it at
all (no binary, no socket) is ``infra-error``. Neither is counted as the guest failing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bootlab.console.clock import GRACE, MAX_GRACE, BootClock
from bootlab.console.hub import ConsoleHub
from bootlab.console.loop import BootLoop, Ending, EventHook
from bootlab.console.observer import Observer, wants_shell
from bootlab.console.rawlog import RawLog
from bootlab.console.session import own_lines
from bootlab.errors import BootlabError
from bootlab.verdict import Verdict

if TYPE_CHECKING:
    from bootlab.console.base import Console
    from bootlab.host import Host
    from bootlab.packs.loader import PackSet
    from bootlab.profile.model import Profile
    from bootlab.qemu.machine import KeepStopped, QemuMachine


@dataclass
class BootOptions:
    """Knobs a caller may turn; the defaults are what ``bootlab boot`` does."""

    log_path: Path | None = None
    wait_for_shell: bool | None = None  # None: wants_shell (a password logs in; checks need the shell)
    interact: bool = True  # answer menus, countdowns and login prompts
    grace: float = GRACE  # quiet time that ends a crash dump
    max_grace: float = MAX_GRACE  # never wait longer than this after a fatal line
    project_dir: Path | None = None  # where project packs/ live
    on_event: EventHook | None = None  # ("stage"|"send"|"fatal"|"ready"|"check", text, t) as they happen
    capture_registers: bool = True
    extra: dict[str, str] = field(default_factory=dict)


def default_log_path(profile: Profile) -> Path:
    """A fresh log file under the user's state directory (the store may pass its own path instead)."""
    from platformdirs import user_state_path

    stamp = time.strftime("%Y%m%d-%H%M%S")
    directory = user_state_path("bootlab") / "logs"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{profile.name}-{stamp}-{profile.seed}-{time.monotonic_ns() % 1000000}.log"


def boot_observer(profile: Profile, packs: PackSet, wait_for_shell: bool | None = None) -> Observer:
    """The observer of one boot: ready at the login prompt, or at the shell when ``wait_for_shell`` (None: when
    the boot logs in, see :func:`~bootlab.console.observer.wants_shell`, or runs checks, which need the shell).
    A one-shot boot in a VM supervisor uses the same."""
    wait_shell = wait_for_shell if wait_for_shell is not None else wants_shell(packs, profile.vars)
    wait_shell = wait_shell or bool(profile.checks)
    return Observer(packs, variables=profile.vars, wait_for_shell=wait_shell)


def boot(profile: Profile, *, host: Host | None = None, options: BootOptions | None = None) -> Verdict:
    """Boot ``profile`` once and return its verdict. Safe to call from worker threads (own event loop)."""
    return asyncio.run(boot_async(profile, host=host, options=options))


async def boot_async(profile: Profile, *, host: Host | None = None, options: BootOptions | None = None) -> Verdict:
    """One observed boot: a :class:`~bootlab.qemu.machine.QemuMachine`, its console and the
    :class:`~bootlab.console.loop.BootLoop`; QEMU is gone when this returns (or is cancelled)."""
    from bootlab.lab.preflight import require_packs

    opts = options or BootOptions()
    packs = require_packs(profile, opts.project_dir)
    log_path = opts.log_path or default_log_path(profile)
    base = Verdict(outcome="infra-error", seed=profile.seed, log=str(log_path))
    try:
        if host is None:
            from bootlab.host import probe

            host = probe()
        host.binary(profile.arch)
    except BootlabError as exc:  # no QEMU for this arch here: the host's problem, not the guest's
        base.title = str(exc)
        return base
    from bootlab.qemu.invocation import build_invocation
    from bootlab.qemu.machine import LaunchFailure, QemuMachine

    obs = boot_observer(profile, packs, opts.wait_for_shell)
    async with QemuMachine() as machine:
        inv = build_invocation(profile, host, machine.runtime)
        inv.require_runnable()  # a missing kernel/disk is the user's to fix: one line, exit 2
        base.argv = list(inv.argv)
        base.accel = inv.accel
        try:
            machine.launch(inv.argv)
            console = await machine.console()
        except LaunchFailure as exc:
            return qemu_exit_verdict(base, obs, exc.returncode, _since(machine), stderr=exc.stderr)
        except BootlabError as exc:
            return finish_verdict(base, obs, "infra-error", _since(machine), title=str(exc))
        clock = BootClock(profile.timeout, profile.quiet_timeout, console.now(), opts.grace, opts.max_grace)
        hub = ConsoleHub(console) if profile.checks else None  # checks share the console with the loop
        try:
            with RawLog(log_path) as log:
                source: Console = console
                if hub is not None:
                    hub.start()
                    source = hub.tap()
                loop = BootLoop(
                    source,
                    obs,
                    clock,
                    log=log,
                    interact=opts.interact,
                    on_event=opts.on_event,
                    skip_line=own_lines(hub) if hub is not None else None,
                )
                machine.pause_on_guest_stop(keep_crashed(loop))
                ending = await loop.until_verdict()
                if ending == "pass" and hub is not None:
                    verdict = await checked_verdict(machine, loop, hub, base, profile, opts)
                else:
                    verdict = await conclude(
                        machine, loop, ending, base, symbols=profile.symbols, registers=opts.capture_registers
                    )
                await machine.stop(graceful=profile.writes_disks)
                await loop.stop_drain()
                return verdict
        finally:
            if hub is not None:
                await hub.close()


async def checked_verdict(
    machine: QemuMachine, loop: BootLoop, hub: ConsoleHub, base: Verdict, profile: Profile, opts: BootOptions
) -> Verdict:
    """The verdict of a ready boot once its checks have run: ``pass``, ``check-failed`` (titled by the first
    failed check), ``infra-error`` when the guest's shell is not a POSIX sh (no check could run), or, when the
    guest crashed or QEMU exited meanwhile, that crash or exit (with registers)."""
    from bootlab.console.session import ShellSession
    from bootlab.lab.checks import run_checks

    session = ShellSession(hub, loop)
    try:
        run = await run_checks(session, profile, opts.on_event)
        if session.watch.done() or session.crash_pending:
            ending = await session.ending()
            during = f"during check {run.interrupted_by}" if run.interrupted_by else "after its checks"
            verdict = await conclude(
                machine, loop, ending, base, symbols=profile.symbols, registers=opts.capture_registers, when=during
            )
        else:
            await session.stop()
            verdict = await conclude(machine, loop, "pass", base, symbols=profile.symbols, registers=False)
            if run.cannot_run:  # the guest booted, but bootlab cannot run checks there: infra, not the guest
                verdict = verdict.model_copy(update={"outcome": "infra-error", "title": run.cannot_run})
            elif run.failed:
                verdict = verdict.model_copy(update={"outcome": "check-failed", "title": run.title})
    finally:
        await session.stop()
    return verdict.model_copy(update={"checks": run.results})


def keep_crashed(loop: BootLoop) -> KeepStopped:
    """The rule for a guest that asks QEMU to reset or power off during an observed boot (see
    :meth:`~bootlab.qemu.machine.QemuMachine.pause_on_guest_stop`): after a fatal line, or once the boot is
    decided, it stays paused, so the registers bootlab reads (and a debugger sees) are the crashed kernel's, not
    a fresh boot's (``panic=-1`` resets within milliseconds). Any other reset or power-off happens as it would
    have without bootlab: a guest (or firmware) that reboots on purpose reboots."""

    async def keep(_reason: str) -> bool:
        if not loop.decided:
            await loop.settled()
        return loop.decided or loop.obs.fatal_seen

    return keep


def _since(machine: QemuMachine) -> float:
    return time.monotonic() - machine.t0 if machine.t0 else 0.0


async def conclude(
    machine: QemuMachine,
    loop: BootLoop,
    ending: Ending,
    base: Verdict,
    *,
    symbols: str | None,
    registers: bool,
    when: str = "before ready",
) -> Verdict:
    """The verdict of a boot (or of a named VM's crash) once the loop has ended: ``bootlab boot``, trials and the
    VM supervisor all end here. A closed console is QEMU's exit (its status and stderr say why; ``when`` says
    when the guest stopped, for its title); on a crash or hang the VM is paused and its registers recorded
    while the console keeps being drained. QEMU is left running: stopping it is the caller's decision (a VM
    that crashed after ready stays up to be looked at)."""
    loop.finish()
    now = loop.console.now()
    if ending == "closed":
        await machine.wait(2.0)  # let QEMU's exit status and stderr land
        return qemu_exit_verdict(base, loop.obs, machine.returncode, now, stderr=machine.stderr_text(), when=when)
    loop.start_drain()
    verdict = finish_verdict(base, loop.obs, ending, now, clock=loop.clock)
    if ending in ("crash", "hang") and registers and machine.running:
        verdict.registers = await machine.registers(symbols)
    return verdict


def finish_verdict(
    base: Verdict,
    obs: Observer,
    outcome: str,
    duration_s: float,
    *,
    title: str | None = None,
    fatal_line: str | None = None,
    clock: BootClock | None = None,
) -> Verdict:
    """The verdict of a boot that ended in ``outcome`` (shared by :func:`boot` and the named-VM supervisor).

    ``base`` carries what is known before the guest runs (seed, log, accel, argv); the observer adds stage,
    stages, fatal line and incidents. A hang or timeout is titled by the last stage reached, or by the prompt the
    console stopped on (``stopped at prompt "..."``), and says where it stopped (``stopped``: the rule that
    fired, whether output still flowed, the last lines; needs the ``clock``). A given ``title`` wins; with it
    ``fatal_line`` replaces the observer's, except for a crash given none (the guest's own fatal line stays)."""
    fields = obs.verdict_fields()
    verdict = base.model_copy(update={**fields, "outcome": outcome, "duration_s": round(duration_s, 3)})
    if outcome in ("hang", "timeout"):
        verdict.title = f"{outcome} after {obs.stage or 'start'}"
        if clock is not None:
            verdict.stopped = clock.stopped(obs, duration_s, outcome)
            if outcome == "hang" and verdict.stopped.prompt:
                verdict.title = f'stopped at prompt "{verdict.stopped.prompt}"'

    if title is not None:
        verdict.title = title
        if outcome != "crash" or fatal_line:
            verdict.fatal_line = fatal_line
    return verdict


def qemu_exit_verdict(
    base: Verdict, obs: Observer, code: int | None, duration_s: float, *, stderr: str, when: str = "before ready"
) -> Verdict:
    """QEMU exited before the guest reached a verdict: its exit ``code`` and ``stderr`` (text) decide why.

    Exit 0 with nothing recognised on stderr is the guest powering off (or resetting under -no-reboot) before
    ready (or ``when``: during a check), its own doing: ``crash``. Anything else is ``qemu-error``, titled by the
    qemu pack's stderr signature when one matches (that line becomes the fatal line), else by the exit status."""
    from bootlab.qemu.machine import exit_reason

    line, title = exit_reason(stderr)
    if code == 0 and not line:
        return finish_verdict(base, obs, "crash", duration_s, title=f"guest stopped {when} (QEMU exited with 0)")
    return finish_verdict(
        base, obs, "qemu-error", duration_s, title=title or f"QEMU exited with status {code}", fatal_line=line
    )
