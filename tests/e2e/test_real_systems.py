"""bootlab on real systems nobody here wrote: Debian 12 with systemd (the debian-amd64 guest) and U-Boot.

debian-amd64 costs 30-70 s per boot under TCG here (more while other sessions load the machine), so these are few:
one passing boot with the unit that fails on purpose (a verified login, and the unit's incident), a wrong
password, a wrong `root=`, and a named VM that runs `systemctl`. U-Boot (Debian's u-boot-qemu) boots in under a
second with the pack a user wrote from the README (tests/packs/uboot/packs/uboot.toml).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootlab.console.clock import MAX_GRACE
from bootlab.lab.boot import BootOptions, boot
from bootlab.verdict import Verdict
from prereq import need, need_guests

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "bootlab.toml"
DEBIAN = ROOT / "guests" / "out" / "debian-amd64" / "rootfs.img"
UBOOT = ROOT / "tests" / "packs" / "uboot"
UBOOT_BIN = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")

need_guests("qemu-system-x86_64", "qemu-system-aarch64")


def debian(*sets: str, tmp: Path, name: str) -> Verdict:
    need(DEBIAN.is_file(), "the debian-amd64 guest is not built: run `bash guests/build.sh`")
    from bootlab.profile.loader import load_project, resolve_profile

    prof = resolve_profile("debian-amd64", project=load_project(GUESTS), sets=list(sets))
    return boot(prof, options=BootOptions(log_path=tmp / f"{name}.log"))


@pytest.fixture(scope="module")
def failunit(tmp_path_factory: pytest.TempPathFactory) -> Verdict:
    """One boot, read by two tests: the profile's credentials (root/bootlab), the failing unit switched on."""
    return debian("vars.failunit=1", tmp=tmp_path_factory.mktemp("deb"), name="failunit")


def test_debian_pass_is_a_verified_login(failunit: Verdict) -> None:
    v = failunit
    assert v.outcome == "pass", (v.title, v.stopped)
    names = [s.name for s in v.stages]
    assert names[:3] == ["kernel", "userspace", "initramfs"] and names[-1] == "login"
    assert {"systemd", "sysinit", "basic"} <= set(names)
    # ready came at the shell after logging in, not at `login:`: the password was typed and accepted
    log = Path(v.log or "").read_bytes()
    assert log.index(b"bootlab-debian login: ") < log.index(b"Password: ") < log.rindex(b"root@bootlab-debian:~#")
    assert b"Login incorrect" not in log


def test_debian_failing_unit_is_an_incident_titled_by_the_unit(failunit: Verdict) -> None:
    assert [(i.kind, i.title) for i in failunit.incidents] == [
        ("systemd", "systemd: failed to start bootlab-fail.service")
    ]
    assert "Failed to start" in failunit.incidents[0].line


def test_debian_wrong_password_is_login_failed_at_once(tmp_path: Path) -> None:
    v = debian("vars.password=wrong", tmp=tmp_path, name="wrongpw")
    assert (v.outcome, v.title, v.fatal_line) == ("login-failed", "login failed", "Login incorrect"), v.stopped
    assert v.exit_code() == 1
    # the boot ended at the first refusal, not after login's three tries and its 60 s timeout
    log = Path(v.log or "").read_bytes()
    assert log.count(b"Login incorrect") == 1 and b"Login timed out" not in log
    assert v.fatal_t is not None and v.duration_s is not None and v.duration_s - v.fatal_t < 1.0


def test_debian_wrong_root_is_the_initramfs_failure_titled_by_the_device(tmp_path: Path) -> None:
    v = debian("vars.root=/dev/vdz", tmp=tmp_path, name="wrongroot")
    assert (v.outcome, v.title) == ("crash", "initramfs: /dev/vdz does not exist"), (v.title, v.stopped)
    assert v.fatal_line == "ALERT!  /dev/vdz does not exist.  Dropping to a shell!"
    # at the ALERT line, not at the quiet timeout (60 s of silence at the `(initramfs) ` prompt)
    assert v.fatal_t is not None and v.duration_s is not None and v.duration_s < v.fatal_t + MAX_GRACE + 0.5
    assert v.stage == "initramfs"


# ---------------------------------------------------------------- named VMs


def vm(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootlab", "vm", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def vm_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, "BOOTLAB_VM_HOME": str(tmp_path / "vms")}
    yield env
    for row in json.loads(vm(env, "list", "--json").stdout or "[]"):
        vm(env, "delete", row["name"])


def test_debian_vm_launch_and_exec_systemctl(vm_env: dict[str, str]) -> None:
    need(DEBIAN.is_file(), "the debian-amd64 guest is not built: run `bash guests/build.sh`")
    r = vm(vm_env, "launch", "deb", "debian-amd64", "--config", str(GUESTS))
    assert r.returncode == 0, r.stderr
    assert "is ready" in r.stderr and "systemd" in r.stderr  # the timeline went through systemd's stages
    r = vm(vm_env, "exec", "deb", "--", "systemctl", "is-system-running", "--wait", timeout=300)
    assert (r.returncode, r.stdout) == (0, "running\n"), r.stderr
    r = vm(vm_env, "exec", "deb", "--", "systemctl", "--failed", "--no-legend", "--plain")
    assert (r.returncode, r.stdout) == (0, ""), r.stderr


def test_uboot_boots_to_its_prompt_and_exec_says_what_it_answered(vm_env: dict[str, str], tmp_path: Path) -> None:
    need(UBOOT_BIN.is_file(), "U-Boot is not installed: `apt-get install u-boot-qemu` (make setup)")
    config = str(UBOOT / "bootlab.toml")
    r = subprocess.run(
        [sys.executable, "-m", "bootlab", "boot", "uboot-arm64", "--config", config, "--no-store", "--json",
         "--log", str(tmp_path / "uboot.log")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    v = json.loads(r.stdout)
    assert (r.returncode, v["outcome"], [s["name"] for s in v["stages"]]) == (0, "pass", ["banner", "dram", "autoboot"])
    # U-Boot crashing for real (too little RAM for its relocation): a crash at the pack's dump_end line
    r = subprocess.run(
        [sys.executable, "-m", "bootlab", "boot", "uboot-arm64", "--config", config, "--no-store", "--json",
         "--set", "memory=16M", "--log", str(tmp_path / "abort.log")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    v = json.loads(r.stdout)
    assert (r.returncode, v["outcome"], v["title"]) == (1, "crash", "u-boot: Synchronous Abort exception")
    # a named VM: ready at `=> `, and exec, which needs a POSIX sh, says what U-Boot answered instead
    r = vm(vm_env, "launch", "ub", "uboot-arm64", "--config", config, timeout=120)
    assert r.returncode == 0 and "is ready" in r.stderr, r.stderr
    r = vm(vm_env, "exec", "ub", "--", "version", timeout=120)
    assert r.returncode == 3
    assert "the guest answered bootlab's exec framing with" in r.stderr
    assert "Unknown command 'printf' - try 'help'" in r.stderr and "bootlab vm console" in r.stderr
