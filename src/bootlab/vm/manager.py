"""Named VMs as a library: launch, start, stop, delete, list, exec, logs. The CLI is a thin layer over this.

Every call first cleans up after supervisors that died (their QEMU died with them; their sockets and records
are stale), so ``bootlab vm list`` right after a SIGKILL says what happened and the next command starts clean.
The supervisor is reached over its control socket with one JSON line per request (see
:mod:`bootlab.vm.supervisor`); a plain blocking socket is enough on this side.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootlab.errors import EXIT_GUEST_FAILED, BootlabError, InfraError, UsageError
from bootlab.vm import protocol
from bootlab.vm.registry import VmDir, all_vms, make_private_dir, same_process, validate_name

if TYPE_CHECKING:
    from bootlab.console.shell import ExecOutcome
    from bootlab.profile.loader import Project
    from bootlab.profile.model import Forward, Profile, Share

START_TIMEOUT = 15.0


# ---------------------------------------------------------------------------------------------- options


def parse_mount(text: str) -> Share:
    """``HOST_DIR:TAG`` (the tag is what the guest mounts: ``hostshare`` for the user's Redox fork): a profile
    share, validated as one written in bootlab.toml is."""
    from pydantic import ValidationError

    from bootlab.profile.model import Share

    host, sep, tag = text.rpartition(":")
    if not sep or not host or not tag:
        raise UsageError(f"--mount {text!r}: expected HOST_DIR:TAG, e.g. --mount ./share:hostshare")
    path = Path(host).expanduser().resolve()
    if not path.is_dir():
        raise UsageError(f"--mount {text!r}: {path} is not a directory; create it or fix the path")
    try:
        return Share(path=str(path), tag=tag)
    except ValidationError as exc:
        raise UsageError(f"--mount {text!r}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def parse_forward(text: str) -> Forward:
    """``HOST_PORT:GUEST_PORT[/udp]`` (e.g. 2222:22 for ssh): a profile forward, as bootlab.toml writes one."""
    from pydantic import ValidationError

    from bootlab.profile.model import Forward

    try:
        return Forward.model_validate(text)
    except ValidationError:
        raise UsageError(
            f"--forward {text!r}: expected HOST_PORT:GUEST_PORT[/udp] with ports 1-65535, e.g. 2222:22"
        ) from None


def check_port_free(port: int, proto: str = "tcp") -> None:
    """Refuse a forward whose host port another program holds on 127.0.0.1. SO_REUSEADDR as QEMU's slirp binds
    it, so connections of a stopped VM still in TIME_WAIT do not block `vm start` of the same VM."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise UsageError(
                f"forward: host port {port}{'' if proto == 'tcp' else '/' + proto} is already in use on 127.0.0.1; "
                "pick another one"
            ) from None


@dataclass
class LaunchRequest:
    name: str
    profile: str
    config: Path | None = None
    sets: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    forwards: list[str] = field(default_factory=list)
    persistent: bool = False
    gdb: bool = False  # QEMU's gdb stub on a private socket for the VM's whole life (`vm gdb NAME`)


# ---------------------------------------------------------------------------------------------- control socket


def request(vm: VmDir, req: protocol._Message, timeout: float | None = 30.0) -> protocol.Reply:
    """One request/reply with the VM's supervisor, the reply typed (see :mod:`bootlab.vm.protocol`)."""
    sock = connect(vm, timeout)
    try:
        sock.sendall(req.encode())
        line = _readline(sock)
    finally:
        sock.close()
    if not line:
        raise InfraError(f"vm {vm.name}: the supervisor closed the connection (see {vm.supervisor_out})")
    reply = read_message(vm, line)
    if isinstance(reply, protocol.Event):
        raise InfraError(f"vm {vm.name}: the supervisor sent an event where a reply was due: {line[:80]!r}")
    return reply


def read_message(vm: VmDir, line: bytes) -> protocol.Event | protocol.Reply:
    """A supervisor's line, typed; one that bootlab does not understand is the infrastructure's fault."""
    try:
        return protocol.parse_message(line)
    except ValueError as exc:
        raise InfraError(f"vm {vm.name}: the supervisor said something unexpected: {exc}") from None


def connect(vm: VmDir, timeout: float | None = 30.0) -> socket.socket:
    path = vm.control_socket()
    if path is None or not vm.supervisor_alive():
        raise UsageError(f"vm {vm.name} is not running; start it with `bootlab vm start {vm.name}`")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise InfraError(f"vm {vm.name}: cannot reach its supervisor at {path}: {exc.strerror or exc}") from None
    return sock


def _readline(sock: socket.socket) -> bytes:
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


# ---------------------------------------------------------------------------------------------- state


def reap() -> list[str]:
    """Clean up after every supervisor that died; returns the names of the VMs concerned."""
    return [vm.name for vm in all_vms() if vm.cleanup_dead() is not None]


def get(name: str) -> VmDir:
    vm = VmDir.of(name)
    vm.meta()  # raises a one-line "not found"
    return vm


def info(vm: VmDir) -> dict[str, Any]:
    """What `vm list` shows: the supervisor's last published state, or `stopped`/`died` without one."""
    meta = vm.meta()
    state = vm.read("state.json") or {}
    died = vm.cleanup_dead()
    alive = vm.supervisor_alive()
    sup = vm.supervisor() or {}
    st = state.get("state", "stopped") if alive else "stopped"
    if died is not None or (not alive and state.get("note") == "supervisor died"):
        st = "died"  # cleaned up already (QEMU went with it); shown until the VM is started or deleted
    crash = state.get("crash") if st in ("crashed", "held") else None
    last = state.get("verdict") or {}
    return {
        "name": vm.name,
        "profile": meta.get("profile"),
        "state": st,
        "uptime_s": round(time.time() - state["started"], 1) if alive and state.get("started") else None,
        "accel": state.get("accel"),
        "forwards": [f if isinstance(f, str) else f"{f[0]}:{f[1]}" for f in meta.get("forwards", [])],
        "mounts": meta.get("mounts", []),
        "pid": sup.get("pid") if alive else None,
        "qemu_pid": sup.get("qemu_pid") if alive else None,
        "title": (crash or {}).get("title") or (last.get("title") if st == "stopped" else None),
        "last_outcome": last.get("outcome"),
        "note": state.get("note", ""),
        "log": str(vm.log),
        "gdb_socket": state.get("gdb_socket") if alive else None,
        "kind": meta.get("kind", "vm"),
    }


def list_vms() -> list[dict[str, Any]]:
    return [info(vm) for vm in all_vms()]


# ---------------------------------------------------------------------------------------------- launch / start


def _resolve(req: LaunchRequest, profile_name: str) -> tuple[Profile, Project]:
    """The profile (with mounts and forwards added) and its project, through the same lock check and lint as
    `bootlab boot` (lint errors refuse: a named VM has no --force)."""
    from bootlab.lab.preflight import preflight
    from bootlab.profile.loader import load_project
    from bootlab.profile.model import Profile

    mounts = [parse_mount(m) for m in req.mounts]
    forwards = [parse_forward(f) for f in req.forwards]
    project = load_project(req.config)
    pf = preflight(project, profile_name, sets=list(req.sets))
    pf.warn(sys.stderr)
    pf.refuse_on_errors()
    data = pf.profile.model_dump(mode="json")
    data["shares"] = [*data["shares"], *(m.model_dump() for m in mounts)]
    data["forwards"] = [*data["forwards"], *(f.model_dump() for f in forwards)]
    if req.persistent:
        data["persistent"] = True
    return Profile.model_validate(data), project


def _overlays(vm: VmDir, profile: Profile) -> Profile:
    """Per-VM qcow2 overlays over the profile's disks: the user's image is never written, and what the guest
    writes survives stop/start (unlike QEMU's snapshot=on). Persistent drives are used as they are."""
    from bootlab.profile.model import Profile

    data = profile.model_dump(mode="json")
    drives = []
    for i, d in enumerate(data["drives"]):
        if d.get("readonly") or d.get("persistent") or data.get("persistent"):
            drives.append(d)
            continue
        overlay = vm.path / f"disk{i}.qcow2"
        if not overlay.exists():
            cmd = [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                d["file"],
                "-F",
                d.get("format", "raw"),
                str(overlay),
            ]
            try:
                subprocess.run(cmd, check=True, capture_output=True, text=True)
            except FileNotFoundError:
                raise InfraError("qemu-img not found on PATH; install QEMU's tools (see `bootlab doctor`)") from None
            except subprocess.CalledProcessError as exc:
                raise InfraError(f"qemu-img create failed for {d['file']}: {exc.stderr.strip()}") from None
        drives.append({**d, "file": str(overlay), "format": "qcow2", "persistent": True})
    data["drives"] = drives
    return Profile.model_validate(data)


def launch(
    req: LaunchRequest,
    *,
    wait: bool = True,
    on_event: Callable[[str], None] | None = None,
    on_stage: Callable[[str, float | None], None] | None = None,
) -> dict[str, Any]:
    """Create the VM and boot it in the background. With ``wait``, returns when it is ready or its boot failed;
    a profile with ``fallback`` gets one retry under the fallback profile after a crash or hang."""
    reap()
    validate_name(req.name)
    vm = VmDir.of(req.name)
    if vm.exists:
        raise UsageError(
            f"vm {req.name} already exists; `bootlab vm start {req.name}` boots it again, "
            f"`bootlab vm delete {req.name}` removes it"
        )
    profile, project = _resolve(req, req.profile)
    for fwd in profile.forwards:  # the profile's own and --forward's
        check_port_free(fwd.host, fwd.proto)
    make_private_dir(vm.path)
    try:
        _prepare(vm, req, profile, project)
    except BaseException:
        shutil.rmtree(vm.path, ignore_errors=True)
        raise
    if not wait:
        spawn(vm)
        return info(vm)
    from bootlab.lab.fallback import boot_with_fallback
    from bootlab.verdict import Verdict

    states: list[dict[str, Any]] = []

    def boot_vm(p: Profile) -> Verdict:
        if states:  # the fallback: a fresh overlay, the fallback profile
            for disk in vm.path.glob("disk*.qcow2"):
                disk.unlink()
            _prepare(vm, req, p, project, fell_back_from=profile.name)
        spawn(vm)
        states.append(wait_settled(vm, on_stage=on_stage))
        return Verdict.model_validate(states[-1].get("verdict") or {"outcome": "infra-error"})

    attempts = boot_with_fallback(
        profile, boot_vm, lambda name: _resolve(req, name)[0], on_event or (lambda _text: None)
    )
    result = states[-1]
    if len(attempts) > 1:
        result["fallback_from"] = {"profile": profile.name, "verdict": states[0].get("verdict") or {}}
    return result


def _prepare(
    vm: VmDir, req: LaunchRequest, profile: Profile, project: Project, fell_back_from: str | None = None
) -> None:
    meta = {
        "name": vm.name,
        "profile": profile.name,
        "requested_profile": req.profile,
        "config": str(req.config.resolve()) if req.config else (str(project.path) if project.path else None),
        "project_root": str(project.root),
        "sets": req.sets,
        "mounts": req.mounts,
        "forwards": [f.spec() for f in profile.forwards],  # the profile's own and --forward's
        "persistent": req.persistent,
        "gdb": req.gdb,
        "created": time.time(),
        "fell_back_from": fell_back_from,
    }
    vm.write("vm.json", meta)
    vm.write("profile.json", _overlays(vm, profile).model_dump(mode="json"))
    with contextlib.suppress(FileNotFoundError):
        (vm.path / "state.json").unlink()


def spawn(vm: VmDir, *, boot: bool = False) -> None:
    """Start the supervisor detached (its own session; adopted by init once the intermediate child exits).
    ``boot``: a one-shot boot that waits for its owner (see :mod:`bootlab.vm.hold`)."""
    vm.path.mkdir(parents=True, exist_ok=True)
    with vm.supervisor_out.open("ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "bootlab.vm.supervisor", "--detach", *(["--boot"] if boot else []), str(vm.path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    child.wait()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if vm.supervisor_alive() and vm.control_socket() and vm.control_socket().exists():  # type: ignore[union-attr]
            return
        state = vm.read("state.json") or {}
        if state.get("state") == "stopped" and not vm.supervisor_alive():
            return
        time.sleep(0.02)
    raise InfraError(f"vm {vm.name}: the supervisor did not start; see {vm.supervisor_out}")


def wait_settled(
    vm: VmDir, timeout: float = 3600, on_stage: Callable[[str, float | None], None] | None = None
) -> dict[str, Any]:
    """Block until the boot is decided (ready, crashed or stopped); the final state. ``on_stage`` gets each
    stage as the supervisor reaches it."""
    if vm.supervisor_alive():
        with contextlib.suppress(InfraError, UsageError, OSError, ValueError):
            sock = connect(vm, timeout + 5)
            try:
                sock.sendall(protocol.WaitRequest(timeout=timeout, events=True).encode())
                reader = sock.makefile("rb")
                for line in reader:
                    msg = read_message(vm, line)
                    if isinstance(msg, protocol.StageEvent):
                        if on_stage is not None:
                            on_stage(msg.name, msg.t)
                        continue
                    if isinstance(msg, protocol.Event):
                        continue  # a one-shot boot's events are its owner's, not a waiter's
                    return {**msg.model_dump(mode="json"), "streamed": on_stage is not None}
            finally:
                sock.close()
    # the supervisor finished (failed boot) before we asked: its last published state says how
    deadline = time.monotonic() + 5
    while vm.supervisor_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    state = vm.read("state.json") or {"state": "stopped"}
    if not vm.supervisor_alive() and state.get("state") != "stopped":
        state["state"] = "stopped"
    return dict(state)


def start(
    name: str, *, wait: bool = True, on_stage: Callable[[str, float | None], None] | None = None
) -> dict[str, Any]:
    reap()
    vm = get(name)
    if vm.supervisor_alive():
        raise UsageError(f"vm {name} is already running; stop it first with `bootlab vm stop {name}`")
    from bootlab.profile.model import Profile

    for fwd in Profile.model_validate(vm.read("profile.json")).forwards:
        check_port_free(fwd.host, fwd.proto)
    with contextlib.suppress(FileNotFoundError):
        (vm.path / "state.json").unlink()
    spawn(vm)
    return wait_settled(vm, on_stage=on_stage) if wait else info(vm)


def stop(name: str, grace: float = 10.0) -> str:
    """Stop a VM; how it went (``powerdown``, ``quit``, ``killed``, ``already stopped``...)."""
    reap()
    vm = get(name)
    if not vm.supervisor_alive():
        return "already stopped"
    sup = vm.supervisor() or {}
    res = request(vm, protocol.StopRequest(grace=grace), timeout=grace + 30)
    if isinstance(res, protocol.ErrorReply):
        raise InfraError(f"vm {name}: {res.error}")
    deadline = time.monotonic() + 10
    while same_process(sup.get("pid"), sup.get("start")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return res.how if isinstance(res, protocol.StopReply) else "ok"


def delete(name: str) -> None:
    reap()
    vm = get(name)
    if vm.supervisor_alive():
        stop(name, grace=0)
    shutil.rmtree(vm.path)


def guest_running(name: str, *, resume: bool = False) -> bool:
    """Whether the VM's guest runs (a debugger may have paused it); ``resume`` lets a booting or ready VM's
    guest run on again (never a held one)."""
    reply = request(get(name), protocol.GuestRequest(resume=resume))
    if isinstance(reply, protocol.ErrorReply):
        raise InfraError(reply.error)
    if not isinstance(reply, protocol.GuestReply):
        raise InfraError(f"vm {name}: unexpected reply from the supervisor: {reply}")
    return reply.running


def gdb_target(name: str) -> Any:
    """Where a VM's gdb stub is (a held crash, or a VM launched with ``--gdb``), as a
    :class:`~bootlab.vm.hold.GdbTarget`; a one-line usage error when it has none."""
    from bootlab.vm.hold import GdbTarget

    reap()
    vm = get(name)
    if not vm.supervisor_alive():
        raise UsageError(
            f"vm {name} is not running, so there is nothing to debug; start it with `bootlab vm start {name}`"
        )
    state = vm.read("state.json") or {}
    target = GdbTarget.from_status({**state, "name": name})
    if target.gdb_socket is None:
        if target.gdb_error:
            raise InfraError(f"vm {name} has no gdb stub: {target.gdb_error}")
        raise UsageError(
            f"vm {name} has no gdb stub: launch it with `bootlab vm launch {name} PROFILE --gdb` "
            "(or hold a crash with `bootlab boot PROFILE --hold-on-crash`)"
        )
    return target


# ---------------------------------------------------------------------------------------------- exec / logs


def exec_command(name: str, argv: list[str], timeout: float | None = None) -> ExecOutcome:
    if not argv:
        raise UsageError("vm exec: no command given; write it after `--`, e.g. bootlab vm exec dev -- uname -a")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"vm exec --timeout {timeout}: give a positive number of seconds")
    reap()
    vm = get(name)
    if not vm.supervisor_alive():
        if (vm.read("state.json") or {}).get("note") == "supervisor died":
            raise UsageError(f"vm {name}: its supervisor died (QEMU with it); start it with `bootlab vm start {name}`")
        raise UsageError(f"vm {name} is stopped; start it with `bootlab vm start {name}`")
    if (vm.read("state.json") or {}).get("state") == "booting":
        wait_settled(vm)  # after `launch --no-wait`: run once it is ready (or report how the boot ended)
    res = request(vm, protocol.ExecRequest(argv=argv, timeout=timeout), timeout=None)
    if isinstance(res, protocol.ErrorReply):
        if res.usage or res.state in ("booting", "stopped", "stopping"):
            hint = "; wait for it with `bootlab vm list`" if res.state == "booting" else ""
            raise UsageError(res.error + hint)
        if res.verdict:
            raise GuestCrashed(res.error, res.verdict)
        raise InfraError(res.error)
    if not isinstance(res, protocol.ExecReply):
        raise InfraError(f"vm {name}: unexpected reply from the supervisor: {res}")
    from bootlab.console.shell import ExecOutcome

    return ExecOutcome(
        output=base64.b64decode(res.stdout_b64),
        exit_code=res.exit_code,
        duration_s=res.duration_s,
        timed_out=res.timed_out,
    )


class GuestCrashed(BootlabError):
    """Exec on a VM whose guest crashed: the verdict instead of an exit status (exit 1, like a failed boot)."""

    exit_code = EXIT_GUEST_FAILED

    def __init__(self, message: str, verdict: dict[str, Any]) -> None:
        super().__init__(message)
        self.verdict = verdict


def follow_log(name: str, *, follow: bool, poll: float = 0.2) -> Iterator[bytes]:
    vm = get(name)
    pos = 0
    while True:
        try:
            with vm.log.open("rb") as fh:
                fh.seek(pos)
                while chunk := fh.read(65536):
                    pos += len(chunk)
                    yield chunk
        except FileNotFoundError:
            pass
        if not follow or not vm.supervisor_alive():
            if follow:  # one last read after the supervisor ended
                with contextlib.suppress(FileNotFoundError), vm.log.open("rb") as fh:
                    fh.seek(pos)
                    rest = fh.read()
                    if rest:
                        yield rest
            return
        time.sleep(poll)
