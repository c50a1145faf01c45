"""An imported profile boots: `bootlab script linux-arm64` -> `bootlab profiles import --script` -> `bootlab boot`.

The whole path a user takes with their run script, through the real CLI, real QEMU and the real test guest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prereq import need_guests

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "bootlab.toml"

pytestmark = pytest.mark.e2e
need_guests()


def bootlab(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootlab", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def test_imported_script_of_linux_arm64_boots_to_pass(tmp_path: Path) -> None:
    script = tmp_path / "run-linux.sh"
    made = bootlab("script", "linux-arm64", "--config", str(GUESTS), "-o", str(script), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    imported = bootlab("profiles", "import", "arm", "--script", script.name, "--json", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    data = json.loads(imported.stdout)
    assert data["exact"] and data["table"]["pack"] == ["linux"]
    booted = bootlab("boot", "arm", "--json", "--no-store", "--log", str(tmp_path / "arm.log"), cwd=tmp_path,
                     timeout=600)  # fmt: skip
    verdict = json.loads(booted.stdout)
    assert (booted.returncode, verdict["outcome"]) == (0, "pass"), (verdict.get("title"), booted.stderr[-2000:])
    # the boot ran the imported machine: the exported argv up to its console plumbing (-nographic), which an
    # observed boot replaces with its sockets
    exported = data["comparisons"][0]["argv"]
    assert exported[-1] == "-nographic" and verdict["argv"][: len(exported) - 1] == exported[:-1]
