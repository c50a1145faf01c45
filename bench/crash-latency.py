#!/usr/bin/env python3
"""bench/crash-latency: from the fatal line's arrival to the verdict, on the `panic` guest (target <= 0.5 s median).

Two numbers per boot: ``verdict`` is the verdict's own clock (duration_s - fatal_t: the crash decided, registers
read, QEMU told to quit), and ``returned`` is wall time from the observer reporting the fatal line to boot()
returning (adds closing the process group). Not a timed test.

    .venv/bin/python bench/crash-latency.py [-n RUNS] [--profile linux-arm64] [--config guests/bootlab.toml]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    from bootlab.lab.boot import BootOptions, boot
    from bootlab.profile.loader import load_project, resolve_profile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--profile", default="linux-arm64")
    ap.add_argument("--set", dest="sets", action="append", default=["vars.mode=panic"])
    ap.add_argument("--config", type=Path, default=ROOT / "guests" / "bootlab.toml")
    args = ap.parse_args()
    project = load_project(args.config)
    verdicts, returned = [], []
    print(f"{'run':>3} {'outcome':>8} {'verdict s':>9} {'returned s':>10}  title")
    for i in range(args.n):
        prof = resolve_profile(args.profile, project=project, sets=args.sets)
        seen: list[float] = []

        def hook(kind: str, _text: str, _t: float, seen: list[float] = seen) -> None:
            if kind == "fatal":
                seen.append(time.monotonic())

        v = boot(prof, options=BootOptions(log_path=Path(f"/tmp/bootlab-bench-crash-{i}.log"), on_event=hook))
        end = time.monotonic()
        if v.outcome != "crash" or v.fatal_t is None or v.duration_s is None or not seen:
            print(f"{i + 1:>3} {v.outcome:>8} (not a crash: {v.title})")
            continue
        verdicts.append(v.duration_s - v.fatal_t)
        returned.append(end - seen[0])
        print(f"{i + 1:>3} {v.outcome:>8} {verdicts[-1]:>9.3f} {returned[-1]:>10.3f}  {v.title}", flush=True)
    if verdicts:
        print(
            f"median fatal line -> verdict: {statistics.median(verdicts):.3f} s; -> boot() returned: "
            f"{statistics.median(returned):.3f} s (target <= 0.5 s) over {len(verdicts)} crashes"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
