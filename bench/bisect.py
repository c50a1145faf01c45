"""Simulated bisections: bootlab's Bayesian change-point search against syzkaller's rule, on flaky regressions.

    .venv/bin/python bench/bisect.py                  # 64 commits, 1,000 runs per scenario (a few minutes)
    .venv/bin/python bench/bisect.py --runs 200       # quicker

Each run puts the culprit uniformly at one of the 64 commits after the good end (so there are 64 candidates, as
for a 6-step ``git bisect``) and draws every boot from the scenario's pass rates with a seeded generator, so the
whole bench replays exactly. Per scenario and method it prints one line

    bisect SCENARIO METHOD right=R median_boots=M p90_boots=P [stated=S budget=B]

``right`` is the share of runs whose answer is the true culprit (an inconclusive answer counts as wrong: for
bootlab, one whose posterior stayed below the confidence when the budget ran out, as ``bootlab bisect`` then
names no culprit); ``stated`` (bootlab only) is the mean posterior bootlab gave its best guess, to read against
``right``: a calibrated search has ``right`` >= ``stated`` >= the asked confidence. After the lines: a
calibration table (stated confidence in bins against the realised accuracy in each) and the two goals of the
issue checked.

bootlab runs :class:`bootlab.lab.changepoint.ChangePoint` itself (the same object ``bootlab bisect`` drives), one
boot per batch (``-j 1``) and stops at posterior >= 0.95 or when its budget is spent: by default
``bootlab bisect``'s own (``--max-boots``, 1000), printed on each of its lines (``--budget 200`` shows what a
smaller one costs; ``--scenario 100-90`` runs that one alone). syzkaller's rule has no budget.

syzkaller's rule, as syzkaller's ``pkg/bisect`` does it and as the issue describes it: 10 boots per commit, 20
once the bug has shown itself flaky (a tested commit with both crashes and passes); a commit with 0 crashes is
"no crash", with >= 2 crashes "crash", with exactly 1 it is skipped (neither verdict holds). Both ends are tested
first, the crashing end first (syzkaller checks that the crash reproduces and that the other end is clean) and the
search stops when either end disagrees. Then it halves like ``git bisect``: boot the middle commit of the
remaining range, move the bound, skip to the nearest untested commit on a skip, answer when one commit is left.
"""

from __future__ import annotations

import os
import sys

# This file is named like the standard library's `bisect` (the issue names it), and every script run from bench/
# has bench/ first on sys.path. So:
# - imported as `bisect` (another bench script, or the `random`/`statistics` it imports, asking for the standard
#   module): be the standard module, so every bench script runs as `python bench/NAME.py`;
# - run as this script: drop bench/ from the path before `random` is imported, for the same reason.
if __name__ == "bisect":
    import importlib.util
    import sysconfig

    _spec = importlib.util.spec_from_file_location("bisect", os.path.join(sysconfig.get_path("stdlib"), "bisect.py"))
    assert _spec is not None and _spec.loader is not None
    _stdlib = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_stdlib)
    sys.modules["bisect"] = _stdlib  # what `import bisect` hands to the importer once this body has run
elif (
    not sys.flags.safe_path
    and sys.path
    and os.path.realpath(sys.path[0] or ".") == os.path.dirname(os.path.realpath(__file__))
):
    del sys.path[0]

import argparse
import random
import statistics
import time
from dataclasses import dataclass

from bootlab.lab.changepoint import ChangePoint, Priors


@dataclass(frozen=True)
class Scenario:
    name: str
    pass_old: float  # pass rate before the change (of the ancestor end)
    pass_new: float  # after it

    @property
    def fixed(self) -> bool:
        """A fix: the old side fails more than the new side (``bootlab bisect --fixed``)."""
        return self.pass_old < self.pass_new


SCENARIOS = [
    Scenario("100-60", 1.00, 0.60),
    Scenario("95-60", 0.95, 0.60),
    Scenario("100-90", 1.00, 0.90),
    Scenario("fix-60-100", 0.60, 1.00),
]


@dataclass
class Outcome:
    right: bool
    boots: int
    stated: float | None = None


def boot_fails(rng: random.Random, sc: Scenario, commit: int, culprit: int) -> bool:
    rate = sc.pass_new if commit >= culprit else sc.pass_old
    return rng.random() >= rate


def run_bootlab(rng: random.Random, sc: Scenario, n: int, culprit: int, confidence: float, budget: int) -> Outcome:
    priors = Priors().swapped() if sc.fixed else Priors()
    cp = ChangePoint(n + 1, priors)
    while cp.boots < budget:
        k, p = cp.best()
        if p >= confidence:
            break
        i = cp.next_commit(1)
        if i is None:
            break
        failed = boot_fails(rng, sc, i, culprit)
        cp.record(i, int(failed), int(not failed))
    k, p = cp.best()
    # below the confidence bootlab names no culprit (decision "budget"): its best guess is not an answer
    return Outcome(k == culprit and p >= confidence, cp.boots, p)


def run_syzkaller(rng: random.Random, sc: Scenario, n: int, culprit: int) -> Outcome:
    boots = 0
    per_commit = 10
    flaky = False

    def verdict(commit: int) -> str:
        """'crash', 'clean' or 'skip' after a round of boots of ``commit``."""
        nonlocal boots, per_commit, flaky
        crashes = sum(boot_fails(rng, sc, commit, culprit) for _ in range(per_commit))
        boots += per_commit
        if 0 < crashes < per_commit and not flaky:
            flaky, per_commit = True, 20
        if crashes == 0:
            return "clean"
        return "crash" if crashes >= 2 else "skip"

    # the crashing end first, then the other end (syzkaller: "crash reproduces", then the release/HEAD is clean)
    crash_end, clean_end = (0, n) if sc.fixed else (n, 0)
    if verdict(crash_end) != "crash" or verdict(clean_end) != "clean":
        return Outcome(False, boots)
    # new side = the side of commit n; a commit is "new" when its verdict matches the new end's
    new_verdict = "clean" if sc.fixed else "crash"
    lo, hi = 0, n  # lo: known old, hi: known new; the culprit is in lo+1..hi
    skipped: set[int] = set()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        candidates = [c for c in range(lo + 1, hi) if c not in skipped]
        if not candidates:
            return Outcome(False, boots)  # only skipped commits are left: inconclusive
        mid = min(candidates, key=lambda c: (abs(c - mid), c))
        v = verdict(mid)
        if v == "skip":
            skipped.add(mid)
        elif v == new_verdict:
            hi = mid
        else:
            lo = mid
    return Outcome(hi == culprit, boots)


def percentile(values: list[int], q: float) -> float:
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def main() -> int:
    # here, not at the top: imported as the standard `bisect` (see above), this file's body still runs, inside the
    # `random` module's own import; bootlab.lab.bisect brings pydantic, which imports `random` again (half-made)
    from bootlab.lab.bisect import MAX_BOOTS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1000, help="runs per scenario and method (default 1000)")
    ap.add_argument("--commits", type=int, default=64, help="candidate commits (default 64)")
    ap.add_argument("--confidence", type=float, default=0.95)
    ap.add_argument(
        "--budget",
        type=int,
        default=MAX_BOOTS,
        help=f"bootlab's boot budget per run (default {MAX_BOOTS}, as bisect's)",
    )
    ap.add_argument(
        "--scenario", action="append", choices=[sc.name for sc in SCENARIOS], help="only this one (repeatable)"
    )
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    t0 = time.monotonic()
    results: dict[tuple[str, str], list[Outcome]] = {}
    scenarios = [sc for sc in SCENARIOS if not args.scenario or sc.name in args.scenario]
    for sc in scenarios:
        for method in ("bootlab", "syzkaller"):
            rng = random.Random(f"{args.seed}:{sc.name}:{method}")
            outs = []
            for _ in range(args.runs):
                culprit = rng.randint(1, args.commits)
                if method == "bootlab":
                    outs.append(run_bootlab(rng, sc, args.commits, culprit, args.confidence, args.budget))
                else:
                    outs.append(run_syzkaller(rng, sc, args.commits, culprit))
            results[(sc.name, method)] = outs
            right = sum(o.right for o in outs) / len(outs)
            boots = [o.boots for o in outs]
            line = (
                f"bisect {sc.name} {method} right={right:.3f} median_boots={statistics.median(boots):g} "
                f"p90_boots={percentile(boots, 90):g}"
            )
            if method == "bootlab":
                stated = statistics.fmean(o.stated or 0.0 for o in outs)
                line += f" stated={stated:.3f} budget={args.budget}"
            print(line, flush=True)

    print(f"\ncalibration of bootlab (stated posterior of its answer vs the share right), {args.runs} runs each:")
    bins = [(0.0, 0.95), (0.95, 0.97), (0.97, 0.99), (0.99, 1.0001)]
    for sc in scenarios:
        outs = results[(sc.name, "bootlab")]
        cells = []
        for lo, hi in bins:
            sel = [o for o in outs if o.stated is not None and lo <= o.stated < hi]
            if sel:
                acc = sum(o.right for o in sel) / len(sel)
                cells.append(f"[{lo:.2f},{min(hi, 1):.2f}) n={len(sel)} right={acc:.3f}")
        print(f"  {sc.name}: " + "; ".join(cells))

    print("\ngoals:")
    ok_right = all(sum(o.right for o in results[(sc.name, "bootlab")]) / args.runs >= 0.95 for sc in scenarios)
    print(f"  bootlab right >= 0.95 in every scenario run (budget {args.budget}): {'yes' if ok_right else 'NO'}")
    for sc in scenarios:
        syz = results[(sc.name, "syzkaller")]
        syz_right = sum(o.right for o in syz) / args.runs
        ours = statistics.median(o.boots for o in results[(sc.name, "bootlab")])
        theirs = statistics.median(o.boots for o in syz)
        if syz_right >= 0.95:
            ratio = ours / theirs
            verdict = "yes" if ratio <= 0.5 else "NO"
            print(
                f"  {sc.name}: median boots bootlab/syzkaller = {ours:g}/{theirs:g} = {ratio:.2f} (<= 0.5: {verdict})"
            )
        else:
            print(f"  {sc.name}: syzkaller's rule is right in {syz_right:.1%} of runs (< 95%): no boot goal applies")
    print(f"\n({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
