#!/usr/bin/env python3
"""bench/linux_titles: the linux pack against syzkaller's titles on the dev set, and how fast it classifies.

Over ``../shared/samples/linux-syzkaller/`` (or ``$BOOTLAB_LINUX_SAMPLES``), each log is classified as
``bootlab classify`` does it (the header is not shown to the pack) and compared with the title syzkaller
computes:

- recall: logs with a syzkaller title where bootlab found a report (a fatal finding or an incident);
- specificity: logs without one that bootlab leaves clean (no crash; and no finding at all);
- pairs: of all pairs of logs with the same syzkaller title, how many get the same bootlab title; of pairs with
  different syzkaller titles, how many get different ones (a log with no bootlab title agrees with nothing);
- speed: logs/s and MB/s of classifying the whole set (packs compiled once, as ``bootlab classify`` does;
  best of ``--rounds``), and the wall time of one ``bootlab classify`` process over all the files.
  ``--against SRC`` times another source tree (e.g. ``/work/main/src``) in the same run, interleaved round by
  round, and prints the ratios: the baseline shares the machine's load.

    .venv/bin/python bench/linux_titles.py [--rounds 5] [--against OTHER/src] [--misses] [--splits] [--merges]

Not a test: it prints numbers; the goals (recall >= 95%, clean logs clean, same-title pairs >= 80%,
different-title pairs >= 95%, no more than 10% slower) are judged by a reader.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

# bench/bisect.py is named like the standard library's `bisect` (which `random`, and so `tempfile` and `secrets`,
# import): keep this folder off the path, or a tree timed with --against whose import chain reaches `random` runs
# bench/bisect.py instead (it imports modules that tree may not have)
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "tests"))

from linux_samples import Sample, read_samples, report_title, samples_dir  # noqa: E402


def classify_all(samples: list[Sample]) -> list[tuple[str, str | None]]:
    from bootlab.console.classify import classify_text
    from bootlab.packs.loader import load_packs

    packs = load_packs(["linux"])
    return [report_title(classify_text(s.log, packs)) for s in samples]


def time_round(samples: list[Sample]) -> float:
    """Seconds to classify every log once (packs already compiled)."""
    from bootlab.console.classify import classify_text
    from bootlab.packs.loader import load_packs

    packs = load_packs(["linux"])
    t0 = time.perf_counter()
    for s in samples:
        classify_text(s.log, packs)
    return time.perf_counter() - t0


def pair_agreement(expected: list[str], got: list[str | None]) -> tuple[int, int, int, int]:
    """(same-title pairs, of which bootlab agrees; different-title pairs, of which bootlab differs)."""
    same = same_ok = diff = diff_ok = 0
    for i, j in combinations(range(len(expected)), 2):
        if expected[i] == expected[j]:
            same += 1
            same_ok += got[i] is not None and got[i] == got[j]
        else:
            diff += 1
            diff_ok += got[i] is None or got[j] is None or got[i] != got[j]
    return same, same_ok, diff, diff_ok


def pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.1f}% ({a}/{b})" if b else "n/a"


def cli_round(src: Path | None, files: list[Path]) -> float:
    """Seconds for one `bootlab classify FILES... --pack linux --json` process (start-up included; the files
    keep their syzkaller header, a few lines the pack reads too)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bootlab", "classify", *map(str, files), "--pack", "linux", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - t0


def other_tree_round(src: Path, directory: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "BOOTLAB_LINUX_SAMPLES": str(directory)}
    out = subprocess.run(
        [sys.executable, __file__, "--time-one-round"], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"--against {src}: timing that tree failed ({last}); is it a bootlab src/ directory?")
    return float(out.stdout.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None, help="the dev set (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (best is kept)")
    ap.add_argument("--against", type=Path, metavar="SRC", help="also time this source tree, interleaved")
    ap.add_argument("--misses", action="store_true", help="list reports bootlab did not find")
    ap.add_argument("--splits", action="store_true", help="list same-title groups bootlab splits")
    ap.add_argument("--merges", action="store_true", help="list bootlab titles given to different bugs")
    ap.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    ap.add_argument("--time-one-round", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    directory = args.dir or samples_dir()
    if not directory.is_dir():
        print(f"no dev set at {directory}; set BOOTLAB_LINUX_SAMPLES or pass --dir", file=sys.stderr)
        return 2
    if args.against is not None and not (args.against / "bootlab").is_dir():
        print(f"--against {args.against}: no bootlab package there; pass a tree's src/ directory", file=sys.stderr)
        return 2
    samples = read_samples(directory)
    if args.time_one_round:
        time_round(samples)  # warm-up: compile the packs, fill caches
        print(time_round(samples))
        return 0

    got = classify_all(samples)
    reports = [(s, g) for s, g in zip(samples, got, strict=True) if s.title]
    clean = [(s, g) for s, g in zip(samples, got, strict=True) if not s.title]
    found = sum(g[0] != "none" for _, g in reports)
    fatal = sum(g[0] == "fatal" for _, g in reports)
    clean_no_crash = sum(g[0] != "fatal" for _, g in clean)
    clean_nothing = sum(g[0] == "none" for _, g in clean)
    same, same_ok, diff, diff_ok = pair_agreement([s.title or "" for s, _ in reports], [g[1] for _, g in reports])

    size = sum(len(s.log.encode()) for s in samples)
    time_round(samples)
    rounds: list[float] = []
    others: list[float] = []
    cli: list[float] = []
    cli_others: list[float] = []
    files = [s.path for s in samples]
    for _ in range(args.rounds):
        rounds.append(time_round(samples))
        cli.append(cli_round(None, files))
        if args.against:
            others.append(other_tree_round(args.against, directory))
            cli_others.append(cli_round(args.against, files))
    best = min(rounds)
    result: dict[str, object] = {
        "logs": len(samples),
        "reports": len(reports),
        "clean": len(clean),
        "recall": found / len(reports),
        "found": found,
        "found_fatal": fatal,
        "clean_not_crash": clean_no_crash,
        "clean_no_finding": clean_nothing,
        "same_pairs": same,
        "same_pairs_agree": same_ok,
        "diff_pairs": diff,
        "diff_pairs_differ": diff_ok,
        "distinct_titles": len({g[1] for _, g in reports if g[1]}),
        "expected_distinct_titles": len({s.title for s, _ in reports}),
        "seconds": best,
        "logs_per_s": len(samples) / best,
        "mb_per_s": size / best / 1e6,
    }
    result["cli_seconds"] = min(cli)
    result["cli_logs_per_s"] = len(samples) / min(cli)
    if others:
        result["against"] = str(args.against)
        result["against_seconds"] = min(others)
        result["ratio"] = best / min(others)
        result["cli_against_seconds"] = min(cli_others)
        result["cli_ratio"] = min(cli) / min(cli_others)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"dev set: {directory} ({len(samples)} logs, {size / 1e6:.2f} MB)")
        print(f"recall      {pct(found, len(reports))} reports found ({fatal} fatal, {found - fatal} incident only)")
        print(f"specificity {pct(clean_no_crash, len(clean))} clean logs not called a crash; ", end="")
        print(f"{pct(clean_nothing, len(clean))} with no finding at all")
        print(f"same title  {pct(same_ok, same)} pairs get the same bootlab title")
        print(f"diff title  {pct(diff_ok, diff)} pairs get different bootlab titles")
        print(
            f"titles      {result['distinct_titles']} distinct bootlab titles for {len(reports)} reports "
            f"({result['expected_distinct_titles']} distinct syzkaller titles)"
        )
        print(
            f"speed       {result['logs_per_s']:.0f} logs/s, {result['mb_per_s']:.2f} MB/s "
            f"(best of {args.rounds}: {best:.3f}s)"
        )
        print(
            f"cli         bootlab classify (one process, {len(files)} files): {min(cli):.3f}s, "
            f"{result['cli_logs_per_s']:.0f} logs/s"
        )
        if others:
            print(
                f"vs {args.against}: {min(others):.3f}s; ratio this/that = {result['ratio']:.3f}; "
                f"cli {min(cli_others):.3f}s, ratio {result['cli_ratio']:.3f}"
            )
    if args.misses:
        print("\nreports not found:")
        for s, g in reports:
            if g[0] == "none":
                print(f"  {s.name}: {s.title}")
        print("clean logs with a finding:")
        for s, g in clean:
            if g[0] != "none":
                print(f"  {s.name}: {g[0]} {g[1]}")
    if args.splits:
        print("\nsame syzkaller title, several bootlab titles:")
        groups: dict[str, list[tuple[str, str | None]]] = {}
        for s, g in reports:
            groups.setdefault(s.title or "", []).append((s.name, g[1]))
        for title, members in sorted(groups.items()):
            if len(members) > 1 and len({m[1] for m in members}) > 1:
                print(f"  {title}")
                for name, t in members:
                    print(f"      {name}: {t}")
    if args.merges:
        print("\none bootlab title, several syzkaller titles:")
        by_got: dict[str, Counter[str]] = {}
        for s, g in reports:
            if g[1]:
                by_got.setdefault(g[1], Counter())[s.title or ""] += 1
        for t, titles in sorted(by_got.items()):
            if len(titles) > 1:
                print(f"  {t}")
                for title, n in titles.most_common():
                    print(f"      {n} x {title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
