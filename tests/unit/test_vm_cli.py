"""Named VMs without QEMU: names, option syntax, state on disk, dead-supervisor cleanup, fallback rule, and the
one-line exit-2 errors of the CLI for bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bootlab.cli.main import main
from bootlab.errors import UsageError
from bootlab.lab import fallback
from bootlab.verdict import Verdict
from bootlab.vm import manager, registry
from prereq import need


@pytest.fixture(autouse=True)
def vm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "vms"
    monkeypatch.setenv("BOOTLAB_VM_HOME", str(home))
    return home


def make_vm(name: str, **extra: object) -> registry.VmDir:
    vm = registry.VmDir.of(name)
    registry.make_private_dir(vm.path)
    vm.write("vm.json", {"name": name, "profile": "linux-arm64", "forwards": [], "mounts": [], **extra})
    return vm


@pytest.mark.parametrize("name", ["a", "dev", "redox-dev-2", "x" * 32])
def test_good_names(name: str) -> None:
    assert registry.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "Dev", "-dev", "dev-", "a_b", "a/b", "..", "x" * 33, "dev vm"])
def test_bad_names(name: str) -> None:
    with pytest.raises(UsageError, match="not valid"):
        registry.validate_name(name)


def test_parse_mount(tmp_path: Path) -> None:
    m = manager.parse_mount(f"{tmp_path}:hostshare")
    assert (m.path, m.tag) == (str(tmp_path), "hostshare")
    with pytest.raises(UsageError, match="HOST_DIR:TAG"):
        manager.parse_mount("nocolon")
    with pytest.raises(UsageError, match="not a directory"):
        manager.parse_mount(f"{tmp_path}/missing:tag")
    with pytest.raises(UsageError, match="tag"):
        manager.parse_mount(f"{tmp_path}:bad tag!")


@pytest.mark.parametrize("text", ["80", "a:b", "0:22", "70000:22", "22:", ":22", "1:2:3", "22:22/sctp"])
def test_bad_forward(text: str) -> None:
    with pytest.raises(UsageError, match="HOST_PORT:GUEST_PORT"):
        manager.parse_forward(text)


def test_forwards_and_mounts_are_the_profiles_own_kinds(tmp_path: Path) -> None:
    """`--forward`/`--mount` accept what bootlab.toml accepts (udp too), and say it back the same way."""
    from bootlab.profile.model import Forward, Share

    assert manager.parse_forward("5353:53/udp") == Forward(host=5353, guest=53, proto="udp")
    assert manager.parse_forward(" 2222 : 22 ").spec() == "2222:22"
    assert Forward.model_validate("5353:53/udp").spec() == "5353:53/udp"
    assert manager.parse_mount(f"{tmp_path}:hostshare") == Share(path=str(tmp_path), tag="hostshare")


def test_forward_udp_port_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        with pytest.raises(UsageError, match="/udp is already in use"):
            manager.check_port_free(s.getsockname()[1], "udp")


def test_forward_port_in_use() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(UsageError, match="already in use"):
            manager.check_port_free(s.getsockname()[1])


def test_liveness_uses_start_time() -> None:
    me = os.getpid()
    start = registry.process_start_time(me)
    assert start is not None
    assert registry.same_process(me, start)
    assert not registry.same_process(me, start + 1)  # a recycled pid is not our process
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not registry.same_process(proc.pid, None)


def test_dead_supervisor_is_reported_then_cleaned(tmp_path: Path) -> None:
    vm = make_vm("gone")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    vm.write("supervisor.json", {"pid": proc.pid, "start": 1, "run_dir": str(run_dir), "qemu_pid": proc.pid})
    vm.write("state.json", {"state": "ready", "started": 0})
    first = manager.info(vm)
    assert first["state"] == "died"
    assert not run_dir.exists()
    assert not vm.supervisor_file.exists()
    assert manager.info(vm)["state"] == "died"  # still said after cleanup, until started or deleted
    assert vm.read("state.json")["note"] == "supervisor died"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_supervisor_kills_its_verified_qemu(tmp_path: Path) -> None:
    vm = make_vm("orphan")
    qemu = subprocess.Popen(["sleep", "60"])
    try:
        start = registry.process_start_time(qemu.pid)
        vm.write("supervisor.json", {"pid": _dead_pid(), "start": 1, "qemu_pid": qemu.pid, "qemu_start": start})
        assert vm.cleanup_dead() is not None
        assert qemu.wait(timeout=5) == -9
    finally:
        qemu.kill()
        qemu.wait()


def test_unverifiable_start_time_never_kills(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS has no /proc: a live pid's start time is unknown, so a process that reused QEMU's pid is left alone
    while the VM is still reported as died."""
    monkeypatch.setattr(registry, "_HAVE_PROC", False)
    assert registry.process_start_time(os.getpid()) == 0  # the fake lookup: alive, start unknown
    vm = make_vm("reused")
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        vm.write("supervisor.json", {"pid": _dead_pid(), "start": 1, "qemu_pid": stranger.pid, "qemu_start": 0})
        vm.write("state.json", {"state": "ready", "started": 0})
        assert manager.info(vm)["state"] == "died"
        assert not vm.supervisor_file.exists()
        with pytest.raises(subprocess.TimeoutExpired):  # not signalled: still running half a second later
            stranger.wait(timeout=0.5)
        assert not registry.verified_process(stranger.pid, 0)
        assert registry.same_process(stranger.pid, 0)  # looks alive, but that is not proof enough to kill
    finally:
        stranger.kill()
        stranger.wait()


def test_run_dir_is_private_and_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = registry.make_run_dir("x" * 32)
    try:
        assert run.path.parent == registry.runtime_home() or run.path.parent == Path("/tmp")
        assert run.path.stat().st_mode & 0o777 == 0o700
        assert len(str(run.path / "serial.sock")) <= registry.MAX_SOCKET_PATH
    finally:
        run.cleanup()
    assert not run.path.exists()
    monkeypatch.setenv("BOOTLAB_VM_HOME", str(tmp_path / ("long" * 30)))  # socket paths would not fit: /tmp
    run = registry.make_run_dir("dev")
    try:
        assert run.path.parent == Path("/tmp")
    finally:
        run.cleanup()


def test_vm_dir_is_private() -> None:
    vm = make_vm("priv")
    assert vm.path.stat().st_mode & 0o777 == 0o700


def run_cli(*args: str) -> int:
    return main(list(args))


def test_cli_bad_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("vm", "launch", "Bad_Name", "linux-arm64") == 2
    err = capsys.readouterr().err
    assert "not valid" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_unknown_vm(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in (["exec", "nope", "--", "ls"], ["stop", "nope"], ["start", "nope"], ["delete", "nope"],
                ["logs", "nope"], ["console", "nope"]):  # fmt: skip
        assert run_cli("vm", *cmd) == 2, cmd
        err = capsys.readouterr().err
        assert "vm 'nope' not found" in err and "vm launch" in err


def test_cli_exec_on_stopped_vm(capsys: pytest.CaptureFixture[str]) -> None:
    make_vm("idle")
    assert run_cli("vm", "exec", "idle", "--", "ls") == 2
    assert "is stopped; start it with `bootlab vm start idle`" in capsys.readouterr().err


def test_cli_exec_without_command(capsys: pytest.CaptureFixture[str]) -> None:
    make_vm("idle")
    assert run_cli("vm", "exec", "idle") == 2
    assert "no command given" in capsys.readouterr().err
    assert run_cli("vm", "exec", "idle", "--bogus", "--", "ls") == 2
    assert "unknown option '--bogus'" in capsys.readouterr().err
    assert run_cli("vm", "exec", "idle", "--timeout", "x", "--", "ls") == 2


def test_cli_bad_mount_and_forward(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("vm", "launch", "a", "linux-arm64", "--mount", f"{tmp_path}/missing:tag") == 2
    assert "not a directory" in capsys.readouterr().err
    assert run_cli("vm", "launch", "a", "linux-arm64", "--forward", "2222") == 2
    assert "HOST_PORT:GUEST_PORT" in capsys.readouterr().err
    assert not registry.VmDir.of("a").exists  # nothing half-created


def test_cli_launch_existing(capsys: pytest.CaptureFixture[str]) -> None:
    make_vm("dup")
    assert run_cli("vm", "launch", "dup", "linux-arm64") == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_list_empty_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("vm", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    make_vm("one")
    assert run_cli("vm", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["state"]) for r in rows] == [("one", "stopped")]


def test_cli_logs(capsys: pytest.CaptureFixture[str]) -> None:
    vm = make_vm("logged")
    vm.log.write_bytes(b"hello console\n")
    assert run_cli("vm", "logs", "logged") == 0
    assert capsys.readouterr().out == "hello console\n"


class _P:
    def __init__(self, name: str, fallback: str | None) -> None:
        self.name = name
        self.fallback = fallback


@pytest.mark.parametrize(
    ("outcome", "falls_back"),
    [
        ("crash", True),
        ("hang", True),
        ("pass", False),
        ("timeout", False),
        ("qemu-error", False),
        ("infra-error", False),
    ],
)
def test_fallback_rule(outcome: str, falls_back: bool) -> None:
    said: list[str] = []
    booted: list[str] = []

    def boot(p: _P) -> Verdict:
        booted.append(p.name)
        return Verdict(outcome=outcome if p.name == "hvf" else "pass", title="t")

    attempts = fallback.boot_with_fallback(_P("hvf", "tcg"), boot, lambda n: _P(n, None), said.append)  # type: ignore[arg-type]
    assert booted == (["hvf", "tcg"] if falls_back else ["hvf"])
    assert len(attempts) == len(booted)
    assert bool(said) == falls_back
    if falls_back:
        assert "FALLBACK" in said[0] and outcome in said[0] and "tcg" in said[0]
        assert attempts[0].verdict.outcome == outcome  # both verdicts kept


def test_no_fallback_without_profile_field() -> None:
    attempts = fallback.boot_with_fallback(
        _P("x", None),  # type: ignore[arg-type]
        lambda p: Verdict(outcome="crash"),
        lambda n: pytest.fail("must not resolve"),  # type: ignore[arg-type,return-value]
        lambda s: pytest.fail("must not announce"),
    )
    assert len(attempts) == 1


def test_overlay_over_the_image_and_kept(tmp_path: Path) -> None:
    """Disks get a qcow2 overlay backed by the user's image (never written); persistent disks are used as is."""
    import shutil

    from bootlab.profile.model import Profile

    need(shutil.which("qemu-img") is not None, "qemu-img not installed: run `make setup`")
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 1024 * 1024)
    vm = make_vm("disky")
    base = {"name": "p", "arch": "aarch64", "machine": "virt", "drives": [{"file": str(image)}]}
    prof = manager._overlays(vm, Profile.model_validate(base))
    overlay = vm.path / "disk0.qcow2"
    assert prof.drives[0].file == str(overlay) and prof.drives[0].format == "qcow2"
    assert prof.drives[0].persistent  # the overlay itself is written (kept across stop/start), no snapshot=on
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)], capture_output=True,
                                     check=True).stdout)  # fmt: skip
    assert info["backing-filename"] == str(image)
    mtime = overlay.stat().st_mtime_ns
    manager._overlays(vm, Profile.model_validate(base))  # again (start after stop): the same overlay, kept
    assert overlay.stat().st_mtime_ns == mtime
    persistent = manager._overlays(vm, Profile.model_validate({**base, "persistent": True}))
    assert persistent.drives[0].file == str(image)


def test_forward_port_check_refuses_a_listener_but_not_time_wait() -> None:
    """`vm stop` then `vm start` must not be refused because the stopped VM's forwarded connections linger in
    TIME_WAIT; QEMU's slirp binds its hostfwd listener with SO_REUSEADDR, as this one does."""
    import socket
    import time

    from bootlab.errors import UsageError
    from bootlab.vm.manager import check_port_free

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    with pytest.raises(UsageError, match=f"host port {port} is already in use"):
        check_port_free(port)
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    conn.close()  # the server side closes first: its end goes to TIME_WAIT
    time.sleep(0.05)
    client.close()
    srv.close()
    time.sleep(0.1)
    check_port_free(port)


@pytest.mark.parametrize(
    ("state", "outcome", "code"),
    [("ready", None, 0), ("stopped", "crash", 1), ("stopped", "hang", 1), ("stopped", "qemu-error", 3),
     ("stopped", "infra-error", 3)],
)  # fmt: skip
def test_launch_and_start_exit_as_bootlab_boot_does(
    state: str, outcome: str | None, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vm launch`/`vm start` end with `bootlab boot`'s exit code for the boot's outcome: QEMU refusing to run is
    the host's problem (3), not the guest failing (1)."""
    from bootlab.cli.vm import _report

    verdict = {"outcome": outcome, "title": "t"} if outcome else {}
    assert _report("dev", {"state": state, "verdict": verdict, "streamed": True}, as_json=False) == code
    said = capsys.readouterr().err
    assert ("is ready" in said) if state == "ready" else (f"boot {outcome}: t" in said)
