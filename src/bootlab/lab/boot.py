"""One observed boot: profile in, verdict out. Trials, matrices and named VMs all call :func:`boot`.

QEMU starts with its serial console on a unix socket that it serves with ``wait=on``: the guest does not run
until we are connected, so the log holds every byte from the first firmware message. Bytes go to the raw log
as they arrive, with a side index (``<log>.times``: byte offset and seconds since QEMU start per read) so that
any line's arrival time is known afterwards. The observer sees each read; its actions (menu Enter, login) are
written back to the socket.

Clocks: overall ``timeout``; ``quiet_timeout`` without any output is a hang; output that goes on without any
milestone for twice ``quiet_timeout`` is a hang too (a guest stuck printing, e.g. a flood). A hang is named by
the last stage reached. On a fatal line we keep reading only until the dump has been quiet for ``grace``
seconds (``max_grace`` at most), so the verdict lands within a fraction of a second of the fatal line. On
crash and hang the VM is paused over QMP and its registers recorded. Then QEMU stops: a clean QMP ``quit`` when
the profile writes a persistent disk, otherwise its process group is simply killed (snapshot disks lose nothing,
and a boot that ends sooner makes trials faster).

QEMU exiting with an error on its own is ``qemu-error`` (its stderr says why); bootlab failing to run it at
all (no binary, no socket) is ``infra-error``. Neither is counted as the guest failing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bootlab.console.clock import GRACE, MAX_GRACE, BootClock
from bootlab.console.observer import Observer
from bootlab.console.offline import verdict_fields
from bootlab.errors import BootlabError, UsageError
from bootlab.packs.loader import PackSet, load_packs
from bootlab.verdict import Verdict, normalise_title

if TYPE_CHECKING:
    from bootlab.host import Host
    from bootlab.profile.model import Profile

READ_SIZE = 65536
CONNECT_TIMEOUT = 15.0

EventHook = Callable[[str, str, float], None]


@dataclass
class BootOptions:
    """Knobs a caller may turn; the defaults are what ``bootlab boot`` does."""

    log_path: Path | None = None
    wait_for_shell: bool | None = None  # None: profile vars.ready == "shell"
    interact: bool = True  # answer menus, countdowns and login prompts
    grace: float = GRACE  # quiet time that ends a crash dump
    max_grace: float = MAX_GRACE  # never wait longer than this after a fatal line
    project_dir: Path | None = None  # where project packs/ live
    on_event: EventHook | None = None  # ("stage"|"send"|"fatal"|"ready", text, t) as they happen
    capture_registers: bool = True
    extra: dict[str, str] = field(default_factory=dict)


def default_log_path(profile: Profile) -> Path:
    """A fresh log file under the user's state directory (the store may pass its own path instead)."""
    from platformdirs import user_state_path

    stamp = time.strftime("%Y%m%d-%H%M%S")
    directory = user_state_path("bootlab") / "logs"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{profile.name}-{stamp}-{profile.seed}-{time.monotonic_ns() % 1000000}.log"


def boot(profile: Profile, *, host: Host | None = None, options: BootOptions | None = None) -> Verdict:
    """Boot ``profile`` once and return its verdict. Safe to call from worker threads (own event loop)."""
    return asyncio.run(boot_async(profile, host=host, options=options))


async def boot_async(profile: Profile, *, host: Host | None = None, options: BootOptions | None = None) -> Verdict:
    opts = options or BootOptions()
    if not profile.pack:
        raise UsageError(f'profile {profile.name} names no pack; add pack = ["linux"] (or redox, edk2,...) to it')
    packs = load_packs(profile.pack, opts.project_dir)
    log_path = opts.log_path or default_log_path(profile)
    base = Verdict(outcome="infra-error", seed=profile.seed, log=str(log_path))
    try:
        if host is None:
            from bootlab.host import probe

            host = probe()
        host.binary(profile.arch)
    except BootlabError as exc:
        base.title = str(exc)
        return base
    from bootlab.qemu.argv import binary_path, build_invocation
    from bootlab.qemu.runtime import RuntimeDir

    with RuntimeDir() as runtime:
        inv = build_invocation(profile, host, runtime)
        inv.require_runnable()  # a missing kernel/disk is the user's to fix: one line, exit 2
        base.argv = list(inv.argv)
        base.accel = inv.accel
        run = _Run(profile, packs, opts, runtime.serial, runtime.qmp, runtime.stderr, log_path, base)
        argv = [binary_path(inv.argv), *inv.argv[1:]]
        return await run.go(argv)


class _Run:
    def __init__(
        self,
        profile: Profile,
        packs: PackSet,
        opts: BootOptions,
        serial: Path,
        qmp: Path,
        stderr: Path,
        log_path: Path,
        base: Verdict,
    ) -> None:
        self.profile = profile
        self.opts = opts
        self.serial = serial
        self.qmp = qmp
        self.stderr = stderr
        self.log_path = log_path
        self.base = base
        wait_shell = opts.wait_for_shell
        if wait_shell is None:
            wait_shell = profile.vars.get("ready") == "shell"
        self.obs = Observer(packs, variables=profile.vars, wait_for_shell=wait_shell)
        self.t0 = 0.0
        self.sends: list[asyncio.Task[None]] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def event(self, kind: str, text: str, t: float) -> None:
        if self.opts.on_event is not None:
            self.opts.on_event(kind, text, t)

    async def go(self, argv: list[str]) -> Verdict:
        from bootlab.qemu.process import QemuProcess

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        proc = QemuProcess(argv, stderr_path=self.stderr)
        self.t0 = time.monotonic()
        try:
            proc.start()
        except BootlabError as exc:
            return self._finish("infra-error", title=str(exc))
        with proc:
            return await self._supervise(proc)

    async def _connect(self, proc: object) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | Verdict:
        deadline = time.monotonic() + CONNECT_TIMEOUT
        last_error = "socket never appeared"
        while time.monotonic() < deadline:
            if getattr(proc, "returncode", None) is not None:
                return self._qemu_exited(proc)
            if self.serial.exists():
                try:
                    return await asyncio.open_unix_connection(str(self.serial))
                except OSError as exc:
                    last_error = exc.strerror or str(exc)
            await asyncio.sleep(0.005)
        return self._finish("infra-error", title=f"cannot connect to QEMU's serial socket: {last_error}")

    async def _supervise(self, proc: object) -> Verdict:
        conn = await self._connect(proc)
        if isinstance(conn, Verdict):
            return conn
        reader, writer = conn
        p = self.profile
        obs = self.obs
        clock = BootClock(p.timeout, p.quiet_timeout, self.now(), self.opts.grace, self.opts.max_grace)
        outcome: str | None = None
        with self.log_path.open("wb") as log, self.log_path.with_suffix(".times").open("w") as index:
            offset = 0
            while outcome is None:
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), clock.wait(self.now()))
                except TimeoutError:
                    outcome = clock.expired(self.now())
                    break
                except OSError as exc:
                    return self._finish("infra-error", title=f"serial socket error: {exc}")
                t = self.now()
                if not data:
                    obs.finish(t)
                    if obs.fatal_seen:
                        outcome = "crash"
                        break
                    await asyncio.sleep(0.05)  # let QEMU's exit status and stderr land
                    return self._qemu_exited(proc)
                log.write(data)
                log.flush()
                index.write(f"{offset} {t:.6f}\n")
                offset += len(data)
                actions = obs.feed(data, t)
                if self.opts.interact:
                    for a in actions:
                        self.event("send", a.interaction, t)
                        self.sends.append(asyncio.create_task(self._send(writer, a.send, a.delay)))
                step = clock.observe(t, obs)
                for s in step.stages:
                    self.event("stage", s.name, s.t if s.t is not None else t)
                if step.fatal_new:
                    self.event("fatal", obs.fatal.line if obs.fatal else "fatal line", t)
                if clock.fatal_at is not None and obs.dump_complete and (obs.dump_ended or self.opts.grace <= 0):
                    outcome = "crash"
                elif clock.fatal_at is None and obs.ready:
                    self.event("ready", obs.ready_line or "", t)
                    outcome = "pass"
        for task in self.sends:
            task.cancel()
        obs.finish(self.now())
        # keep draining the console: a guest blocked on a full serial socket holds QEMU's lock and QMP stalls
        drain = asyncio.create_task(self._drain(reader))
        registers = []
        if outcome in ("crash", "hang") and self.opts.capture_registers and getattr(proc, "returncode", 1) is None:
            from bootlab.lab.registers import capture

            registers = await capture(self.qmp, symbols=p.symbols)
        # a guest that writes a persistent disk gets a clean QMP quit; a snapshot boot is simply killed (faster)
        await self._stop(proc, graceful=p.writes_disks)
        drain.cancel()
        writer.close()
        verdict = self._finish(outcome)
        verdict.registers = registers
        return verdict

    async def _drain(self, reader: asyncio.StreamReader) -> None:
        with self.log_path.open("ab") as log:
            while True:
                try:
                    data = await reader.read(READ_SIZE)
                except (OSError, asyncio.CancelledError):
                    return
                if not data:
                    return
                log.write(data)

    async def _send(self, writer: asyncio.StreamWriter, text: str, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            writer.write(text.encode())
            await writer.drain()
        except (OSError, RuntimeError):
            pass  # QEMU went away; the reader notices

    async def _stop(self, proc: object, *, graceful: bool) -> None:
        from bootlab.qemu.process import QemuProcess

        assert isinstance(proc, QemuProcess)
        if graceful and proc.returncode is None:
            from bootlab.lab.registers import quit_vm

            await quit_vm(self.qmp, timeout=1.0)
            for _ in range(50):
                if proc.returncode is not None:
                    break
                await asyncio.sleep(0.01)
        proc.kill()

    def _qemu_exited(self, proc: object) -> Verdict:
        """QEMU went away before the guest reached a verdict: its exit status and stderr decide why."""
        code = getattr(proc, "returncode", None)
        self.obs.finish(self.now())
        stderr = self.stderr.read_text(errors="replace") if self.stderr.exists() else ""
        return qemu_exit_verdict(self.base, self.obs, code, self.now(), stderr=stderr)

    def _finish(self, outcome: str, *, title: str | None = None, fatal_line: str | None = None) -> Verdict:
        return finish_verdict(self.base, self.obs, outcome, self.now(), title=title, fatal_line=fatal_line)


def finish_verdict(
    base: Verdict,
    obs: Observer,
    outcome: str,
    duration_s: float,
    *,
    title: str | None = None,
    fatal_line: str | None = None,
) -> Verdict:
    """The verdict of a boot that ended in ``outcome`` (shared by :func:`boot` and the named-VM supervisor).

    ``base`` carries what is known before the guest runs (seed, log, accel, argv); the observer adds stage,
    stages, fatal line and incidents. A hang or timeout is titled by the last stage reached. A given ``title``
    wins; with it ``fatal_line`` replaces the observer's, except for a crash given none (the guest's own fatal
    line stays)."""
    fields = verdict_fields(obs)
    verdict = base.model_copy(update={**fields, "outcome": outcome, "duration_s": round(duration_s, 3)})
    if outcome in ("hang", "timeout"):
        verdict.title = f"{outcome} after {obs.stage or 'start'}"
    if title is not None:
        verdict.title = title
        if outcome != "crash" or fatal_line:
            verdict.fatal_line = fatal_line
    return verdict


def qemu_exit_verdict(base: Verdict, obs: Observer, code: int | None, duration_s: float, *, stderr: str) -> Verdict:
    """QEMU exited before the guest reached a verdict: its exit ``code`` and ``stderr`` (text) decide why.

    Exit 0 with nothing recognised on stderr is the guest powering off (or resetting under -no-reboot) before
    ready, its own doing: ``crash``. Anything else is ``qemu-error``, titled by the qemu pack's stderr signature
    when one matches (that line becomes the fatal line), else by the exit status."""
    line, title = qemu_reason(stderr)
    if code == 0 and not line:
        return finish_verdict(base, obs, "crash", duration_s, title="guest stopped before ready (QEMU exited with 0)")
    return finish_verdict(
        base, obs, "qemu-error", duration_s, title=title or f"QEMU exited with status {code}", fatal_line=line
    )


def qemu_reason(stderr: str) -> tuple[str | None, str | None]:
    """The first line of QEMU's stderr that the qemu pack recognises, and its title."""
    packs = load_packs(["qemu"])
    for raw in stderr.splitlines():
        line = raw.strip()
        for sig in packs.stderr_signatures:
            m = sig.regex.search(line)
            if m:
                caps = {k: v for k, v in m.groupdict().items() if v is not None}
                try:
                    title = sig.spec.title.format_map(caps)
                except KeyError:
                    title = line
                return line, normalise_title(title)
    return None, None
