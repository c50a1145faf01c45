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
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bootlab.console.clock import GRACE, MAX_GRACE, BootClock
from bootlab.console.observer import Observer
from bootlab.console.session import ShellSession, own_lines
from bootlab.console.shell import MAX_STAGED, ExecAborted, ShellError, command_text
from bootlab.packs.loader import PackSet, compile_packs
from bootlab.profile.model import Profile
from bootlab.verdict import Verdict
from bootlab.vm import protocol
from bootlab.vm.registry import VmDir, make_run_dir, process_start_time
from bootlab.vm.state import VmState, advance

TAIL = 2048  # bytes of recent console replayed to a new attacher (the prompt it would otherwise miss)
MAX_ATTACHER_BUFFER = 4 << 20  # an attacher this far behind is dropped rather than grow memory
CONTROL_LIMIT = 8 * MAX_STAGED  # the longest request line: an exec's argv as JSON (a staged command, escaped)


class Supervisor:
    # the crash-dump clocks, as `bootlab boot` uses them (class attributes, so a test can stretch them)
    grace = GRACE
    max_grace = MAX_GRACE

    def __init__(self, vm: VmDir) -> None:
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
        self.machine: Any = None  # the QemuMachine, once started
        self.hub: Any = None  # the ConsoleHub, once the console is up
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
        )

    def publish(self, state: VmState | None = None) -> None:
        if state is not None:
            self.state = advance(self.state, state)
        self.vm.write("state.json", self.status().model_dump(mode="json"))
        self.changed.set()
        self.changed = asyncio.Event()

    def _base(self) -> Verdict:
        return Verdict(
            outcome="infra-error", log=str(self.vm.log), seed=self.profile.seed, accel=self.accel, argv=self.argv
        )

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
        from bootlab.lab.boot import finish_verdict, qemu_exit_verdict
        from bootlab.lab.preflight import require_packs
        from bootlab.qemu.invocation import build_invocation
        from bootlab.qemu.machine import LaunchFailure, QemuMachine

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
            async with QemuMachine(runtime, stderr_path=self.vm.path / "qemu.stderr", keep_runtime=True) as machine:
                try:
                    project_dir = self.vm.meta().get("project_root")
                    self.packs = require_packs(self.profile, Path(project_dir) if project_dir else None)
                    # a VM is ready when its shell is (logged in): that is what exec needs
                    self.obs = Observer(self.packs, variables=self.profile.vars, wait_for_shell=bool(self.packs.shell))
                    inv = build_invocation(self.profile, probe(), machine.runtime)
                    inv.require_runnable()
                    self.accel, self.argv = inv.accel, list(inv.argv)
                    machine.launch(inv.argv)
                    self.machine = machine
                    self.t0 = machine.t0
                    self._write_record()
                    console = await machine.console()
                except LaunchFailure as exc:
                    self._boot_failed(
                        qemu_exit_verdict(self._base(), self.obs, exc.returncode, self.now(), stderr=exc.stderr)
                    )
                    return 0
                except Exception as exc:  # whatever stops QEMU from starting is an infra problem, said in one line
                    self._boot_failed(finish_verdict(self._base(), self.obs, "infra-error", self.now(), title=str(exc)))
                    self.note = str(exc)
                    self.publish()
                    return 0
                await self._life(machine, console)
                if self.stopping:  # let the `stop` request get its reply before the machine goes
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop_replied.wait(), 10.0)
        finally:
            await self._shutdown()
            runtime.cleanup()
        return 0

    async def _life(self, machine: Any, console: Any) -> None:
        """Boot, then watch the ready VM until it crashes or QEMU goes."""
        from bootlab.console.hub import ConsoleHub
        from bootlab.console.loop import BootLoop
        from bootlab.console.rawlog import RawLog
        from bootlab.lab.boot import conclude, finish_verdict

        p = self.profile
        self.hub = hub = ConsoleHub(console)
        hub.add_sink(self._fan_out)
        hub.start()
        clock = BootClock(p.timeout, p.quiet_timeout, console.now(), self.grace, self.max_grace)
        with RawLog(self.vm.log, append=True) as log:
            loop = BootLoop(hub.tap(), self.obs, clock, log=log, on_event=self._on_event, skip_line=own_lines(hub))
            ending = await loop.until_verdict()
            if ending != "pass":
                verdict = await conclude(machine, loop, ending, self._base(), symbols=p.symbols, registers=True)
                if not self.stopping:
                    self._boot_failed(verdict)
                await machine.stop(graceful=True)
                await loop.stop_drain()
                return
            self.session = ShellSession(
                hub, loop, should_stop=lambda: self.state not in (VmState.BOOTING, VmState.READY)
            )
            await self._become_ready(finish_verdict(self._base(), self.obs, "pass", console.now()))
            ending = await self.session.ending()
            if ending == "crash":
                loop.finish()
                fatal = self.obs.fatal
                self.crash = {"title": fatal.title if fatal else "crash", "line": fatal.line if fatal else None,
                              "t": fatal.t if fatal else None}  # fmt: skip
                self._record_verdict(finish_verdict(self._base(), self.obs, "crash", console.now()))
                self.publish(VmState.CRASHED)
                await loop.pump()  # the crashed guest stays attachable until stopped
            if not self.stopping:
                await machine.wait(2.0)
                self.note = f"QEMU exited with status {machine.returncode} (the guest powered off or reset)"
                self.publish(VmState.STOPPED)

    async def _become_ready(self, verdict: Verdict) -> None:
        """Ready: said at once. The shell is not probed here: the first exec syncs with it (and says what the
        guest answered when it is not a POSIX sh), so `vm launch` returns when the guest is ready, on any guest."""
        if self.state == VmState.BOOTING:  # not crashed or stopped meanwhile
            self._record_verdict(verdict)
            self.publish(VmState.READY)

    def _on_event(self, kind: str, _text: str, _t: float) -> None:
        if kind == "stage" and self.state == VmState.BOOTING:
            self.publish()

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
        if self.state == VmState.CRASHED and self.crash:
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
                if grace > 0:
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


async def _main(vmdir: Path) -> int:
    sup = Supervisor(VmDir(vmdir.name, vmdir))
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
    args = [a for a in args if a != "--detach"]
    if len(args) != 1:
        print("usage: python -m bootlab.vm.supervisor [--detach] VMDIR", file=sys.stderr)
        return 2
    # second fork: the CLI reaps the first child at once, the supervisor is adopted by init/subreaper
    if detach and os.fork() > 0:
        os._exit(0)
    return asyncio.run(_main(Path(args[0])))


if __name__ == "__main__":
    sys.exit(main())
