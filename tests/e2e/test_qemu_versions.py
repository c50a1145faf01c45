"""The QEMU our users run (10.x: `make test` installs it from Debian's bookworm-backports) and Debian 12's own 7.2
(unpacked beside the guests by guests/build.sh) give the same verdicts and the same titles.

The rest of the suite boots the system QEMU; here the same guests boot under 7.2, picked the way a user picks a
QEMU: first on PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prereq import ROOT, need, need_guests

pytestmark = pytest.mark.e2e
need_guests()
QEMU72 = ROOT / "guests" / "out" / "qemu-7.2" / "bin"
need((QEMU72 / "qemu-system-aarch64").is_file(), "QEMU 7.2 not unpacked: run `bash guests/build.sh` on Debian 12")
CONFIG = str(ROOT / "guests" / "bootlab.toml")


def boot(qemu_dir: Path | None, tmp: Path, profile: str, *sets: str) -> dict[str, object]:
    env = {**os.environ, "BOOTLAB_STORE": str(tmp / "store")}
    if qemu_dir is not None:
        env["PATH"] = f"{qemu_dir}{os.pathsep}{env['PATH']}"
    args = [sys.executable, "-m", "bootlab", "boot", profile, "--config", CONFIG, "--no-store", "--json", "--seed", "7"]
    for s in sets:
        args += ["--set", s]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert r.stdout, r.stderr
    verdict: dict[str, object] = json.loads(r.stdout)
    return verdict


def versions(qemu_dir: Path | None) -> str:
    env = dict(os.environ)
    if qemu_dir is not None:
        env["PATH"] = f"{qemu_dir}{os.pathsep}{env['PATH']}"
    r = subprocess.run([sys.executable, "-m", "bootlab", "doctor", "--json"], capture_output=True, text=True, env=env)
    return str(json.loads(r.stdout)["qemu"]["aarch64"]["version"])


def test_qemu_72_is_the_one_picked_from_path() -> None:
    assert versions(QEMU72).startswith("7.2")


def test_guests_boot_alike_under_qemu_72(tmp_path: Path) -> None:
    login = boot(QEMU72, tmp_path, "linux-arm64")
    assert (login["outcome"], login["stage"]) == ("pass", "login")
    panic = boot(QEMU72, tmp_path, "redox-sim", "vars.fault=kernel-panic")
    assert panic["outcome"] == "crash"
    assert panic["title"] == "redox: kernel panic at src/context/memory.rs:LINE"
    assert panic["registers"], "registers were read over QMP"


def test_qemu_error_titles_do_not_change_with_the_qemu_version(tmp_path: Path) -> None:
    """QEMU 10 says `unsupported machine type: "no-such-machine"`, 7.2 only `unsupported machine type`."""
    new = boot(None, tmp_path, "linux-arm64", "machine=no-such-machine")
    old = boot(QEMU72, tmp_path, "linux-arm64", "machine=no-such-machine")
    assert new["outcome"] == old["outcome"] == "qemu-error"
    assert new["title"] == old["title"] == "qemu: unsupported machine type"
    assert new["fatal_line"] != old["fatal_line"]  # the versions really do word it differently
