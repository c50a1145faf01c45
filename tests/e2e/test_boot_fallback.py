"""`bootlab boot --fallback` on real QEMU: a crash under the first profile retries once under its `fallback`,
loudly, keeping both verdicts (and storing both boots); without --fallback, and for a pass, nothing retries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).resolve().parents[2] / "guests" / "bootlab.toml"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CONFIG.is_file():
        pytest.fail("test guests not built: run `make guests`")
    text = CONFIG.read_text().replace('"out/', f'"{CONFIG.parent}/out/')
    text += (
        '\n[profiles.redox-flaky]\nextends = "redox-sim"\nfallback = "redox-sim"\nvars = { fault = "kernel-panic" }\n'
    )
    path = tmp_path_factory.mktemp("fallback") / "bootlab.toml"
    path.write_text(text)
    return path


def boot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootlab", "boot", "--config", str(config), "--json", *args],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip


def test_crash_falls_back_once_and_keeps_both_verdicts(config: Path) -> None:
    r = boot(config, "redox-flaky", "--fallback", "--seed", "7")
    assert r.returncode == 0, r.stderr
    assert "*** FALLBACK: redox-flaky ended in crash: redox: kernel panic at src/context/memory.rs:LINE" in r.stderr
    assert "retrying once under its fallback profile redox-sim ***" in r.stderr
    verdict = json.loads(r.stdout)
    assert verdict["outcome"] == "pass" and verdict["seed"] == 7
    first = verdict["fallback_from"]
    assert (first["profile"], first["outcome"], first["seed"]) == ("redox-flaky", "crash", 7)
    assert r.stderr.count("bootlab: stored as b") == 2


def test_no_fallback_without_the_flag(config: Path) -> None:
    r = boot(config, "redox-flaky", "--seed", "7", "--no-store")
    assert r.returncode == 1 and "FALLBACK" not in r.stderr
    assert json.loads(r.stdout)["outcome"] == "crash"
