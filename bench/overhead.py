#!/usr/bin/env python3
"""bench/overhead: `bootlab boot linux-arm64` as a whole process vs raw QEMU killed at its `login:` line.

Paired runs (the order alternates so host drift hits both alike). Raw QEMU gets the same machine (argv from
bootlab's own builder, console on stdio as a run script would have it) and is killed the moment `login:`
appears on its stdout; bootlab pays for Python start-up, profile resolution, lint, the socket console, the
observer, and stopping QEMU over QMP. Prints each pair and the median ratio (issue 9 target <= 1.05; issue 5's was
1.10). Not a timed test.

It also prints the floor: raw QEMU plus the start of a Python process that imports pydantic, validates one model
and imports asyncio (measured in the same run), which a boot must pay before QEMU can start, because the profile
is validated first (lint decides whether the boot may run at all). bootlab's ratio can approach that floor but
not beat it.

    .venv/bin/python bench/overhead.py [-n RUNS] [--profile linux-arm64] [--config guests/bootlab.toml]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def raw_argv(profile: str, config: Path) -> list[str]:
    from bootlab.host import probe
    from bootlab.profile.loader import load_project, resolve_profile
    from bootlab.qemu.invocation import build_invocation

    prof = resolve_profile(profile, project=load_project(config), sets=[])
    return build_invocation(prof, probe(), None).argv


def run_raw(argv: list[str]) -> float:
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    seen = b""
    try:
        while True:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("raw QEMU exited before login:")
            seen = (seen + chunk)[-256:]
            if b"login:" in seen:
                return time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()


def floor_seconds(n: int) -> float:
    """The fastest of ``n`` starts of Python importing pydantic, validating one model and importing asyncio."""
    from startup import PYDANTIC_FLOOR, measure

    walls, _cpus = measure([sys.executable, "-c", f"{PYDANTIC_FLOOR}\nimport asyncio"], n)
    return min(walls)


def run_bootlab(profile: str, config: Path, log: Path) -> float:
    bootlab = Path(sys.executable).parent / "bootlab"
    t0 = time.monotonic()
    done = subprocess.run(
        [str(bootlab), "boot", profile, "--config", str(config), "--json", "--log", str(log)],
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"bootlab boot failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=7, help="paired runs (default 7)")
    ap.add_argument("--profile", default="linux-arm64")
    ap.add_argument("--config", type=Path, default=ROOT / "guests" / "bootlab.toml")
    args = ap.parse_args()
    argv = raw_argv(args.profile, args.config)
    ratios, raws = [], []
    print(f"{'run':>3} {'raw QEMU s':>10} {'bootlab s':>10} {'ratio':>6}")
    for i in range(args.n):
        log = Path("/tmp") / f"bootlab-bench-overhead-{os.getpid()}.log"
        if i % 2 == 0:
            raw = run_raw(argv)
            ours = run_bootlab(args.profile, args.config, log)
        else:
            ours = run_bootlab(args.profile, args.config, log)
            raw = run_raw(argv)
        ratios.append(ours / raw)
        raws.append(raw)
        print(f"{i + 1:>3} {raw:>10.2f} {ours:>10.2f} {ours / raw:>6.3f}", flush=True)
    print(f"median ratio bootlab/raw: {statistics.median(ratios):.3f} (target <= 1.05) over {args.n} pairs")
    floor = floor_seconds(max(args.n, 5))
    raw_median = statistics.median(raws)
    print(
        f"floor: python + pydantic + asyncio takes {floor:.3f} s; (raw + floor) / raw = "
        f"{(raw_median + floor) / raw_median:.3f} at the median raw boot ({raw_median:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
