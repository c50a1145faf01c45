"""Where named VMs live on disk, how their names are checked, and whether their supervisor is still alive.

One directory per VM under the data dir (``$BOOTLAB_VM_HOME`` or platformdirs' user data dir + ``/vms``), mode
0700: its ``vm.json`` (what was launched), ``profile.json`` (the resolved profile the supervisor boots, overlay
paths filled in), ``console.log`` (every byte the guest printed, across starts), ``verdicts.json``, the disk
overlays, and ``supervisor.json`` (pid + start time of the running supervisor). Sockets live in a separate,
short runtime directory (a unix socket path is limited to ~104 bytes; macOS's data dir alone is ~60), also
0700, named in ``supervisor.json``.

Liveness is checked by pid *and* process start time (``/proc/<pid>/stat`` field 22), so a recycled pid is never
mistaken for a supervisor and nothing is ever looked up by process name. Without /proc (macOS) the start time
cannot be read: a live pid then counts as alive, but is never killed on that evidence.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootlab.errors import UsageError

if TYPE_CHECKING:
    from bootlab.qemu.runtime import RuntimeDir

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,30}[a-z0-9]|[a-z0-9]")
MAX_SOCKET_PATH = 100
_HAVE_PROC = Path("/proc/self/stat").exists()


def validate_name(name: str) -> str:
    """VM names become directory names and appear in socket paths: keep them short and plain."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"vm name {name!r} is not valid: use 1-32 lowercase letters, digits and '-' "
            f"(not at the start or end), e.g. redox-dev"
        )
    return name


def vm_home() -> Path:
    """The directory holding one subdirectory per VM (``$BOOTLAB_VM_HOME`` wins, for tests and sandboxes)."""
    env = os.environ.get("BOOTLAB_VM_HOME")
    if env:
        return Path(env)
    from bootlab.paths import data_dir

    return data_dir() / "vms"


def runtime_home() -> Path:
    """Where the per-VM socket directories go: next to the VM home under the env override, else the user's
    runtime dir (tmpfs on Linux, gone after reboot, as sockets should be)."""
    env = os.environ.get("BOOTLAB_VM_HOME")
    if env:
        return Path(env) / ".run"
    from bootlab.paths import runtime_dir

    return runtime_dir() / "vms"


def make_private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def make_run_dir(name: str) -> RuntimeDir:
    """A fresh 0700 socket directory for one supervisor run, short enough for unix socket paths: under
    :func:`runtime_home` when that fits, else under /tmp. The supervisor's QEMU sockets and ``ctl.sock`` go here."""
    from bootlab.qemu.runtime import RuntimeDir

    candidates: list[Path] = []
    with contextlib.suppress(OSError):
        candidates.append(make_private_dir(runtime_home()))
    candidates.append(Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir()))
    for base in candidates:
        if len(str(base)) + len(name) + 20 + len("serial.sock") <= MAX_SOCKET_PATH:
            return RuntimeDir(prefix=f"{name}-", base=str(base), keep=False)
    raise UsageError(f"no directory short enough for the sockets of vm {name!r}; set BOOTLAB_VM_HOME to a short path")


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone or a zombie.

    Without /proc (macOS) the start time is unknown: 0 stands for "alive" (signal 0 reaches it), which makes
    the pid-reuse check weaker there; that is the documented gap.
    """
    if not _HAVE_PROC:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0
        return 0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def same_process(pid: int | None, start: int | None) -> bool:
    """``pid`` is still the process we started (not dead, not a zombie, not a recycled pid).

    Without /proc (macOS) only "some process has this pid" can be checked, so this may say True for a recycled
    pid: good enough to decide that a VM looks alive, never enough to signal it (see :func:`verified_process`).
    """
    if not pid:
        return False
    now = process_start_time(pid)
    if now is None:
        return False
    return start is None or now == start or not _HAVE_PROC


def verified_process(pid: int | None, start: int | None) -> bool:
    """``pid`` is alive *and* its start time was read and equals ``start``: the only proof strong enough to send
    it a signal. False whenever the start time cannot be verified (no recorded start, or no /proc on macOS)."""
    if not pid or start is None or not _HAVE_PROC:
        return False
    return process_start_time(pid) == start


@dataclass
class VmDir:
    """The on-disk state of one named VM."""

    name: str
    path: Path

    @classmethod
    def of(cls, name: str) -> VmDir:
        return cls(validate_name(name), vm_home() / name)

    @property
    def exists(self) -> bool:
        return (self.path / "vm.json").is_file()

    @property
    def meta_file(self) -> Path:
        return self.path / "vm.json"

    @property
    def profile_file(self) -> Path:
        return self.path / "profile.json"

    @property
    def log(self) -> Path:
        return self.path / "console.log"

    @property
    def verdicts_file(self) -> Path:
        return self.path / "verdicts.json"

    @property
    def supervisor_file(self) -> Path:
        return self.path / "supervisor.json"

    @property
    def supervisor_out(self) -> Path:
        return self.path / "supervisor.out"

    def read(self, which: str) -> Any:
        path = self.path / which
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write(self, which: str, data: Any) -> None:
        """Atomic write (rename), so a reader never sees half a file."""
        from bootlab.paths import atomic_write

        atomic_write(self.path / which, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def meta(self) -> dict[str, Any]:
        data = self.read("vm.json")
        if not isinstance(data, dict):
            raise UsageError(f"vm {self.name!r} not found (see `bootlab vm list`); create it with `bootlab vm launch`")
        return data

    def supervisor(self) -> dict[str, Any] | None:
        """The running supervisor's record, or None. A record whose process is gone is left for cleanup."""
        data = self.read("supervisor.json")
        return data if isinstance(data, dict) else None

    def supervisor_alive(self) -> bool:
        sup = self.supervisor()
        return sup is not None and same_process(sup.get("pid"), sup.get("start"))

    def control_socket(self) -> Path | None:
        sup = self.supervisor()
        if sup is None or not sup.get("run_dir"):
            return None
        return Path(sup["run_dir"]) / "ctl.sock"

    def cleanup_dead(self) -> dict[str, Any] | None:
        """A supervisor that died (SIGKILL, OOM, reboot): make sure its QEMU is gone, drop its sockets and record.

        Returns the dead record (so callers can say what happened) or None when there was nothing to clean.
        QEMU normally died with it (parent-death signal); if a QEMU with the recorded pid *and* start time is
        still there, it is ours and is killed. When the start time cannot be verified (macOS has no /proc, or
        the record has no start time) the pid is never signalled, even if a process holds it: it may be an
        unrelated process that reused QEMU's pid. The VM is still reported as died.
        """
        sup = self.supervisor()
        if sup is None or same_process(sup.get("pid"), sup.get("start")):
            return None
        qpid, qstart = sup.get("qemu_pid"), sup.get("qemu_start")
        if qpid and verified_process(qpid, qstart):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(qpid, 9)
        run_dir = sup.get("run_dir")
        if run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
        state = self.read("state.json") or {}
        from bootlab.vm.state import LIVE

        if isinstance(state, dict) and state.get("state") in LIVE:
            state.update(state="stopped", note="supervisor died")
            self.write("state.json", state)
        with contextlib.suppress(FileNotFoundError):
            self.supervisor_file.unlink()
        return sup


def all_vms() -> list[VmDir]:
    home = vm_home()
    if not home.is_dir():
        return []
    return [VmDir(p.name, p) for p in sorted(home.iterdir()) if (p / "vm.json").is_file()]
