#!/usr/bin/env python3
"""bench/startup: how long bootlab's quick commands take, whole process, against bare Python in the same run.

For each command: wall time and CPU time (user + system of the child) over N runs, the minimum and the median,
and the ratio of its minimum wall time to bare ``python -c pass``'s (which is what no Python CLI can beat). The
minimum is the figure to compare between versions: on a busy host the median moves with the neighbours,
the minimum much less. Goal (issue 9): <= 0.15 s for --version, profiles and lint PROFILE.

The ``python + pydantic`` row is the floor of any command that validates a profile: Python importing pydantic and
building one model (bootlab validates its configuration with pydantic, so ``lint PROFILE`` and ``boot`` cannot
start faster than that).

    .venv/bin/python bench/startup.py [-n 15] [--bootlab .venv/bin/bootlab]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS: list[tuple[str, list[str]]] = [
    ("--version", ["--version"]),
    ("profiles", ["profiles"]),
    ("lint PROFILE", ["lint", "redox-aarch64-tcg", "--set", "vars.image=/dev/null"]),
    ("profiles NAME", ["profiles", "redox-aarch64-tcg", "--set", "vars.image=/dev/null"]),
]
#: Python importing pydantic and validating one model: what a command that reads a profile cannot avoid.
PYDANTIC_FLOOR = "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int\nM(x=1)"


def measure(argv: list[str], n: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(n):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", check=False)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return walls, cpus


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15)
    ap.add_argument("--bootlab", type=Path, default=Path(sys.executable).parent / "bootlab")
    args = ap.parse_args()
    os.environ.setdefault("BOOTLAB_STORE", "/tmp/bootlab-bench-startup-store")
    base_wall, base_cpu = measure([sys.executable, "-c", "pass"], args.n)
    print(f"{'command':<17} {'min s':>7} {'median s':>9} {'cpu min s':>10} {'x python':>9}")
    print(f"{'python -c pass':<17} {min(base_wall):>7.3f} {statistics.median(base_wall):>9.3f} {min(base_cpu):>10.3f}")
    floor = ("python + pydantic", [sys.executable, "-c", PYDANTIC_FLOOR])
    for label, cmd in [floor, *((label, [str(args.bootlab), *cmd]) for label, cmd in COMMANDS)]:
        walls, cpus = measure(cmd, args.n)
        ratio = min(walls) / min(base_wall)
        print(f"{label:<17} {min(walls):>7.3f} {statistics.median(walls):>9.3f} {min(cpus):>10.3f} {ratio:>9.2f}")
    print("goal: <= 0.150 s (min) for --version, profiles and lint PROFILE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
