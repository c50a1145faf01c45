"""Start QEMU so that it can never outlive bootlab.

QEMU runs in its own session (its own process group, no controlling terminal) and, on Linux, with a
parent-death signal: if bootlab dies, even by SIGKILL, the kernel signals QEMU. Stopping kills the whole process
group. Nothing is ever found or killed by name. macOS has no parent-death signal: there QEMU still dies on
every exit bootlab itself handles (errors, Ctrl-C, SIGTERM), but a SIGKILLed bootlab leaves it running. That
gap is known and documented (README, "Running"); it is untested on real hardware.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from bootlab.errors import InfraError

PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Any:
    """libc's prctl, looked up once in the parent: the forked child must not dlopen (another thread of a threaded
    parent, such as a Dask worker, may hold the loader's lock at fork time, and the child would wait for ever)."""
    return ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def child_setup(parent_pid: int, death_signal: int = signal.SIGKILL, umask: int | None = 0o177) -> Any:
    """A ``preexec_fn`` for subprocess/asyncio: parent-death signal, private umask, bail out if the parent is gone.

    The umask default suits QEMU (it creates sockets and files, never directories: all 0600); a build, which
    creates directories, passes ``umask=None`` to keep the user's. Everything the child runs is prepared here,
    in the parent: between fork and exec the child only makes system calls."""
    prctl = _prctl()

    def setup() -> None:
        if umask is not None:
            os.umask(umask)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died between fork and prctl
            os._exit(1)

    return setup


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal QEMU's whole process group (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class QemuProcess:
    """A supervised QEMU child. Use as a context manager: leaving it always kills the process group."""

    def __init__(
        self,
        argv: list[str],
        *,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
        stderr_path: Path | None = None,
        stderr: int | IO[Any] | None = None,
        death_signal: int = signal.SIGKILL,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = argv
        self.stdin = stdin
        self.stdout = stdout
        self.stderr_path = stderr_path
        self.stderr = stderr  # where stderr goes without a stderr_path (None: bootlab's own)
        self.env = env
        self.death_signal = death_signal
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, "QemuProcess not started"
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def start(self) -> QemuProcess:
        stderr: Any = self.stderr
        handle = None
        if self.stderr_path is not None:
            handle = self.stderr_path.open("wb")
            stderr = handle
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=self.stdin,
                stdout=self.stdout,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=child_setup(os.getpid(), self.death_signal),
                env=self.env,
            )
        except FileNotFoundError:
            raise InfraError(f"{self.argv[0]} not found on PATH; install QEMU (see `bootlab doctor`)") from None
        finally:
            if handle is not None:
                handle.close()
        return self

    def wait(self, timeout: float | None = None) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)

    def terminate(self, grace: float = 3.0) -> None:
        """SIGTERM the group (QEMU exits cleanly and restores the terminal), SIGKILL after ``grace`` seconds."""
        if self.popen is None or self.popen.poll() is not None:
            self.kill()
            return
        kill_group(self.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                break
            time.sleep(0.02)
        self.kill()

    def kill(self) -> None:
        if self.popen is None:
            return
        kill_group(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def __enter__(self) -> QemuProcess:
        return self.start() if self.popen is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


def run_once(argv: list[str], *, stdin: bytes = b"", timeout: float = 30.0) -> tuple[int | None, str]:
    """Run a short-lived QEMU (a probe: ``-version``, ``-accel help``, the vCPU smoke test) to its end, under the
    same rules as a boot's QEMU (own session, parent-death signal, the group killed on the way out), in the C
    locale. (exit status, stdout and stderr merged); the status is None when it did not end within ``timeout``."""
    env = {**os.environ, "LC_ALL": "C"}
    with QemuProcess(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as proc:
        assert proc.popen is not None
        try:
            out, _ = proc.popen.communicate(stdin, timeout)
        except subprocess.TimeoutExpired:
            return None, ""
        return proc.popen.returncode, out.decode(errors="replace")


def exit_status(returncode: int) -> int:
    """A shell-style exit status: 128+N when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode
