"""The per-VM supervisor: a small background process (like Lima's host agent) that owns one QEMU.

``python -m bootlab.vm.supervisor VMDIR`` (started detached by ``bootlab vm launch/start``) boots the profile in
``VMDIR/profile.json`` and stays with it until the VM stops. It is built on the same engine as ``bootlab boot``:
a :class:`~bootlab.qemu.machine.QemuMachine` (QEMU in its own session with a parent-death signal: if the
supervisor dies, even by SIGKILL, the kernel kills QEMU; nothing is ever found or killed by name) and the
:class:`~bootlab.console.loop.BootLoop`, which decides the boot exactly as ``bootlab boot`` does (interactions,
clocks, the crash dump's end) and, after ready, keeps watching for fatal signatures, so a guest that crashes later
shows as ``crashed`` with its title. What is the supervisor's own sits around that loop:

* the console is shared through a :class:`~bootlab.console.hub.ConsoleHub`: the loop, each exec and the attached
  terminals each see every byte; after ready, execs run through a :class:`~bootlab.console.session.ShellSession`
  (the same one a boot's checks use), one at a time, while the loop keeps watching;
* the control socket ``ctl.sock`` (0600, in a 0700 directory) answers the CLI with the typed messages of
  :mod:`bootlab.vm.protocol`;
* the state (:mod:`bootlab.vm.state`) is written to ``state.json`` on every change, so ``bootlab vm list``
  works even if the supervisor hangs.

``--boot`` runs one boot instead (``bootlab boot --hold-on-crash``, ``bootlab trial --hold-first-crash``; see
:mod:`bootlab.vm.hold`): a QEMU cannot change parent (its parent-death signal is tied to the process that
forked it), so a boot that may outlive its command runs here from the start. Nothing starts before its owner
asks (``boot`` on the control socket); the boot is decided exactly as ``bootlab boot`` decides it (the same
observer, loop, clocks and :func:`~bootlab.lab.boot.conclude`), its events streamed to the owner. A pass or an
unheld failure records its verdict, answers the owner and removes the VM. A crash or hang the owner wants held
stays paused as it died, with QEMU's gdb stub on ``gdb.sock`` beside ``ctl.sock``, as the named VM ``held``,
until ``vm stop``. The owner's connection closing before the boot is decided ends it (no QEMU outlives a
killed ``bootlab boot``); once held, the VM no longer depends on it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootlab.console.clock import GRACE, MAX_GRACE, BootClock
from bootlab.console.loop import BootLoop, Ending
from bootlab.console.observer import Observer
from bootlab.console.session import ShellSession, own_lines
from bootlab.console.shell import MAX_STAGED, ExecAborted, ShellError, command_text
from bootlab.packs.loader import PackSet, compile_packs
from bootlab.profile.model import Profile
from bootlab.verdict import Verdict
from bootlab.vm import protocol
from bootlab.vm.registry import VmDir, make_run_dir, process_start_time
from bootlab.vm.state import VmState, advance

if TYPE_CHECKING:
    from bootlab.console.base import Console
    from bootlab.console.hub import ConsoleHub
    from bootlab.qemu.machine import QemuMachine

TAIL = 2048  # bytes of recent console replayed to a new attacher (the prompt it would otherwise miss)
OWNER_TIMEOUT = 30.0  # a one-shot boot whose owner never asks is dropped after this long
ANSWER_TIMEOUT = 30.0  # an owner that does not say whether to hold a crash: it is not held
MAX_ATTACHER_BUFFER = 4 << 20  # an attacher this far behind is dropped rather than grow memory
CONTROL_LIMIT = 8 * MAX_STAGED  # the longest request line: an exec's argv as JSON (a staged command, escaped)


class Supervisor:
    # the crash-dump clocks, as `bootlab boot` uses them (class attributes, so a test can stretch them)
    grace = GRACE
    max_grace = MAX_GRACE

    def __init__(self, vm: VmDir, *, boot: bool = False) -> None:
        self.vm = vm
        self.profile = Profile.model_validate(vm.read("profile.json"))
        # no packs until run() loads them (inside its error handling: a bad pack is this VM's verdict)
        self.packs: PackSet = compile_packs([])
        self.obs = Observer(self.packs, variables=self.profile.vars)
        self.state = VmState.BOOTING
        self.verdict: Verdict | None = None
        self.crash: dict[str, Any] | None = None
        self.t0 = time.monotonic()
        self.started = time.time()
        self.accel: str | None = None
        self.argv: list[str] = []
        self.machine: QemuMachine | None = None  # once started
        self.hub: ConsoleHub | None = None  # once the console is up
        self.attachers: set[asyncio.StreamWriter] = set()
        self.tail = bytearray()
        self.session: ShellSession | None = None  # once ready: the shell that execs run in
        self.changed = asyncio.Event()
        self.stopping = False
        self.stop_replied = asyncio.Event()
        self.note = ""
        self.run_dir: Path | None = None
        self.server: asyncio.Server | None = None
        self.shut = False
        self.task: asyncio.Task[Any] | None = None
        self.gdb_socket: Path | None = None
        self.gdb_error: str | None = None
        # a one-shot boot (--boot): its owner, whether it wants a crash held, its answer, and how it ended
        self.boot_mode = boot
        meta = vm.read("vm.json")
        boot_log = meta.get("boot_log") if boot and isinstance(meta, dict) else None
        self.boot_log: Path | None = Path(boot_log) if boot_log else None  # the owner's log of the boot
        self.owner: asyncio.StreamWriter | None = None
        self.owner_here = asyncio.Event()
        self.hold_wanted = False
        self.answer: asyncio.Future[bool] | None = None
        self.settled = False  # the owner has (or is about to get) its final answer: its leaving changes nothing
        self.held = False
        self.discard = False  # a one-shot boot that ended (not held) or was abandoned: its VM goes with it

    # ------------------------------------------------------------------ bookkeeping

    def now(self) -> float:
        return time.monotonic() - self.t0

    def status(self) -> protocol.Status:
        v = self.verdict
        return protocol.Status(
            name=self.vm.name,
            state=self.state,
            profile=self.profile.name,
            accel=self.accel,
            started=self.started,
            uptime_s=round(self.now(), 1),
            stages=[{"name": s.name, "t": s.t} for s in self.obs.stages],
            verdict=v.model_dump(mode="json") if v is not None else None,
            crash=self.crash,
            note=self.note,
            pid=os.getpid(),
            qemu_pid=self.machine.pid if self.machine is not None else None,
            forwards=[f"{f.host}:{f.guest}" for f in self.profile.forwards],
            log=str(self.vm.log),
            exec_gzip=self.session.shell.gzip if self.session is not None else None,
            gdb_socket=str(self.gdb_socket) if self.gdb_socket else None,
            gdb_error=self.gdb_error,
            symbols=self.profile.symbols,
            arch=self.profile.arch,
        )

    def publish(self, state: VmState | None = None) -> None:
        if state is not None:
            self.state = advance(self.state, state)
        self.vm.write("state.json", self.status().model_dump(mode="json"))
        self.changed.set()
        self.changed = asyncio.Event()

    def _base(self) -> Verdict:
        log = self.boot_log or self.vm.log
        return Verdict(outcome="infra-error", log=str(log), seed=self.profile.seed, accel=self.accel, argv=self.argv)

    def _record_verdict(self, v: Verdict) -> None:
        self.verdict = v
        history = self.vm.read("verdicts.json")
        history = history if isinstance(history, list) else []
        history.append({"profile": self.profile.name, "at": self.started, **v.model_dump(mode="json")})
        self.vm.write("verdicts.json", history)

    def _boot_failed(self, v: Verdict) -> None:
        self._record_verdict(v)
        self.note = f"boot failed: {v.outcome}" + (f": {v.title}" if v.title else "")
        self.publish(VmState.STOPPED)

    async def _launch_failed(self, v: Verdict, note: str | None = None) -> None:
        self._boot_failed(v)
        if note:
            self.note = note
            self.publish()
        if self.boot_mode:
            self.settled = self.discard = True
            await self._tell_owner(self.status())

    def _write_record(self) -> None:
        qemu_pid = self.machine.pid if self.machine is not None else None
        self.vm.write(
            "supervisor.json",
            {
                "pid": os.getpid(),
                "start": process_start_time(os.getpid()),
                "run_dir": str(self.run_dir),
                "qemu_pid": qemu_pid,
                "qemu_start": process_start_time(qemu_pid) if qemu_pid else None,
            },
        )

    # ------------------------------------------------------------------ main

    async def run(self) -> int:
        from bootlab.host import probe
        from bootlab.lab.boot import boot_observer, finish_verdict, qemu_exit_verdict
        from bootlab.lab.preflight import require_packs
        from bootlab.qemu.invocation import build_invocation
        from bootlab.qemu.machine import LaunchFailure, QemuMachine

        self.task = asyncio.current_task()
        runtime = make_run_dir(self.vm.name)
        self.run_dir = runtime.path
        os.chmod(self.run_dir, 0o700)
        self.server = await asyncio.start_unix_server(
            self._client, path=str(self.run_dir / "ctl.sock"), limit=CONTROL_LIMIT
        )
        os.chmod(self.run_dir / "ctl.sock", 0o600)
        self._write_record()
        self.publish()
        try:
            if self.boot_mode and not await self._owner_asked():
                return 0
            async with QemuMachine(runtime, stderr_path=self.vm.path / "qemu.stderr", keep_runtime=True) as machine:
                try:
                    project_dir = self.vm.meta().get("project_root")
                    self.packs = require_packs(self.profile, Path(project_dir) if project_dir else None)
                    if self.boot_mode:  # decided exactly as `bootlab boot` decides it
                        self.obs = boot_observer(self.profile, self.packs)
                    else:  # a VM is ready when its shell is (logged in): that is what exec needs
                        self.obs = Observer(
                            self.packs, variables=self.profile.vars, wait_for_shell=bool(self.packs.shell)
                        )
                    inv = build_invocation(self.profile, probe(), machine.runtime)
                    inv.require_runnable()
                    self.accel, self.argv = inv.accel, list(inv.argv)
                    machine.launch(inv.argv)
                    self.machine = machine
                    self.t0 = machine.t0
                    self._write_record()
                    console = await machine.console()
                except LaunchFailure as exc:
                    await self._launch_failed(
                        qemu_exit_verdict(self._base(), self.obs, exc.returncode, self.now(), stderr=exc.stderr)
                    )
                    return 0
                except Exception as exc:  # whatever stops QEMU from starting is an infra problem, said in one line
                    await self._launch_failed(
                        finish_verdict(self._base(), self.obs, "infra-error", self.now(), title=str(exc)), str(exc)
                    )
                    return 0
                await self._life(machine, console)
                if self.stopping:  # let the `stop` request get its reply before the machine goes
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop_replied.wait(), 10.0)
        finally:
            await self._shutdown()
            runtime.cleanup()
        return 0

    async def _life(self, machine: QemuMachine, console: Console) -> None:
        """Boot; then a named VM is watched until it crashes or QEMU goes, and a one-shot boot ends or is held."""
        from bootlab.console.hub import ConsoleHub
        from bootlab.console.rawlog import RawLog
        from bootlab.lab.boot import keep_crashed

        p = self.profile
        self.hub = hub = ConsoleHub(console)
        hub.add_sink(self._fan_out)
        hub.start()
        clock = BootClock(p.timeout, p.quiet_timeout, console.now(), self.grace, self.max_grace)
        log = RawLog(self.boot_log or self.vm.log, append=not self.boot_mode)
        loop = BootLoop(hub.tap(), self.obs, clock, log=log, on_event=self._on_event, skip_line=own_lines(hub))
        try:
            machine.pause_on_guest_stop(keep_crashed(loop))
            if self.vm.meta().get("gdb"):
                await self._start_gdb(machine)
            ending = await loop.until_verdict()
            if self.boot_mode:
                await self._end_boot(machine, loop, ending)
            else:
                await self._watch(machine, loop, ending, console)
        finally:
            (loop.log or log).close()

    async def _watch(self, machine: QemuMachine, loop: BootLoop, ending: Ending, console: Console) -> None:
        """A named VM after its boot: a failed boot stops it; a ready one is watched for a later crash."""
        from bootlab.lab.boot import conclude, finish_verdict

        p = self.profile
        if ending != "pass":
            verdict = await conclude(machine, loop, ending, self._base(), symbols=p.symbols, registers=True)
            if not self.stopping:
                self._boot_failed(verdict)
            await machine.stop(graceful=True)
            await loop.stop_drain()
            return
        assert self.hub is not None  # _life made it before the loop ran
        self.session = ShellSession(
            self.hub, loop, should_stop=lambda: self.state not in (VmState.BOOTING, VmState.READY)
        )
        await self._become_ready(finish_verdict(self._base(), self.obs, "pass", console.now()))
        ending = await self.session.ending()
        if ending == "crash":
            # concluded as every boot is; no registers: the crashed VM runs on as it is, to be looked at
            verdict = await conclude(machine, loop, ending, self._base(), symbols=p.symbols, registers=False)
            await loop.stop_drain()  # the pump below takes the console over
            fatal = self.obs.fatal
            self.crash = {"title": fatal.title if fatal else "crash", "line": fatal.line if fatal else None,
                          "t": fatal.t if fatal else None}  # fmt: skip
            self._record_verdict(verdict)
            self.publish(VmState.CRASHED)
            await loop.pump()  # the crashed guest stays attachable until stopped
        if not self.stopping:
            await machine.wait(2.0)
            self.note = f"QEMU exited with status {machine.returncode} (the guest powered off or reset)"
            self.publish(VmState.STOPPED)

    async def _start_gdb(self, machine: QemuMachine) -> None:
        """QEMU's gdb stub on ``gdb.sock`` beside ``ctl.sock`` (0600 in the 0700 run directory), kept until QEMU
        goes; when QEMU refuses (HVF before 8.1), why is published instead and the VM goes on without it."""
        from bootlab.errors import InfraError

        assert self.run_dir is not None
        try:
            self.gdb_socket = await machine.start_gdb(self.run_dir / "gdb.sock")
        except InfraError as exc:
            from bootlab.qemu.sysregs import explain

            self.gdb_error = explain(str(exc))

    # ------------------------------------------------------------------ a one-shot boot (--boot)

    async def _owner_asked(self) -> bool:
        """Wait for the owner's ``boot`` request; False (and the VM goes) when none comes."""
        try:
            await asyncio.wait_for(self.owner_here.wait(), OWNER_TIMEOUT)
        except TimeoutError:
            self.note = "nobody asked for the boot"
            self.discard = True
            return False
        return True

    async def _end_boot(self, machine: QemuMachine, loop: BootLoop, ending: Ending) -> None:
        """The verdict, as `bootlab boot` concludes it (a ready boot runs its checks first, so a crash during one is
        held like any other); then held (when the owner wants it) or ended."""
        from bootlab.lab.boot import BootOptions, checked_verdict, conclude
        from bootlab.vm.hold import HOLDABLE

        if ending == "pass" and self.profile.checks:
            assert self.hub is not None  # _life made it before the loop ran
            opts = BootOptions(on_event=self._on_event)
            verdict = await checked_verdict(machine, loop, self.hub, self._base(), self.profile, opts)
        else:
            verdict = await conclude(machine, loop, ending, self._base(), symbols=self.profile.symbols, registers=True)
        held = verdict.outcome in HOLDABLE and self.hold_wanted and machine.running
        if held and await self._ask_owner(verdict):
            await self._hold(machine, loop, verdict)
            return
        self.settled = self.discard = True
        self._record_verdict(verdict)
        await machine.stop(graceful=self.profile.writes_disks)
        await loop.stop_drain()
        self.publish(VmState.STOPPED)
        await self._tell_owner(self.status())

    async def _ask_owner(self, verdict: Verdict) -> bool:
        self.answer = asyncio.get_running_loop().create_future()
        await self._tell_owner(protocol.HoldQuestion(verdict=verdict.model_dump(mode="json")))
        try:
            return await asyncio.wait_for(self.answer, ANSWER_TIMEOUT)
        except TimeoutError:
            return False

    async def _hold(self, machine: QemuMachine, loop: BootLoop, verdict: Verdict) -> None:
        """Keep the crash: paused as it died (registers read already), a gdb stub, the VM ``held`` until stopped."""
        self.settled = True  # held from here on, whatever the owner does next
        self.held = True
        await self._start_gdb(machine)
        self.crash = {"title": verdict.title or verdict.outcome, "line": verdict.fatal_line, "t": verdict.fatal_t}
        self._keep_log(loop)
        self._record_verdict(verdict)
        self.note = f"held at its {verdict.outcome}: the guest is paused as it died"
        self.publish(VmState.HELD)
        await self._tell_owner(self.status())
        await loop.stop_drain()
        await loop.pump()  # attachable and logged until QEMU goes
        if not self.stopping:
            await machine.wait(2.0)
            self.note = f"QEMU exited with status {machine.returncode}"
            self.publish(VmState.STOPPED)

    def _keep_log(self, loop: BootLoop) -> None:
        """The boot's log belongs to its owner (a trial removes it once stored); a held VM goes on in its own
        ``console.log``, which starts as a copy of the boot's (with its time index). No await in here: the
        drain writing into the loop's log cannot run in between."""
        from bootlab.console.rawlog import RawLog, times_path

        if self.boot_log is None or loop.log is None:
            return
        loop.log.close()
        self.vm.log.unlink(missing_ok=True)  # the link to the boot's log, while it ran
        with contextlib.suppress(OSError):
            shutil.copyfile(self.boot_log, self.vm.log)
            shutil.copyfile(times_path(self.boot_log), times_path(self.vm.log))
        loop.log = RawLog(self.vm.log, append=True)

    async def _serve_owner(
        self, req: protocol.BootRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """The owner's connection: answers come on it; it closing before the boot is settled ends the boot."""
        if not self.boot_mode or self.owner is not None:
            await self._reply(writer, protocol.ErrorReply(error=f"vm {self.vm.name} is not a boot waiting to run"))
            return
        self.owner, self.hold_wanted = writer, req.hold
        self.owner_here.set()
        while line := await reader.readline():
            with contextlib.suppress(ValueError):
                answer = protocol.HoldAnswer.model_validate_json(line)
                if self.answer is not None and not self.answer.done():
                    self.answer.set_result(answer.hold)
        self.owner = None
        if not self.settled:  # the owner is gone (killed, interrupted): nobody wants this boot any more
            self.stopping = self.discard = True
            if self.task is not None:
                self.task.cancel()

    async def _guest(self, resume: bool) -> protocol._Message:
        from bootlab.errors import InfraError

        if self.machine is None or not self.machine.running:
            return protocol.ErrorReply(error=f"vm {self.vm.name} is {self.state}", state=self.state)
        try:
            running = await self.machine.guest_running()
            if resume and not running and self.state in (VmState.BOOTING, VmState.READY):
                await self.machine.cont()  # one stopped at its own reset request is reset first, as it asked
                running = True
        except InfraError as exc:
            return protocol.ErrorReply(error=f"vm {self.vm.name}: {exc}")
        return protocol.GuestReply(running=running)

    async def _tell_owner(self, message: protocol._Message) -> None:
        if self.owner is not None and not self.owner.is_closing():
            with contextlib.suppress(ConnectionError):
                await self._reply(self.owner, message)

    async def _become_ready(self, verdict: Verdict) -> None:
        """Ready: said at once. The shell is not probed here: the first exec syncs with it (and says what the
        guest answered when it is not a POSIX sh), so `vm launch` returns when the guest is ready, on any guest."""
        if self.state == VmState.BOOTING:  # not crashed or stopped meanwhile
            self._record_verdict(verdict)
            self.publish(VmState.READY)

    def _on_event(self, kind: str, text: str, t: float) -> None:
        if kind == "stage" and self.state == VmState.BOOTING:
            self.publish()
        if self.owner is not None and not self.owner.is_closing():
            self.owner.write(protocol.LoopEvent(kind=kind, text=text, t=t).encode())

    def _fan_out(self, data: bytes) -> None:
        self.tail += data
        if len(self.tail) > TAIL:
            del self.tail[:-TAIL]
        for w in list(self.attachers):
            if w.is_closing() or w.transport.get_write_buffer_size() > MAX_ATTACHER_BUFFER:
                self.attachers.discard(w)
                w.close()
                continue
            w.write(data)

    async def _shutdown(self) -> None:
        if self.shut:
            return
        self.shut = True
        if self.machine is not None:
            self.machine.kill()
        if self.hub is not None:
            await self.hub.close()
        for w in list(self.attachers):
            w.close()
        if self.state != VmState.STOPPED:
            self.publish(VmState.STOPPED)
        if self.server is not None:
            self.server.close()
        with contextlib.suppress(FileNotFoundError):
            self.vm.supervisor_file.unlink()
        if self.boot_mode and self.discard:  # a one-shot boot that was not held leaves nothing
            shutil.rmtree(self.vm.path, ignore_errors=True)

    # ------------------------------------------------------------------ exec

    async def do_exec(self, req: protocol.ExecRequest, abandoned: asyncio.Event | None = None) -> protocol._Message:
        """Run one framed command. ``abandoned`` is set when the client went away (Ctrl-C on `vm exec`): the
        command is interrupted as on a timeout, so a forgotten `sleep 1000` cannot hold the exec lock."""
        size = len(command_text(req.argv).encode())
        if size > MAX_STAGED:  # refuse early, before queueing (a long command is staged: see console/shell.py)
            return protocol.ErrorReply(
                error=f"the command is {size} bytes, more than bootlab sends over a console ({MAX_STAGED} bytes); "
                f"put it in a script on a --mount share",
                usage=True,
            )
        session = self.session
        if self.state != VmState.READY or session is None:
            return self._not_ready()
        try:
            out = await session.run(req.argv, req.timeout, abandoned)
        except ExecAborted:
            return self._not_ready()
        except ShellError as exc:
            return protocol.ErrorReply(error=f"vm {self.vm.name}: {exc}")
        self.publish()  # exec_gzip may have been learnt
        return protocol.ExecReply(
            stdout_b64=base64.b64encode(out.output).decode(),
            exit_code=out.exit_code,
            duration_s=out.duration_s,
            timed_out=out.timed_out,
        )

    def _not_ready(self) -> protocol.ErrorReply:
        if self.state in (VmState.CRASHED, VmState.HELD) and self.crash:
            return protocol.ErrorReply(
                error=f"vm {self.vm.name} crashed: {self.crash['title']}",
                state=self.state,
                verdict=self.verdict.model_dump(mode="json") if self.verdict else None,
            )
        return protocol.ErrorReply(error=f"vm {self.vm.name} is {self.state}", state=self.state)

    # ------------------------------------------------------------------ stop

    async def do_stop(self, grace: float) -> protocol.StopReply:
        """Graceful first (ACPI/PSCI power button over QMP), then `quit`, then the process group."""
        from bootlab.errors import InfraError

        self.stopping = True
        if self.state != VmState.STOPPED:
            self.publish(VmState.STOPPING)
        machine = self.machine
        how = "already stopped"
        if machine is not None and machine.running:
            how = "killed"
            try:
                if grace > 0 and await machine.guest_running():  # a paused guest cannot hear the power button
                    await machine.powerdown()
                    if await machine.wait(grace) is not None:
                        how = "powered off"
                if machine.running and await machine.quit(timeout=3.0):
                    how = "quit"
            except InfraError:  # QMP unreachable: the process group is still ours to kill
                pass
            machine.kill()
        self.note = f"stopped ({how})"
        if self.state != VmState.STOPPED:
            self.publish(VmState.STOPPED)
        return protocol.StopReply(how=how)

    # ------------------------------------------------------------------ control socket

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                req = protocol.parse_request(await reader.readline())
            except ValueError as exc:
                await self._reply(writer, protocol.ErrorReply(error=str(exc)))
                return
            if isinstance(req, protocol.StatusRequest):
                await self._reply(writer, self.status())
            elif isinstance(req, protocol.WaitRequest):
                await self._wait_settled(req.timeout, writer if req.events else None)
                await self._reply(writer, self.status())
            elif isinstance(req, protocol.ExecRequest):
                abandoned = asyncio.Event()

                async def watch() -> None:  # the client sends nothing more: EOF means it is gone
                    with contextlib.suppress(Exception):
                        await reader.read()
                    abandoned.set()

                watcher = asyncio.create_task(watch())
                try:
                    res = await self.do_exec(req, abandoned)
                finally:
                    watcher.cancel()
                if not abandoned.is_set():
                    await self._reply(writer, res)
            elif isinstance(req, protocol.AttachRequest):
                await self._attach(reader, writer)
            elif isinstance(req, protocol.StopRequest):
                await self._reply(writer, await self.do_stop(req.grace))
                self.stop_replied.set()
            elif isinstance(req, protocol.BootRequest):
                await self._serve_owner(req, reader, writer)
            elif isinstance(req, protocol.GuestRequest):
                await self._reply(writer, await self._guest(req.resume))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _wait_settled(self, timeout: float, events: asyncio.StreamWriter | None = None) -> None:
        """Until the boot is decided; with ``events``, each stage is sent as it is reached (`launch` prints the
        timeline live: a Redox boot under TCG takes a minute, silence would look like a hang)."""
        deadline = time.monotonic() + timeout
        sent = 0
        while True:
            if events is not None:
                for st in self.obs.stages[sent:]:
                    await self._reply(events, protocol.StageEvent(name=st.name, t=st.t))
                sent = len(self.obs.stages)
            if self.state != VmState.BOOTING or time.monotonic() >= deadline:
                return
            ev = self.changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), deadline - time.monotonic())

    async def _reply(self, writer: asyncio.StreamWriter, message: protocol._Message) -> None:
        writer.write(message.encode())
        await writer.drain()

    async def _attach(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Raw console both ways. Input goes to the guest as typed; detaching is the client's business."""
        if self.state == VmState.STOPPED or self.hub is None or self.hub.closed:
            await self._reply(writer, protocol.ErrorReply(error=f"vm {self.vm.name} is {self.state}", state=self.state))
            return
        await self._reply(writer, protocol.AttachReply(state=self.state))
        tail = bytes(self.tail)
        cut = tail.find(b"\n")
        writer.write(tail[cut + 1 :] if 0 <= cut < len(tail) - 1 else tail)
        self.attachers.add(writer)
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                await self.hub.write(data)
        finally:
            self.attachers.discard(writer)


async def _main(vmdir: Path, *, boot: bool = False) -> int:
    sup = Supervisor(VmDir(vmdir.name, vmdir), boot=boot)
    loop = asyncio.get_running_loop()
    # qemu.qmp's reader task ends in EOFError when QEMU quits under it: expected, not worth a traceback
    loop.set_exception_handler(lambda _loop, ctx: print(f"supervisor: {ctx.get('message')}", file=sys.stderr))
    task = asyncio.create_task(sup.run())

    def on_term() -> None:
        sup.stopping = True
        task.cancel()  # run()'s clean-up kills QEMU and removes the record

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, on_term)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    detach = "--detach" in args
    boot = "--boot" in args
    args = [a for a in args if a not in ("--detach", "--boot")]
    if len(args) != 1:
        print("usage: python -m bootlab.vm.supervisor [--detach] [--boot] VMDIR", file=sys.stderr)
        return 2
    # second fork: the CLI reaps the first child at once, the supervisor is adopted by init/subreaper
    if detach and os.fork() > 0:
        os._exit(0)
    return asyncio.run(_main(Path(args[0]), boot=boot))


if __name__ == "__main__":
    sys.exit(main())
