"""Every bench script starts: `python bench/NAME.py --help` as the README says to run them. A bench is run rarely
and by hand, so an import that breaks it (bench/bisect.py is named like the standard module that `random`
imports, and every script has bench/ first on its path) would otherwise be found by the next person to measure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_bench_script_starts(script: str) -> None:
    r = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=60, cwd=BENCH.parent
    )
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr[-2000:]
