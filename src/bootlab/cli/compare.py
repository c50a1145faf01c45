"""`bootlab compare A B` / `compare P --a k=v --b k=v` / `compare --trials ID_A ID_B`: is B really better?

Two trials, booted interleaved (A, B, A, B, ...) so that drift on the host hits both alike, then Fisher's exact
test and a sentence: "B passes more often than A (p = 0.00328)" or "not distinguishable yet: about K more boots
each would settle a difference this size". With ``--trials`` nothing boots: two stored trials are compared.

``--rev REV`` boots both arms from a build of REV, ``--a-rev``/``--b-rev`` each arm from its own revision (the
same profile at two commits is a comparison too). ``--until-confident`` makes ``-n`` a cap and stops as soon as
an anytime-valid test settles it (see :mod:`bootlab.lab.sequential`); exit 0 either way, 130 when interrupted.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bootlab.cli.common import add_config_arg, add_set_arg, rate
from bootlab.cli.source import add_rev_arg
from bootlab.cli.trial import add_run_args, emit_json, make_lab, progress_for
from bootlab.errors import UsageError

if TYPE_CHECKING:
    from bootlab.lab.results import ComparisonResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("compare", help="two profiles or variants side by side: rates, difference, Fisher p-value")
    p.add_argument("profiles", nargs="*", metavar="PROFILE", help="A and B, or one profile with --a/--b variants")
    add_config_arg(p)
    add_set_arg(p, "for both arms")
    p.add_argument("--a", dest="a_sets", action="append", default=[], metavar="KEY=VALUE", help="arm A only")
    p.add_argument("--b", dest="b_sets", action="append", default=[], metavar="KEY=VALUE", help="arm B only")
    p.add_argument("--trials", nargs=2, metavar=("ID_A", "ID_B"), help="compare two stored trials; boots nothing")
    add_run_args(p, n_default=0)
    add_rev_arg(p)
    p.add_argument("--a-rev", metavar="REV", help="arm A boots a build of this revision")
    p.add_argument("--b-rev", metavar="REV", help="arm B boots a build of this revision")
    p.add_argument(
        "--until-confident", action="store_true", help="stop once the difference (or its absence) is settled"
    )
    p.add_argument(
        "--margin",
        type=rate,
        metavar="M",
        help="with --until-confident: also stop once the difference is shown to lie within ±M (default 0.10)",
    )
    p.set_defaults(func=run_compare)


def _label(profile: str, own: list[str], other_profile: str) -> str:
    if own:
        return " ".join(own) if profile == other_profile else f"{profile} {' '.join(own)}"
    return profile


def run_compare(args: argparse.Namespace) -> int:
    revs = {"--rev": args.rev, "--a-rev": args.a_rev, "--b-rev": args.b_rev}
    if args.trials:
        if args.profiles or args.a_sets or args.b_sets:
            raise UsageError("compare --trials ID_A ID_B boots nothing: drop the profiles and --a/--b")
        given = [k for k, v in revs.items() if v] + (["--until-confident"] if args.until_confident else [])
        given += ["--set/--check"] if args.sets else []
        if given:
            raise UsageError(f"compare --trials boots nothing: drop {', '.join(given)}")
        return _compare_stored(args)
    if args.rev and (args.a_rev or args.b_rev):
        raise UsageError("--rev is for both arms; give either --rev REV or --a-rev/--b-rev, not both")
    if args.margin is not None and not args.until_confident:
        raise UsageError("--margin only makes sense with --until-confident; add it, or drop --margin")
    a_rev = args.a_rev or args.rev
    b_rev = args.b_rev or args.rev
    if len(args.profiles) == 1:
        if not args.a_sets and not args.b_sets and a_rev == b_rev:
            raise UsageError(
                f"compare {args.profiles[0]}: one profile needs variants, e.g. --a vars.build=dsb-wfi "
                f"--b vars.build=isb-barriers, or two revisions (--a-rev REV --b-rev REV), or two profiles"
            )
        pa = pb = args.profiles[0]
    elif len(args.profiles) == 2:
        pa, pb = args.profiles
    else:
        raise UsageError(
            "compare needs two profiles (compare A B), one profile with --a/--b variants, or --trials ID_A ID_B"
        )
    if args.n < 1:
        raise UsageError("compare needs -n N boots per arm (e.g. -n 20)")
    from bootlab.lab.lab import ArmSpec

    a = ArmSpec(pa, [*args.sets, *args.a_sets], label=_label(pa, args.a_sets, pb) or "A")
    b = ArmSpec(pb, [*args.sets, *args.b_sets], label=_label(pb, args.b_sets, pa) or "B")
    if a.profile == b.profile and a.sets == b.sets and a_rev == b_rev:
        raise UsageError("compare: A and B are the same profile with the same settings; give --a/--b that differ")
    if a_rev or b_rev:
        from bootlab.cli.source import at_revision
        from bootlab.profile.loader import load_project

        base = load_project(args.config)
        for spec, rev, flag in ((a, a_rev, "--a-rev"), (b, b_rev, "--b-rev")):
            if rev:
                spec.project, spec.revision = at_revision(args, base, spec.profile, spec.sets, rev, what=flag)
                if a_rev != b_rev:
                    spec.label = f"{spec.label}@{rev}"
    stopper = None
    if args.until_confident:
        from bootlab.lab.sequential import PAIR_MARGIN, PairStopper

        stopper = PairStopper(margin=args.margin if args.margin is not None else PAIR_MARGIN, strict=args.strict)
    lab = make_lab(args)
    try:
        result = lab.compare(
            a,
            b,
            n=args.n,
            jobs=args.jobs,
            strict=args.strict,
            note=args.note,
            seed_base=args.seed_base,
            progress=progress_for(args, "compare"),
            stopper=stopper,
        )
    finally:
        if lab.store is not None:
            lab.store.close()
    _print(args, result)
    return 130 if result.status == "interrupted" else 0


def _compare_stored(args: argparse.Namespace) -> int:
    from bootlab.lab.lab import comparison, stage_timing, stored_trial
    from bootlab.profile.loader import load_project
    from bootlab.store.db import open_store, parse_ref

    refs = [parse_ref(t) for t in args.trials]
    for ref in refs:
        if ref.kind != "trial":
            raise UsageError(f"compare --trials: {ref} is a {ref.kind}, not a trial; give two trial ids like t12 t13")
    with open_store(load_project(args.config), existing=True) as store:
        ra, records_a = stored_trial(store, refs[0].id)
        rb, records_b = stored_trial(store, refs[1].id)
    label_a = " ".join([ra.profile, *[s for s in ra.sets if s not in rb.sets]])
    label_b = " ".join([rb.profile, *[s for s in rb.sets if s not in ra.sets]])
    if label_a == label_b:
        label_a, label_b = f"{label_a} ({refs[0]})", f"{label_b} ({refs[1]})"
    _print(args, comparison(ra, rb, label_a, label_b, timing=stage_timing(records_a, records_b, label_a, label_b)))
    return 0


def _print(args: argparse.Namespace, result: ComparisonResult) -> None:
    if args.json:
        emit_json(result)
    else:
        from bootlab.lab.results import to_json
        from bootlab.report.text import print_comparison

        print_comparison(to_json(result))
