"""tests/prereq.py: a missing prerequisite skips a test outside `make test` and fails it under `make test`
(BOOTLAB_TEST_STRICT=1), for a module (`need`) and for one test (`requires`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

SAMPLE = """
from prereq import need, requires

def test_present():
    need(True, "always there")

@requires(False, "a tool this machine lacks")
def test_missing(tmp_path):
    raise AssertionError("must not run")
"""


@pytest.mark.parametrize(("strict", "summary"), [(False, "1 passed, 1 skipped"), (True, "1 failed, 1 passed")])
def test_missing_prerequisites_skip_or_fail(tmp_path: Path, strict: bool, summary: str) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "BOOTLAB_TEST_STRICT": "1" if strict else "0"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert summary in done.stdout, done.stdout
    assert "a tool this machine lacks" in done.stdout
