"""The per-VM supervisor: a small background process (like Lima's host agent) that owns one QEMU.

``python -m bootlab.vm.supervisor VMDIR`` (started detached by ``bootlab vm launch/start``) boots the profile in
``VMDIR/profile.json`` and stays with it until the VM stops:

* QEMU is its child, in its own session with a parent-death signal (SIGKILL): if the supervisor dies, even by
  SIGKILL, the kernel kills QEMU. Nothing is ever found or killed by name.
* It reads the serial console for the VM's whole life: every byte goes to ``console.log`` and to the attached
  consoles; the pack's observer turns the boot into a verdict (stages, interactions such as the Redox menu and
  the login, hang and timeout clocks) and, after ready, keeps watching for fatal signatures, so a guest that
  crashes later shows as ``crashed`` with its title.
* It answers the CLI on ``ctl.sock`` (0600, in a 0700 directory): one JSON request line, JSON reply lines;
  ``attach`` turns the connection into a raw console stream. Execs are serialized by a lock.

State the CLI reads without asking (``bootlab vm list`` must work even if the supervisor hangs) is written to
``state.json`` on every change.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bootlab.console.clock import BootClock
from bootlab.console.observer import Observer
from bootlab.lab.boot import finish_verdict, qemu_exit_verdict
from bootlab.packs.loader import PackSet, compile_packs, load_packs
from bootlab.profile.model import Profile
from bootlab.verdict import Verdict
from bootlab.vm import shell
from bootlab.vm.registry import VmDir, make_run_dir, process_start_time

READ_SIZE = 65536
CONNECT_TIMEOUT = 15.0
TAIL = 2048  # bytes of recent console replayed to a new attacher (the prompt it would otherwise miss)
MAX_ATTACHER_BUFFER = 4 << 20  # an attacher this far behind is dropped rather than grow memory
SYNC_TIMEOUT = 10.0


class Supervisor:
    def __init__(self, vm: VmDir) -> None:
        self.vm = vm
        self.profile = Profile.model_validate(vm.read("profile.json"))
        # no packs until run() loads them (inside its error handling: a bad pack is this VM's verdict)
        self.packs: PackSet = compile_packs([])
        self.wait_for_shell = False
        self.obs = Observer(self.packs, variables=self.profile.vars)
        self.state = "booting"
        self.verdict: Verdict | None = None
        self.crash: dict[str, Any] | None = None
        self.t0 = time.monotonic()
        self.started = time.time()
        self.accel: str | None = None
        self.argv: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.attachers: set[asyncio.StreamWriter] = set()
        self.tail = bytearray()
        self.exec_lock = asyncio.Lock()
        self.exec_buf: bytearray | None = None
        self.exec_event = asyncio.Event()
        self.changed = asyncio.Event()
        self.synced = False
        self.line_buf = bytearray()
        self.stopping = False
        self.done = asyncio.Event()
        self.stop_replied = asyncio.Event()
        self.note = ""
        self.run_dir: Path | None = None
        self.runtime: Any = None
        self.server: asyncio.Server | None = None
        self.shut = False
        self.becoming_ready = False
        self.gzip: bool | None = None  # can the guest compress exec output? probed at the first exec
        self.tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ bookkeeping

    def now(self) -> float:
        return time.monotonic() - self.t0

    def status(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "name": self.vm.name,
            "state": self.state,
            "profile": self.profile.name,
            "accel": self.accel,
            "started": self.started,
            "uptime_s": round(self.now(), 1),
            "stages": [{"name": s.name, "t": s.t} for s in self.obs.stages],
            "verdict": v.model_dump(mode="json") if v is not None else None,
            "crash": self.crash,
            "note": self.note,
            "pid": os.getpid(),
            "qemu_pid": self.proc.pid if self.proc else None,
            "forwards": [f"{f.host}:{f.guest}" for f in self.profile.forwards],
            "log": str(self.vm.log),
            "exec_gzip": self.gzip,
        }

    def publish(self, state: str | None = None) -> None:
        if state is not None:
            self.state = state
        self.vm.write("state.json", self.status())
        self.changed.set()
        self.changed = asyncio.Event()

    def _base(self) -> Verdict:
        return Verdict(
            outcome="infra-error", log=str(self.vm.log), seed=self.profile.seed, accel=self.accel, argv=self.argv
        )

    def _verdict(self, outcome: str, *, title: str | None = None) -> Verdict:
        return finish_verdict(self._base(), self.obs, outcome, self.now(), title=title)

    def _load_packs(self) -> None:
        project_dir = self.vm.meta().get("project_root")
        self.packs = load_packs(self.profile.pack, Path(project_dir) if project_dir else None)
        # a VM is ready when its shell is (logged in): that is what exec needs
        self.wait_for_shell = bool(self.packs.shell)
        self.obs = Observer(self.packs, variables=self.profile.vars, wait_for_shell=self.wait_for_shell)

    def _record_verdict(self, v: Verdict) -> None:
        self.verdict = v
        history = self.vm.read("verdicts.json")
        history = history if isinstance(history, list) else []
        history.append({"profile": self.profile.name, "at": self.started, **v.model_dump(mode="json")})
        self.vm.write("verdicts.json", history)

    # ------------------------------------------------------------------ main

    async def run(self) -> int:
        from bootlab.host import probe
        from bootlab.qemu.argv import binary_path, build_invocation
        from bootlab.qemu.process import child_setup

        self.runtime = make_run_dir(self.vm.name)
        self.run_dir = self.runtime.path
        os.chmod(self.run_dir, 0o700)
        self.server = await asyncio.start_unix_server(self._client, path=str(self.run_dir / "ctl.sock"))
        os.chmod(self.run_dir / "ctl.sock", 0o600)
        self._write_record()
        self.publish("booting")
        try:
            self._load_packs()  # an unknown pack is the VM's infra-error, reported at once (not a dead supervisor)
            host = probe()
            inv = build_invocation(self.profile, host, self.runtime)
            inv.require_runnable()
            self.accel = inv.accel
            self.argv = list(inv.argv)
            argv = [binary_path(inv.argv), *inv.argv[1:]]
            with (self.vm.path / "qemu.stderr").open("wb") as err:
                self.t0 = time.monotonic()
                self.proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,
                    preexec_fn=child_setup(os.getpid(), signal.SIGKILL),
                )
            self._write_record()
        except Exception as exc:  # whatever stops QEMU from starting is an infra problem, said in one line
            self._record_verdict(self._verdict("infra-error", title=str(exc)))
            self.note = str(exc)
            self.publish("stopped")
            return await self._shutdown()
        waiter = asyncio.create_task(self.proc.wait())
        try:
            await self._console(waiter)
            if self.stopping:  # let the `stop` request get its reply before the loop ends
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_replied.wait(), 10.0)
        finally:
            await self._shutdown()
        return 0

    def _write_record(self) -> None:
        self.vm.write(
            "supervisor.json",
            {
                "pid": os.getpid(),
                "start": process_start_time(os.getpid()),
                "run_dir": str(self.run_dir),
                "qemu_pid": self.proc.pid if self.proc else None,
                "qemu_start": process_start_time(self.proc.pid) if self.proc else None,
            },
        )

    async def _connect(self, waiter: asyncio.Task[int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while time.monotonic() < deadline and not waiter.done():
            if self.runtime.serial.exists():
                with contextlib.suppress(OSError):
                    return await asyncio.open_unix_connection(str(self.runtime.serial))
            await asyncio.sleep(0.01)
        return None

    async def _console(self, waiter: asyncio.Task[int]) -> None:
        conn = await self._connect(waiter)
        if conn is None:
            await asyncio.sleep(0.05)
            self._boot_failed(self._qemu_exit_verdict() if waiter.done() else self._verdict("infra-error"))
            return
        reader, self.writer = conn
        log = self.vm.log.open("ab")
        p = self.profile
        clock = BootClock(p.timeout, p.quiet_timeout, self.now())
        try:
            while True:
                wait = clock.wait(self.now(), booting=self.state == "booting")
                read = asyncio.ensure_future(reader.read(READ_SIZE))
                done, _ = await asyncio.wait({read, waiter}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    with contextlib.suppress(asyncio.CancelledError, OSError):
                        await read
                    if waiter in done:
                        await self._qemu_gone(clock.fatal_at)
                        return
                    # a clock ran out
                    if clock.fatal_at is not None:
                        await self._crashed()
                        clock.fatal_at = None
                        if self.state != "crashed":
                            return
                        continue
                    await self._boot_failed_stop(self._verdict(clock.expired(self.now())))
                    return
                try:
                    data = read.result()
                except OSError:
                    data = b""
                t = self.now()
                if not data:
                    await asyncio.wait({waiter}, timeout=2.0)
                    await self._qemu_gone(clock.fatal_at)
                    return
                log.write(data)
                log.flush()
                self._fan_out(data)
                self._observe(data, t)
                step = clock.observe(t, self.obs, watch_fatal=self.state != "crashed")
                if step.progressed and self.state == "booting":
                    self.publish()
                if step.fatal_new and self.obs.dump_complete and clock.grace <= 0:
                    await self._crashed()
                if clock.fatal_at is None and self.state == "booting" and self.obs.ready and not self.becoming_ready:
                    self.becoming_ready = True
                    self._spawn(self._become_ready())
        finally:
            log.close()

    def _observe(self, data: bytes, t: float) -> None:
        """Feed the observer. Before ready: everything, answering menus and logins. After ready: whole lines
        only, minus our own exec framing (the echoed command line holds the user's text, which must not be
        read as a guest failure), and nothing is answered any more (a login prompt an exec prints is output)."""
        if self.state == "booting":
            for a in self.obs.feed(data, t):
                self._spawn(self._send(a.send.encode(), a.delay))
            return
        self.line_buf += data
        if b"\n" not in self.line_buf:
            if len(self.line_buf) > 65536:
                del self.line_buf[:-4096]
            return
        head, _, rest = bytes(self.line_buf).rpartition(b"\n")
        self.line_buf = bytearray(rest)
        kept = [ln for ln in head.split(b"\n") if shell.PREFIX.encode() not in ln]
        if kept:
            self.obs.feed(b"\n".join(kept) + b"\n", t)

    def _fan_out(self, data: bytes) -> None:
        self.tail += data
        if len(self.tail) > TAIL:
            del self.tail[:-TAIL]
        if self.exec_buf is not None:
            self.exec_buf += data
            self.exec_event.set()
        for w in list(self.attachers):
            if w.is_closing() or w.transport.get_write_buffer_size() > MAX_ATTACHER_BUFFER:
                self.attachers.discard(w)
                w.close()
                continue
            w.write(data)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(self, data: bytes, delay: float = 0.0) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if self.writer is None:
            return
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.write(data)
            await self.writer.drain()

    # ------------------------------------------------------------------ transitions

    async def _become_ready(self) -> None:
        """Ready: record the pass verdict, then make sure the shell answers a marker before saying so."""
        verdict = self._verdict("pass")
        if self.wait_for_shell:
            async with self.exec_lock:
                self.synced = await self._sync()
        if self.state == "booting":  # not crashed or stopped while we synced
            self._record_verdict(verdict)
            self.publish("ready")

    async def _crashed(self) -> None:
        """A fatal signature (and its dump) seen. During boot the boot failed; after ready the VM crashed."""
        self.obs.finish(self.now())
        fatal = self.obs.fatal
        if self.state == "booting":
            await self._boot_failed_stop(self._verdict("crash"))
            return
        self.crash = {
            "title": fatal.title if fatal else "crash",
            "line": fatal.line if fatal else None,
            "t": fatal.t if fatal else None,
        }
        self._record_verdict(self._verdict("crash"))
        self.exec_event.set()
        self.publish("crashed")

    async def _boot_failed_stop(self, v: Verdict) -> None:
        """The boot ended in crash/hang/timeout: registers (as `bootlab boot`), then QEMU goes, log kept."""
        if v.outcome in ("crash", "hang") and self.proc is not None and self.proc.returncode is None:
            from bootlab.lab.registers import capture

            v.registers = await capture(self.runtime.qmp, symbols=self.profile.symbols)
        self._boot_failed(v)
        await self._kill_qemu(quit_first=True)

    def _boot_failed(self, v: Verdict) -> None:
        self._record_verdict(v)
        self.note = f"boot failed: {v.outcome}" + (f": {v.title}" if v.title else "")
        self.publish("stopped")

    def _qemu_exit_verdict(self) -> Verdict:
        code = self.proc.returncode if self.proc else None
        stderr_path = self.vm.path / "qemu.stderr"
        stderr = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
        return qemu_exit_verdict(self._base(), self.obs, code, self.now(), stderr=stderr)

    async def _qemu_gone(self, fatal_at: float | None) -> None:
        """QEMU exited (guest powered off, `vm stop`, or an error)."""
        self.obs.finish(self.now())
        if self.stopping:
            return
        if self.state == "booting":
            self._boot_failed(self._verdict("crash") if self.obs.fatal_seen else self._qemu_exit_verdict())
            return
        code = self.proc.returncode if self.proc else None
        self.note = f"QEMU exited with status {code} (the guest powered off or reset)"
        self.exec_event.set()
        self.publish("stopped")

    async def _kill_qemu(self, *, quit_first: bool) -> None:
        from bootlab.lab.registers import quit_vm
        from bootlab.qemu.process import kill_group

        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if quit_first:
            await quit_vm(self.runtime.qmp, timeout=1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 2.0)
        if proc.returncode is None:
            kill_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5.0)

    async def _shutdown(self) -> int:
        if self.shut:
            return 0
        self.shut = True
        await self._kill_qemu(quit_first=False)
        for w in list(self.attachers):
            w.close()
        if self.state not in ("stopped",):
            self.publish("stopped")
        self.done.set()
        if self.server is not None:
            self.server.close()
        with contextlib.suppress(FileNotFoundError):
            self.vm.supervisor_file.unlink()
        if self.runtime is not None:
            self.runtime.cleanup()
        return 0

    # ------------------------------------------------------------------ exec

    async def _wait_marker(self, marker: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        assert self.exec_buf is not None
        while not shell.has_marker(self.exec_buf, marker):
            left = deadline - time.monotonic()
            if left <= 0 or self.state not in ("booting", "ready"):
                return False
            self.exec_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exec_event.wait(), left)
        return True

    async def _sync(self, attempts: int = 3, interrupt: bool = False) -> bool:
        """Type a fresh marker and wait for the shell to print it: the shell is at its prompt and ours.

        With ``interrupt`` (a timed-out command is still running) every attempt starts with Ctrl-C; otherwise
        only retries do (something unexpected holds the shell). The random marker makes late output of the
        interrupted command harmless."""
        for i in range(attempts):
            line, marker = shell.sync_line(shell.new_id())
            self.exec_buf = bytearray()
            if interrupt or i > 0:
                await self._send(b"\x03")
                await asyncio.sleep(0.2)
            await self._send(line.encode())
            ok = await self._wait_marker(marker, SYNC_TIMEOUT / attempts)
            self.exec_buf = None
            if ok:
                return True
        return False

    async def do_exec(
        self, argv: list[str], timeout: float | None, abandoned: asyncio.Event | None = None
    ) -> dict[str, Any]:
        """Run one framed command. ``abandoned`` is set when the client went away (Ctrl-C on `vm exec`): the
        command is interrupted as on a timeout, so a forgotten `sleep 1000` cannot hold the exec lock."""
        try:
            shell.wrap(argv, gzip=True)  # the longer form: refuse early, before queueing
        except ValueError as exc:
            return {"error": str(exc), "usage": True}
        async with self.exec_lock:
            if self.state != "ready":
                return self._not_ready()
            if not self.synced:
                self.synced = await self._sync()
                if not self.synced:
                    return {"error": f"vm {self.vm.name}: the guest's shell does not answer on the console"}
            if self.gzip is None:
                probe = await self._exec_locked(shell.wrap(shell.GZIP_PROBE), 10.0, None)
                out = base64.b64decode(probe.get("stdout_b64", ""))
                try:
                    self.gzip = shell.gzip_works(out, int(probe.get("exit_code", 1)))
                except Exception:
                    self.gzip = False
            return await self._exec_locked(shell.wrap(argv, gzip=self.gzip), timeout, abandoned)

    async def _exec_locked(
        self, framed: shell.Framed, timeout: float | None, abandoned: asyncio.Event | None
    ) -> dict[str, Any]:
        """Type one framed command and collect its answer (the caller holds the exec lock)."""
        if self.state != "ready":
            return self._not_ready()
        start = time.monotonic()
        collector = shell.Collector(framed)
        self.exec_buf = bytearray()
        try:
            await self._send(framed.line.encode())
            deadline = None if timeout is None else start + timeout
            while True:
                data = bytes(self.exec_buf)
                self.exec_buf.clear()
                try:
                    result = collector.feed(data)
                except ValueError as exc:
                    self.synced = False
                    return {"error": f"vm {self.vm.name}: {exc}"}
                if result is not None:
                    return {
                        "stdout_b64": base64.b64encode(result.output).decode(),
                        "exit_code": result.exit_code,
                        "duration_s": round(time.monotonic() - start, 3),
                    }
                if self.state != "ready":
                    return self._not_ready()
                left = None if deadline is None else deadline - time.monotonic()
                gone = abandoned is not None and abandoned.is_set()
                if gone or (left is not None and left <= 0):
                    partial = collector.partial()
                    self.exec_buf = None
                    self.synced = await self._sync(attempts=4, interrupt=True)
                    return {
                        "stdout_b64": base64.b64encode(partial).decode(),
                        "exit_code": 124,
                        "duration_s": round(time.monotonic() - start, 3),
                        "timed_out": True,
                    }
                if not self.exec_buf:
                    self.exec_event.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.exec_event.wait(), 0.25 if left is None else min(left, 0.25))
        finally:
            self.exec_buf = None

    def _not_ready(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": f"vm {self.vm.name} is {self.state}", "state": self.state}
        if self.state == "crashed" and self.crash:
            out["error"] = f"vm {self.vm.name} crashed: {self.crash['title']}"
            out["verdict"] = self.verdict.model_dump(mode="json") if self.verdict else None
        return out

    # ------------------------------------------------------------------ stop

    async def do_stop(self, grace: float) -> dict[str, Any]:
        """Graceful first (ACPI/PSCI power button over QMP), then `quit`, then the process group."""
        from qemu.qmp import QMPClient

        self.stopping = True
        self.publish("stopping")
        proc = self.proc
        how = "already stopped"
        if proc is not None and proc.returncode is None:
            how = "killed"
            client = QMPClient("bootlab-vm-stop")
            try:
                await asyncio.wait_for(client.connect(str(self.runtime.qmp)), 2.0)
                if grace > 0:
                    await asyncio.wait_for(client.execute("system_powerdown"), 2.0)
                    try:
                        await asyncio.wait_for(proc.wait(), grace)
                        how = "powered off"
                    except TimeoutError:
                        pass
                if proc.returncode is None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(client.execute("quit"), 2.0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), 3.0)
                        how = "quit" if how == "killed" else how
            except Exception:  # QMP unreachable: the process group is still ours to kill
                pass
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(), 1.0)
            await self._kill_qemu(quit_first=False)
        self.note = f"stopped ({how})"
        self.publish("stopped")
        return {"ok": True, "how": how}

    # ------------------------------------------------------------------ control socket

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                req = json.loads(line)
                op = req["op"]
            except (ValueError, KeyError, TypeError):
                await self._reply(writer, {"error": "bad request"})
                return
            if op == "status":
                await self._reply(writer, self.status())
            elif op == "wait":
                await self._wait_settled(float(req.get("timeout", 600)), writer if req.get("events") else None)
                await self._reply(writer, self.status())
            elif op == "exec":
                abandoned = asyncio.Event()

                async def watch() -> None:  # the client sends nothing more: EOF means it is gone
                    with contextlib.suppress(Exception):
                        await reader.read()
                    abandoned.set()

                watcher = asyncio.create_task(watch())
                try:
                    res = await self.do_exec(list(req["argv"]), req.get("timeout"), abandoned)
                finally:
                    watcher.cancel()
                if not abandoned.is_set():
                    await self._reply(writer, res)
            elif op == "attach":
                await self._attach(reader, writer)
            elif op == "stop":
                res = await self.do_stop(float(req.get("grace", 10)))
                await self._reply(writer, res)
                self.stop_replied.set()
            else:
                await self._reply(writer, {"error": f"unknown op {op!r}"})
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
                    await self._reply(events, {"event": "stage", "name": st.name, "t": st.t})
                sent = len(self.obs.stages)
            if self.state != "booting" or time.monotonic() >= deadline:
                return
            ev = self.changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), deadline - time.monotonic())

    async def _reply(self, writer: asyncio.StreamWriter, data: dict[str, Any]) -> None:
        writer.write(json.dumps(data).encode() + b"\n")
        await writer.drain()

    async def _attach(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Raw console both ways. Input goes to the guest as typed; detaching is the client's business."""
        if self.state == "stopped" or self.writer is None:
            await self._reply(writer, {"error": f"vm {self.vm.name} is {self.state}"})
            return
        await self._reply(writer, {"ok": True, "state": self.state})
        tail = bytes(self.tail)
        cut = tail.find(b"\n")
        writer.write(tail[cut + 1 :] if 0 <= cut < len(tail) - 1 else tail)
        self.attachers.add(writer)
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                await self._send(data)
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
        task.cancel()  # run()'s finally kills QEMU and removes the record

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
