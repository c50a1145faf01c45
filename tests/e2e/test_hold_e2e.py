"""A crash held for the debugger, on real QEMU with the real guests, through the CLI as a user runs it.

- linux-arm64 in panic mode with ``bootlab boot --hold-on-crash``: the verdict's ELR/ESR/FAR are what gdb-multiarch
  reads on the held VM, with the decoded line; the VM stays paused and listed as ``held``; gdb attaches through the
  printed socket in batch mode and reads ``$pc`` equal to the verdict's PC; the guest is still paused after it;
  ``vm stop`` ends it and no QEMU is left.
- SIGKILL of bootlab while it holds a crash: the supervisor keeps it, ``vm list`` says ``held``; killed *before*
  the boot is decided, the boot ends and no QEMU is left.
- ``bootlab trial --hold-first-crash`` on the flaky redox-sim build holds exactly one VM, with the same counts as
  the same trial (same seeds) without the option.

Every process is checked by pid from /proc, never by name. BOOTLAB_VM_HOME is a temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import alive, wait_dead

from prereq import need, need_guests

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "guests" / "bootlab.toml"
GDB = shutil.which("gdb-multiarch")

need_guests()
need(
    (ROOT / "guests" / "out" / "linux-arm64" / "vmlinuz").is_file(), "test guests not built: run `bash guests/build.sh`"
)
need(GDB is not None, "needs gdb-multiarch (scripts/setup-system.sh installs it)")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("BOOTLAB_VM_HOME", str(tmp_path / "vms"))  # also for the library calls made here
    e = {**os.environ, "BOOTLAB_STORE": str(tmp_path / "store")}
    yield e
    for vm in rows(e):  # whatever a failed test left: stopped by its supervisor, never by name
        bootlab(e, "vm", "delete", str(vm["name"]))


def bootlab(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootlab", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def rows(env: dict[str, str]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = json.loads(bootlab(env, "vm", "list", "--json").stdout or "[]")
    return out


def gdb_batch(socket: str, *commands: str) -> str:
    assert GDB is not None
    argv = [GDB, "-nx", "-batch", "-ex", f"target remote {socket}"]
    for c in (*commands, "disconnect"):
        argv += ["-ex", c]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL).stdout


def gdb_values(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2), 16) for m in re.finditer(r"^(\w+)\s+(0x[0-9a-f]+)\b", text, re.MULTILINE)}


def qemu_status(name: str) -> bool:
    """Whether the held VM's guest runs, asked of its supervisor (QMP query-status)."""
    from bootlab.vm import manager

    return manager.guest_running(name)


def test_a_held_panic_is_what_gdb_sees_and_vm_stop_ends_it(env: dict[str, str]) -> None:
    done = bootlab(
        env,
        *("boot", "linux-arm64", "--config", str(CONFIG), "--set", "vars.mode=panic", "--hold-on-crash"),
        *("--name", "panic", "--json"),
    )
    assert done.returncode == 1, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["outcome"] == "crash" and verdict["held"]["vm"] == "panic"
    socket = verdict["held"]["gdb_socket"]
    assert verdict["held"]["attach"] == f"gdb-multiarch -ex 'target remote {socket}'"
    st = os.stat(socket)
    assert oct(st.st_mode & 0o777) == "0o600" and oct(os.stat(Path(socket).parent).st_mode & 0o777) == "0o700"
    (row,) = rows(env)
    assert row["state"] == "held" and row["title"] == verdict["title"] == "linux: kernel panic: sysrq triggered crash"
    pids = [int(str(row["pid"])), int(str(row["qemu_pid"]))]
    assert all(alive(p) for p in pids)

    # the verdict's fault registers (read without gdb) are what gdb reads on the held guest, decoded
    r = verdict["registers"][0]
    assert r["stub_error"] is None and r["exception"] == "SVC #0x0" and r["el"] == 1
    gdb = gdb_values(gdb_batch(socket, "info registers pc ELR_EL1 ESR_EL1 FAR_EL1"))
    assert gdb["pc"] == int(r["pc"], 16)
    assert (gdb["ELR_EL1"], gdb["ESR_EL1"], gdb["FAR_EL1"]) == (int(r["elr"], 16), int(r["esr"], 16), int(r["far"], 16))
    assert not qemu_status("panic")  # still paused as it died: gdb left with `disconnect`

    # `vm gdb --backtrace` runs gdb in batch mode; the printed command is the one above
    bt = bootlab(env, "vm", "gdb", "panic", "--backtrace")
    assert bt.returncode == 0 and "#0  0x" in bt.stdout and re.search(r"^pc\s+0x", bt.stdout, re.MULTILINE)
    assert bootlab(env, "vm", "gdb", "panic", "--print").stdout.strip() == verdict["held"]["attach"]
    assert not qemu_status("panic")
    logs = bootlab(env, "vm", "logs", "panic").stdout
    assert "Kernel panic - not syncing: sysrq triggered crash" in logs and logs.count("Booting Linux") == 1
    exec_ = bootlab(env, "vm", "exec", "panic", "--", "true")
    assert exec_.returncode == 1 and "crashed" in exec_.stderr

    stop = bootlab(env, "vm", "stop", "panic", timeout=30)
    assert stop.returncode == 0, stop.stderr
    assert all(wait_dead(p) for p in pids)  # no QEMU left, no supervisor
    assert rows(env)[0]["state"] == "stopped" and not Path(socket).exists()


def test_sigkill_of_bootlab_holding_a_crash_leaves_it_held_and_before_the_verdict_leaves_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    argv = [sys.executable, "-m", "bootlab", "boot", "linux-arm64", "--config", str(CONFIG), "--hold-on-crash"]
    # killed while it holds the crash: the named VM stays (its supervisor keeps it), and says so
    proc = subprocess.Popen(
        [*argv, "--set", "vars.mode=panic", "--name", "kept"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(r["state"] == "held" for r in rows(env)):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (row,) = rows(env)
    assert row["state"] == "held" and alive(int(str(row["qemu_pid"])))
    assert gdb_values(gdb_batch(str(row["gdb_socket"]), "info registers pc"))["pc"]
    held_pids = [int(str(row["pid"])), int(str(row["qemu_pid"]))]

    # killed while booting (the guest hangs, nothing decided yet): the boot ends with it, no QEMU left
    proc = subprocess.Popen(
        [*argv, "--set", "vars.mode=hang", "--name", "gone"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    booting: dict[str, object] = {}
    while time.monotonic() < deadline and not booting.get("qemu_pid"):
        booting = next((r for r in rows(env) if r["name"] == "gone"), {})
        time.sleep(0.1)
    pids = [int(str(booting["pid"])), int(str(booting["qemu_pid"]))]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert all(wait_dead(p) for p in pids)
    assert [r["name"] for r in rows(env)] == ["kept"]  # the abandoned boot left no VM behind
    assert bootlab(env, "vm", "delete", "kept", timeout=30).returncode == 0
    assert all(wait_dead(p) for p in held_pids) and rows(env) == []


def test_trial_hold_first_crash_holds_one_vm_with_the_same_counts(env: dict[str, str]) -> None:
    trial = ["trial", "redox-sim", "--config", str(CONFIG), "--set", "cpu=max", "--set", "vars.build=dsb-wfi"]
    trial += ["-n", "6", "--seed-base", "3", "--json", "-q"]
    plain = bootlab(env, *trial)
    held = bootlab(env, *trial, "--hold-first-crash")
    assert plain.returncode == held.returncode == 0, held.stderr
    a, b = json.loads(plain.stdout), json.loads(held.stdout)
    assert (a["boots"], a["passed"], a["outcomes"]) == (b["boots"], b["passed"], b["outcomes"])
    assert [(t["title"], t["count"]) for t in a["titles"]] == [(t["title"], t["count"]) for t in b["titles"]]
    assert a["outcomes"].get("crash") and "held" not in a
    vms = rows(env)
    assert len(vms) == 1 and vms[0]["state"] == "held" and vms[0]["name"] == b["held"]["vm"]
    assert b["held"]["title"] == vms[0]["title"] and b["held"]["title"] in {t["title"] for t in b["titles"]}
    assert b["held"]["outcome"] == "crash" and b["held"]["gdb_socket"]
    assert bootlab(env, "vm", "stop", str(vms[0]["name"]), timeout=30).returncode == 0
