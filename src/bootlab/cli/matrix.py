"""`bootlab matrix PROFILE --axis KEY=V1,V2 ... -n N`: a trial per cell of the product of the axes.

The table reads like the user's notes ("✅ -cpu cortex-a72 works reliably", "❌ -smp 4 crashes", "⚠️ highmem=off
flaky"), but every mark comes with its counts and interval. Cells that lint refuses are shown as refused and not
booted (``--force`` boots them anyway).
"""

from __future__ import annotations

import argparse

from bootlab.cli.common import add_profile_args
from bootlab.cli.trial import add_run_args, emit_json, make_lab, progress_for


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
    p.set_defaults(func=run_matrix)


def run_matrix(args: argparse.Namespace) -> int:
    from bootlab.lab.lab import matrix_cells

    matrix_cells(args.profile, list(args.sets), args.axes)  # bad --axis syntax: one line before anything runs
    lab = make_lab(args)
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
