#!/usr/bin/env python3
"""bench/parallel: boots per minute with `-j 2` against `-j 1` on the linux-arm64 guest (target >= 1.7x on 2 cores).

Runs the same trial (same seeds) with -j 1 and -j 2 through the library, in a throw-away store, alternating the
order across rounds so host drift hits both alike, and prints boots/minute for each and the ratio. Wall time
covers the whole trial (boot, observer, storing each boot with its compressed log). Not a timed test.

    .venv/bin/python bench/parallel.py [-n BOOTS] [--rounds R] [--profile linux-arm64] [--config guests/bootlab.toml]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(lab: object, profile: str, sets: list[str], n: int, jobs: int) -> float:
    from bootlab.lab.lab import ArmSpec, Lab

    assert isinstance(lab, Lab)
    t0 = time.monotonic()
    r = lab.trial(ArmSpec(profile, sets), n=n, jobs=jobs, seed_base=1).summary
    elapsed = time.monotonic() - t0
    if r.excluded or r.passed != r.boots:
        print(f"  warning: -j {jobs}: {r.outcomes}", file=sys.stderr)
    return n / elapsed * 60


def main() -> int:
    from bootlab.host import probe
    from bootlab.lab.lab import Lab
    from bootlab.profile.loader import load_project
    from bootlab.store.db import Store

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=8, help="boots per trial (default 8)")
    ap.add_argument("--rounds", type=int, default=2, help="pairs of trials (default 2)")
    ap.add_argument("--profile", default="linux-arm64")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--config", type=Path, default=ROOT / "guests" / "bootlab.toml")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bootlab-bench-") as tmp:
        lab = Lab(load_project(args.config), probe(), Store(Path(tmp)))
        rates: dict[int, list[float]] = {1: [], 2: []}
        for rnd in range(args.rounds):
            for jobs in (1, 2) if rnd % 2 == 0 else (2, 1):
                rate = one(lab, args.profile, args.sets, args.n, jobs)
                rates[jobs].append(rate)
                print(f"round {rnd + 1}: -j {jobs}: {rate:.1f} boots/min", flush=True)
    j1, j2 = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"{args.profile}: -j 1 {j1:.1f} boots/min, -j 2 {j2:.1f} boots/min, ratio {j2 / j1:.2f}x (target >= 1.7)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
