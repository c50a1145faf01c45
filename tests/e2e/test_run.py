"""Real QEMU through `bootlab run` and through the script from `bootlab script`: edk2's banner must appear,
and QEMU must never outlive bootlab, also when bootlab is SIGKILLed."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import children, wait_dead

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parent / "fixtures" / "bootlab.toml"
BANNER = b"UEFI firmware"


def read_until(proc: subprocess.Popen[bytes], needle: bytes, timeout: float = 60) -> bytes:
    assert proc.stdout is not None
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen in {timeout}s; got {buf[-500:]!r}")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"output ended before {needle!r}: {buf[-500:]!r}")
            buf += chunk
    return buf


def test_run_boots_edk2_and_qemu_dies_with_sigkilled_bootlab() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bootlab", "run", "edk2-aarch64", "--config", str(FIXTURES)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        read_until(proc, BANNER)
        qemus = children(proc.pid)
        assert len(qemus) == 1, "bootlab should have exactly one QEMU child"
        assert "qemu-system-aarch64" in Path(f"/proc/{qemus[0]}/cmdline").read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert wait_dead(qemus[0]), "QEMU outlived a SIGKILLed bootlab"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_exit_code_is_qemus(tmp_path: Path) -> None:
    """QEMU refusing its arguments: bootlab run exits with QEMU's status (1), after the lint warnings."""
    result = subprocess.run(
        [sys.executable, "-m", "bootlab", "run", "edk2-aarch64", "--config", str(FIXTURES),
         "--set", "extra_args=['-no-such-option']"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert b"-no-such-option" in result.stderr


def test_script_boots_edk2(tmp_path: Path) -> None:
    script = tmp_path / "run-backup.sh"
    subprocess.run(
        [sys.executable, "-m", "bootlab", "script", "edk2-aarch64", "--config", str(FIXTURES), "-o", str(script)],
        check=True, capture_output=True,
    )  # fmt: skip
    proc = subprocess.Popen(
        ["sh", str(script)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        out = read_until(proc, BANNER)
        assert BANNER in out
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_observed_boot_sockets_are_private() -> None:
    """The console and QMP sockets are 0600 in a 0700 directory: nobody else can type into the guest."""
    from bootlab.host import probe
    from bootlab.profile.loader import resolve_profile
    from bootlab.qemu.invocation import build_invocation
    from bootlab.qemu.process import QemuProcess
    from bootlab.qemu.runtime import RuntimeDir

    profile = resolve_profile("edk2-aarch64", config=FIXTURES, seed=0)
    with RuntimeDir() as rt:
        inv = build_invocation(profile, probe(), rt)
        with QemuProcess(inv.argv, stderr_path=rt.stderr):
            deadline = time.monotonic() + 30
            while not (rt.serial.exists() and rt.qmp.exists()) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert oct(rt.path.stat().st_mode & 0o777) == "0o700"
            assert oct(rt.serial.stat().st_mode & 0o777) == "0o600"
            assert oct(rt.qmp.stat().st_mode & 0o777) == "0o600"
