#!/usr/bin/env python3
"""bench/checks: what a check costs after the boot is ready, and what sending a long script adds.

Boots each guest once with checks that alternate a one-line command (``true``: one staging line, then the
framed run) and a 5 KB script (seven staging lines, then the run), so host load hits both alike. A check's cost
is the time from its start to the next one's (staging, run, and the result coming back). Prints the median cost
of each, their ratio and the cost of one more ~900-byte staging line. Not a timed test.

    .venv/bin/python bench/checks.py [-n ROUNDS] [--guest linux-arm64 --guest redox-sim] [--config FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/bisect.py is named like the standard library's `bisect` (which `random`, and so `tempfile` and `secrets`,
# import): keep this folder off the path
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402


def script(path: Path) -> Path:
    lines = ["n=0", *(f"n=$((n + {i}))  # step {i:03d} of a long check script, padded" for i in range(110))]
    path.write_text("\n".join([*lines, 'echo "sum=$n"']) + "\n")
    return path


def bench(guest: str, config: Path, rounds: int, big: Path) -> tuple[list[float], list[float], int]:
    from bootlab.console.shell import STAGE_CHUNK
    from bootlab.lab.boot import boot
    from bootlab.profile.loader import load_project, resolve_profile

    sets = []
    for i in range(rounds):
        pair = [f'checks.small{i}={{command = "true"}}', f'checks.big{i}={{script = "{big}"}}']
        sets += pair if i % 2 == 0 else pair[::-1]
    profile = resolve_profile(guest, project=load_project(config), sets=sets, seed=1)
    verdict = boot(profile)
    if verdict.outcome != "pass":
        raise SystemExit(f"{guest}: {verdict.outcome}: {verdict.title}")
    starts = [c.t or 0.0 for c in verdict.checks] + [verdict.duration_s or 0.0]
    cost = {c.name: starts[i + 1] - starts[i] for i, c in enumerate(verdict.checks)}
    chunks = -(-len(big.read_bytes()) * 4 // 3 // STAGE_CHUNK)
    return (
        [v for k, v in cost.items() if k.startswith("small")],
        [v for k, v in cost.items() if k.startswith("big")],
        chunks,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--rounds", type=int, default=5)
    ap.add_argument("--guest", action="append", default=[])
    ap.add_argument("--config", type=Path, default=ROOT / "guests" / "bootlab.toml")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = script(Path(tmp) / "long-check.sh")
        for guest in args.guest or ["linux-arm64", "redox-sim"]:
            small, large, chunks = bench(guest, args.config, args.rounds, big)
            s, b = statistics.median(small), statistics.median(large)
            print(
                f"checks {guest} small_s={s:.3f} script{len(big.read_bytes()) // 1024}k_s={b:.3f} ratio={b / s:.1f} "
                f"per_extra_line_s={(b - s) / (chunks - 1):.3f} lines={chunks} rounds={len(small)}"
            )


if __name__ == "__main__":
    main()
