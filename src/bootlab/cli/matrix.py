"""`bootlab matrix PROFILE --axis KEY=V1,V2 ... -n N`: a trial per cell of the product of the axes.

The table reads like the user's notes ("✅ -cpu cortex-a72 works reliably", "❌ -smp 4 crashes", "⚠️ highmem=off
flaky"), but every mark comes with its counts and interval. Cells that lint refuses are shown as refused and not
booted (``--force`` boots them anyway). ``--rev REV`` boots every cell from a build of REV;
``--until-confident --target RATE`` stops each cell on its own as soon as its SPRT decides.
"""

from __future__ import annotations

import argparse

from bootlab.cli.common import add_profile_args
from bootlab.cli.source import add_rev_arg
from bootlab.cli.trial import add_confidence_args, add_run_args, emit_json, make_lab, progress_for, stopper_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("matrix", help="a trial per combination of profile values: the notes' table, with numbers")
    add_profile_args(p, seed=False)
    p.add_argument(
        "--axis",
        dest="axes",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a profile key and its values (keys as in --set: cpu, smp, machine.highmem, vars.build); repeatable",
    )
    add_run_args(p)
    add_confidence_args(p)
    add_rev_arg(p)
    p.set_defaults(func=run_matrix)


def run_matrix(args: argparse.Namespace) -> int:
    from bootlab.lab.lab import matrix_cells

    matrix_cells(args.profile, list(args.sets), args.axes)  # bad --axis syntax: one line before anything runs
    stopper_from(args)  # bad --until-confident options: one line too
    project = revision = None
    if args.rev:
        from bootlab.cli.source import at_revision
        from bootlab.profile.loader import load_project

        project, revision = at_revision(args, load_project(args.config), args.profile, list(args.sets), args.rev)
    lab = make_lab(args, project, revision)
    try:
        result = lab.matrix(
            args.profile,
            list(args.sets),
            args.axes,
            n=args.n,
            jobs=args.jobs,
            strict=args.strict,
            note=args.note,
            seed_base=args.seed_base,
            progress=progress_for(args, f"matrix {args.profile}"),
            stoppers=(lambda: stopper_from(args, required=True)) if args.until_confident else None,
        )
    finally:
        if lab.store is not None:
            lab.store.close()
    if args.json:
        emit_json(result)
    else:
        from bootlab.lab.results import to_json
        from bootlab.report.text import print_matrix

        print_matrix(to_json(result))
    return 130 if result.status == "interrupted" else 0
