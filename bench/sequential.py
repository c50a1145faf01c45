#!/usr/bin/env python3
"""bench/sequential: boots to a decision with `--until-confident` (Wald's SPRT) against a fixed-N test with the
same error rates (target: at least 40% fewer on average).

Simulated: for several true pass rates, many runs of the SPRT on Bernoulli boots (bootlab.lab.simulate, no QEMU),
reporting the average boots to decision, the fixed N with equal alpha/beta, the saving and the observed error
rates. Real: `--real` also runs `bootlab trial redox-sim --until-confident` a few times on the guest (dsb-wfi,
isb-barriers and icache-fix builds under -cpu max) and reports the boots each took. Not a timed test.

    .venv/bin/python bench/sequential.py [--runs 2000] [--target 0.9] [--real [--real-runs 3]]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def simulate(target: float, rate: float, runs: int, cap: int, seed: int) -> tuple[float, float, float]:
    """(mean boots to decision, fraction 'reached', fraction undecided at the cap)."""
    from bootlab.lab.stats import Sprt

    sprt = Sprt(target)
    rng = random.Random(seed)
    used, reached, undecided = [], 0, 0
    for _ in range(runs):
        p = f = 0
        decision = "undecided"
        while p + f < cap:
            if rng.random() < rate:
                p += 1
            else:
                f += 1
            decision = sprt.decide(p, f)
            if decision != "undecided":
                break
        used.append(p + f)
        reached += decision == "reached"
        undecided += decision == "undecided"
    return statistics.mean(used), reached / runs, undecided / runs


def main() -> int:
    from bootlab.lab.stats import Sprt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--real", action="store_true", help="also run trials on the redox-sim guest")
    ap.add_argument("--real-runs", type=int, default=3)
    ap.add_argument("--config", type=Path, default=ROOT / "guests" / "bootlab.toml")
    args = ap.parse_args()
    sprt = Sprt(args.target)
    fixed = sprt.fixed_n()
    cap = 4 * fixed
    print(sprt.describe())
    print(f"fixed-N test with the same error rates: {fixed} boots\n")
    print(f"{'true rate':>9}  {'SPRT mean boots':>15}  {'saving':>7}  {'P(reached)':>10}  {'undecided':>9}")
    mid = (sprt.p0 + sprt.p1) / 2
    rates = [0.2, 0.5, sprt.p0, mid, sprt.p1, 0.98, 1.0]
    saving: dict[float, float] = {}
    for rate in rates:
        mean, reached, undecided = simulate(args.target, rate, args.runs, cap, seed=int(rate * 1000))
        saving[rate] = 1 - mean / fixed
        print(f"{rate:>9.2f}  {mean:>15.1f}  {saving[rate]:>7.0%}  {reached:>10.1%}  {undecided:>9.1%}")
    print(
        f"\nsaving at p0 and p1 (where the fixed-N test is sized): {(saving[sprt.p0] + saving[sprt.p1]) / 2:.0%}; "
        f"averaged over the rates above: {statistics.mean(saving.values()):.0%} (target >= 40%); "
        f"worst, mid-way between p0 and p1: {saving[mid]:.0%}"
    )
    if args.real:
        real(args)
    return 0


def real(args: argparse.Namespace) -> None:
    from bootlab.host import probe
    from bootlab.lab.lab import ArmSpec, Lab
    from bootlab.lab.results import to_json
    from bootlab.lab.stats import Sprt
    from bootlab.lab.summary import Stopper
    from bootlab.profile.loader import load_project
    from bootlab.store.db import Store

    print("\nredox-sim, -cpu max, --until-confident --target", args.target)
    with tempfile.TemporaryDirectory(prefix="bootlab-bench-") as tmp:
        lab = Lab(load_project(args.config), probe(), Store(Path(tmp)))
        for build in ("icache-fix", "dsb-wfi", "isb-barriers"):
            used = []
            for run in range(args.real_runs):
                stopper = Stopper(sprt=Sprt(args.target))
                spec = ArmSpec("redox-sim", ["cpu=max", f"vars.build={build}"])
                r = to_json(
                    lab.trial(spec, n=4 * Sprt(args.target).fixed_n(), jobs=2, seed_base=100 + run, stopper=stopper)
                )
                seq = r["sequential"]
                used.append(r["boots"])
                print(
                    f"  {build:>12} run {run + 1}: {seq['decision']} after {r['boots']} boots "
                    f"(fixed N {seq['fixed_n']}, {r['passed']}/{r['boots']} passed)",
                    flush=True,
                )
            fixed = Sprt(args.target).fixed_n()
            print(
                f"  {build:>12}: mean {statistics.mean(used):.1f} boots vs fixed {fixed}: "
                f"{1 - statistics.mean(used) / fixed:.0%} fewer"
            )


if __name__ == "__main__":
    sys.exit(main())
