"""One running QEMU as an object, in the style of QEMU's own ``python/qemu/machine``.

:class:`QemuMachine` is an async context manager that owns everything of one QEMU: its private runtime directory
(sockets, 0700), the process (started by :class:`~bootlab.qemu.process.QemuProcess`: own session, parent-death
signal, umask 177), the serial console, one QMP client (QEMU's ``qemu.qmp``, connected on first use: most boots
pass and never need it), QEMU's stderr and why it exited. Leaving the context always leaves no QEMU behind,
whatever happened inside (an exception, a cancelled task, Ctrl-C).

This is the only module that speaks QMP. Failures to start raise :class:`LaunchFailure` (exit code, argv and
QEMU's own words); everything bootlab raises sits under :class:`~bootlab.errors.BootlabError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bootlab.errors import InfraError
from bootlab.qemu.runtime import RuntimeDir

if TYPE_CHECKING:
    from qemu.qmp import QMPClient

    from bootlab.console.unix import UnixConsole
    from bootlab.qemu.process import QemuProcess
    from bootlab.verdict import VcpuRegisters

CONNECT_TIMEOUT = 15.0
QMP_TIMEOUT = 3.0
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
# options by which a command line chooses what a guest reset or power-off does; bootlab then leaves it alone
_ACTION_OPTIONS = frozenset({"no-reboot", "no-shutdown", "action"})

#: ``await keep(reason)``: whether a guest that asked to stop (``guest-reset``, ``guest-shutdown``,
#: ``guest-panic``) stays paused as it is; otherwise QEMU does what it would have done on its own.
KeepStopped = Callable[[str], Awaitable[bool]]


def chooses_actions(argv: list[str]) -> bool:
    """The command line says itself what a guest reset or power-off does (``-no-reboot``, ``-no-shutdown``,
    ``-action``): bootlab then never changes it."""
    return any(a.startswith("-") and a.lstrip("-") in _ACTION_OPTIONS for a in argv[1:])


class LaunchFailure(InfraError):
    """QEMU did not get as far as serving its console: the binary could not be run, or QEMU exited first
    (it refused its arguments, a file, the accelerator). ``stderr`` holds QEMU's own words."""

    def __init__(self, message: str, *, argv: list[str], returncode: int | None, stderr: str) -> None:
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


def exit_reason(stderr: str) -> tuple[str | None, str | None]:
    """The first line of QEMU's stderr that the qemu pack recognises, and its title.

    Titles must not change with the QEMU version: QEMU 10 quotes the value it refuses (``unsupported machine
    type: "virt-9"``) where 7.2 did not; the pack's regexes leave a trailing quoted value out of the reason, and
    any other quoted value becomes ``VALUE``, as numbers become ``NUM``."""
    from bootlab.packs.loader import load_packs
    from bootlab.verdict import normalise_title

    packs = load_packs(["qemu"])
    for raw in stderr.splitlines():
        line = raw.strip()
        for sig in packs.stderr_signatures:
            m = sig.regex.search(line)
            if m:
                caps = {k: _QUOTED.sub("VALUE", v) for k, v in m.groupdict().items() if v is not None}
                try:
                    title = sig.spec.title.format_map(caps)
                except KeyError:
                    title = line
                return line, normalise_title(title)
    return None, None


def _event_data(event: object) -> dict[str, Any]:
    """A QMP event's ``data`` member ({} when it has none)."""
    data = event.get("data") if isinstance(event, Mapping) else None
    return data if isinstance(data, dict) else {}


class QemuMachine:
    """One QEMU. ``async with QemuMachine() as m: m.launch(argv); console = await m.console()``.

    The runtime directory is created with the machine (argv needs its socket paths: build it with
    ``build_invocation(profile, host, m.runtime)``), or adopted when given (the VM supervisor keeps its control
    socket in the same directory); it is removed on exit unless ``keep_runtime``.
    """

    def __init__(
        self,
        runtime: RuntimeDir | None = None,
        *,
        stderr_path: Path | None = None,
        keep_runtime: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.runtime = runtime if runtime is not None else RuntimeDir()
        self.stderr_path = stderr_path or self.runtime.stderr
        self.keep_runtime = keep_runtime
        self.connect_timeout = connect_timeout
        self.argv: list[str] = []
        self.t0 = 0.0  # time.monotonic() at launch: console times count from here
        self._process: QemuProcess | None = None
        self._console: UnixConsole | None = None
        self._qmp: QMPClient | None = None
        self._qmp_lock = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        self.pauses_on_guest_stop = False  # a guest's reset or power-off request pauses QEMU (see below)
        self.gdb_socket: Path | None = None  # bootlab's own gdb stub, while it runs (see start_gdb)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> QemuMachine:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def launch(self, argv: list[str]) -> None:
        """Start QEMU with ``argv`` (argv[0] may be a bare binary name: it is looked up on PATH)."""
        from bootlab.qemu.invocation import binary_path
        from bootlab.qemu.process import QemuProcess

        if self._process is not None:
            raise RuntimeError("QemuMachine.launch called twice")
        self.argv = list(argv)
        self.t0 = time.monotonic()
        process = QemuProcess([binary_path(argv), *argv[1:]], stderr_path=self.stderr_path)
        try:
            process.start()
        except OSError as exc:
            raise LaunchFailure(
                f"cannot run {argv[0]}: {exc.strerror or exc}", argv=self.argv, returncode=None, stderr=""
            ) from None
        self._process = process

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """QEMU's exit status once it has exited (negative: killed by that signal), else None."""
        return self._process.returncode if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def wait(self, timeout: float | None = None) -> int | None:
        """Wait for QEMU to exit (polled: portable, and exits are rare events); its status, or None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.01)
        return self.returncode

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def exit_reason(self) -> tuple[str | None, str | None]:
        """(QEMU's line, its title) when the qemu pack recognises QEMU's stderr."""
        return exit_reason(self.stderr_text())

    async def console(self) -> UnixConsole:
        """Connect to the serial console QEMU serves (it waits for us before running the guest).

        Raises :class:`LaunchFailure` when QEMU exits before the console is up, and
        :class:`~bootlab.errors.InfraError` when the socket never becomes connectable."""
        from bootlab.console.unix import UnixConsole

        if self._console is not None:
            return self._console
        if self._process is None:
            raise RuntimeError("QemuMachine.console before launch")
        path = self.runtime.serial
        deadline = time.monotonic() + self.connect_timeout
        last_error = "the socket never appeared"
        while time.monotonic() < deadline:
            if not self.running:
                await self.wait(0.5)  # let stderr land
                raise self._launch_failure()
            if path.exists():
                try:
                    reader, writer = await asyncio.open_unix_connection(str(path))
                except OSError as exc:
                    last_error = exc.strerror or str(exc)
                else:
                    self._console = UnixConsole(reader, writer, self.t0)
                    return self._console
            await asyncio.sleep(0.005)
        raise InfraError(f"cannot connect to QEMU's serial socket {path}: {last_error}")

    def _launch_failure(self) -> LaunchFailure:
        stderr = self.stderr_text()
        _line, title = exit_reason(stderr)
        code = self.returncode
        return LaunchFailure(
            title or f"QEMU exited with status {code} before its console was up",
            argv=self.argv,
            returncode=code,
            stderr=stderr,
        )

    # ------------------------------------------------------------------ QMP

    async def qmp(self) -> QMPClient:
        """The machine's one QMP client, connected on first use."""
        from qemu.qmp import QMPClient

        async with self._qmp_lock:
            if self._qmp is None:
                if not self.running:
                    raise InfraError("QEMU is not running: no QMP")
                client = QMPClient("bootlab")
                try:
                    await asyncio.wait_for(client.connect(str(self.runtime.qmp)), QMP_TIMEOUT)
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        await client.disconnect()
                    raise InfraError(f"cannot reach QEMU's QMP socket: {exc}") from None
                self._qmp = client
            return self._qmp

    async def execute(self, command: str, arguments: dict[str, Any] | None = None, timeout: float = QMP_TIMEOUT) -> Any:
        """One QMP command; raises InfraError when QMP cannot be reached or the command fails."""
        client = await self.qmp()
        try:
            return await asyncio.wait_for(client.execute(command, arguments), timeout)
        except InfraError:
            raise
        except Exception as exc:
            raise InfraError(f"QMP {command} failed: {exc}") from None

    async def hmp(self, command_line: str, cpu_index: int | None = None) -> str:
        """A human monitor command through QMP (``info registers``, ``gdbserver ...``)."""
        args: dict[str, Any] = {"command-line": command_line}
        if cpu_index is not None:
            args["cpu-index"] = cpu_index
        return str(await self.execute("human-monitor-command", args))

    async def pause(self) -> None:
        await self.execute("stop")

    async def guest_running(self) -> bool:
        """Whether the guest's vCPUs run (not paused, not stopped at a reset or power-off request)."""
        status = await self.execute("query-status")
        return isinstance(status, dict) and status.get("status") == "running"

    async def cont(self) -> None:
        """Resume a paused guest; one stopped at its own reset request is reset first, as it asked."""
        status = await self.execute("query-status")
        if isinstance(status, dict) and status.get("status") == "shutdown":
            await self._reset_as_asked()
        else:
            await self.execute("cont")

    # ------------------------------------------------------------------ guest resets

    def pause_on_guest_stop(self, keep: KeepStopped) -> None:
        """From now on (in the background), a guest's reset or power-off request pauses QEMU instead (QMP
        ``set-action reboot=shutdown,shutdown=pause``, QEMU >= 6.0), and ``keep`` decides each one: kept, the
        guest stays paused exactly as it was (a kernel that panicked with ``panic=-1`` keeps its crashed
        registers for the verdict and the debugger); not kept, QEMU does what it would have done on its own
        (reset and run on, or exit with 0), so a guest that reboots on purpose still reboots.

        Nothing changes when the command line chooses these actions itself (``-no-reboot``, ``-no-shutdown``,
        ``-action``) or QEMU is older than 6.0; :attr:`pauses_on_guest_stop` says whether it took. Call it once
        the console is connected (QEMU serves QMP only then): the guest has run for milliseconds at most."""
        if self._watch is None and not chooses_actions(self.argv):
            self._watch = asyncio.create_task(self._watch_guest_stops(keep))

    async def _watch_guest_stops(self, keep: KeepStopped) -> None:
        try:
            client = await self.qmp()
            with client.listener(("SHUTDOWN",)) as stops:
                await self.execute("set-action", {"reboot": "shutdown", "shutdown": "pause"})
                self.pauses_on_guest_stop = True
                async for event in stops:
                    data = _event_data(event)
                    if not data.get("guest"):
                        continue  # a host-side quit or reset: not the guest's request
                    reason = str(data.get("reason", ""))
                    if await keep(reason):
                        continue
                    if reason == "guest-reset":
                        await self._reset_as_asked()
                    else:  # guest-shutdown, guest-panic: QEMU would have exited with 0
                        await self.quit(timeout=QMP_TIMEOUT)
                        return
        except InfraError:
            pass  # QEMU older than 6.0 (no set-action), or gone: nothing to decide

    async def _reset_as_asked(self) -> None:
        """What QEMU does on a guest reset by default: reset the machine and run on. The reboot action is
        ``reset`` for the moment (under ``shutdown`` QEMU would turn this reset into one more pause)."""
        client = await self.qmp()
        await self.execute("set-action", {"reboot": "reset"})
        try:
            with client.listener(("RESET",)) as resets:
                await self.execute("system_reset")
                await asyncio.wait_for(resets.get(), QMP_TIMEOUT)  # cont before the reset would be refused
            await self.execute("cont")
        except TimeoutError:
            raise InfraError("QEMU did not reset the guest") from None
        finally:
            await self.execute("set-action", {"reboot": "shutdown"})

    async def powerdown(self) -> None:
        """The ACPI/PSCI power button: the guest may shut down cleanly."""
        await self.execute("system_powerdown")

    async def quit(self, timeout: float = 2.0) -> bool:
        """Ask QEMU to exit cleanly (flushes disks); True when it did within ``timeout``."""
        if not self.running:
            return True
        with contextlib.suppress(InfraError):
            await self.execute("quit", timeout=timeout)
        return await self.wait(timeout) is not None

    async def registers(self, symbols: str | None = None, *, system: bool = True) -> list[VcpuRegisters]:
        """Pause the VM and read every vCPU's ``info registers``, then (``system``) the fault registers
        ``info registers`` lacks (aarch64 ELR/ESR/FAR/SPSR_EL1, x86 CR2/CR3) through QEMU's gdb stub, started
        and stopped again over QMP. [] when QMP is unavailable: the registers are a bonus, a verdict stands
        without them."""
        from bootlab.qemu.registers import parse_registers, symbolise

        regs: list[VcpuRegisters] = []
        try:
            await self.pause()
            cpus = await self.execute("query-cpus-fast")
            indexes = sorted(int(c["cpu-index"]) for c in cpus) if isinstance(cpus, list) else [0]
            for idx in indexes:
                regs.append(parse_registers(idx, await self.hmp("info registers", cpu_index=idx)))
            if system:
                from bootlab.qemu.sysregs import fill_system_registers

                await fill_system_registers(self.execute, regs, directory=self.runtime.path, stub=self.gdb_socket)
        except InfraError:
            pass
        return [symbolise(r, symbols) for r in regs]

    async def start_gdb(self, socket: Path) -> Path:
        """Start QEMU's gdb stub on the unix socket ``socket`` (its directory 0700 and ours) and keep it, for a
        debugger to attach (a held crash, ``vm launch --gdb``); crash registers are then read through it. Raises
        :class:`~bootlab.qemu.gdbstub.GdbStubError` with QEMU's own words when it refuses (e.g. an accelerator
        without guest-debug support)."""
        from bootlab.qemu.gdbstub import start_gdbserver

        self.gdb_socket = await start_gdbserver(self.execute, socket)
        return self.gdb_socket

    # ------------------------------------------------------------------ stopping

    def kill(self) -> None:
        """SIGKILL QEMU's whole process group (it leads its own session) and reap it."""
        if self._process is not None:
            self._process.kill()

    async def stop(self, *, graceful: bool) -> None:
        """End QEMU: a clean QMP ``quit`` first when ``graceful`` (a guest writing a persistent disk), then the
        process group is killed. Snapshot boots are simply killed: they lose nothing, and end sooner."""
        if graceful and self.running:
            await self.quit(timeout=1.0)
        self.kill()

    async def close(self) -> None:
        """Leave nothing behind: QMP closed, QEMU killed, console closed, runtime directory removed."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(BaseException):
                await self._watch
            self._watch = None
        try:
            if self._qmp is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._qmp.disconnect(), 1.0)
                self._qmp = None
        finally:
            self.kill()
            if self._console is not None:
                with contextlib.suppress(Exception):
                    await self._console.close()
            if not self.keep_runtime:
                self.runtime.cleanup()
