"""`bootlab bisect PROFILE --good REV --bad REV`: which commit made it fail (``--fixed``: pass), with a confidence.

Each commit the search picks is built in bootlab's own checkout (the user's tree is never touched) and booted in
batches of ``-j``; the answer is the first bad (or good) commit with its posterior probability. Exit 0 when a
commit reached ``--confidence``, 1 when none did (budget spent, or only unbuildable commits left to tell apart),
130 when interrupted (``--resume ID`` carries on without repeating a boot), 2 for bad input, 3 when bootlab could
not run the boots (a build-error is a skipped commit, not this; a cluster whose scheduler went away is).

With ``--cluster`` (or ``$BOOTLAB_CLUSTER``, or ``cluster =`` in bootlab.toml) the lab is a cluster's, built by
:func:`bootlab.cli.trial.make_lab` as for trials: each batch's boots run on its workers, and a batch is as many
boots as their slots take at once unless ``-j`` says otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bootlab.cli.common import add_config_arg, add_set_arg, count, fraction
from bootlab.cli.trial import add_lab_args, emit_json

#: What ``--resume`` refuses (option -> argparse dest): the search's own settings, which the stored boots were
#: judged and seeded by. -j and --max-boots change nothing already learnt, so a resumed bisect may take new ones.
RESUME_KEEPS = {
    "PROFILE": "profile",
    "--good": "good",
    "--bad": "bad",
    "--fixed": "fixed",
    "--title": "title",
    "--set/--check": "sets",
    "--confidence": "confidence",
    "--strict": "strict",
    "--seed-base": "seed_base",
    "--note": "note",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bisect",
        help="find the commit that made boots fail (or pass, --fixed), robust to flaky boots, with a confidence",
    )
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="a profile with a build table")
    add_config_arg(p)
    add_set_arg(p)
    p.add_argument("--good", metavar="REV", help="a revision that boots fine (the older end, unless --fixed)")
    p.add_argument("--bad", metavar="REV", help="a revision that fails (the newer end, unless --fixed)")
    p.add_argument("--fixed", action="store_true", help="find the commit that made it pass (bad is the older end)")
    p.add_argument("--title", metavar="REGEX", help="only failures whose title matches count; others are ignored")
    # defaults None, so that --resume can tell what was given (see RESUME_KEEPS); BisectSpec holds the defaults
    p.add_argument(
        "--confidence", type=fraction, metavar="P", help="stop at this posterior, in [0.5, 1) (default 0.95)"
    )
    p.add_argument(
        "--max-boots", type=count, metavar="N", help="boot budget (default 1000; with --resume, the new total budget)"
    )
    p.add_argument("--resume", metavar="ID", help="carry on an interrupted bisect (s4) without repeating boots")
    add_lab_args(
        p,
        jobs_help="boots per batch, at once (default: cores // vCPUs; on a cluster, its workers' slots; "
        "--resume may change it)",
        strict_help="a boot that passed with incidents shows the symptom",
        note_help="a note stored with the bisect",
    )
    p.set_defaults(func=run_bisect)


def run_bisect(args: argparse.Namespace) -> int:
    import json

    from bootlab.cli.trial import make_lab
    from bootlab.errors import UsageError
    from bootlab.lab.bisect import CONFIDENCE, MAX_BOOTS, BisectSpec
    from bootlab.profile.loader import load_project
    from bootlab.report.bisect import make_bisect_progress
    from bootlab.store.db import open_store, parse_ref

    progress = make_bisect_progress(quiet=args.quiet)
    if args.resume:
        # "given" is anything but the unset default: `--seed-base 0` is given (0 == False, so `not in` would miss it)
        given = [
            name
            for name, dest in RESUME_KEEPS.items()
            if (value := getattr(args, dest)) is not None and value is not False and value != []
        ]
        if given:
            raise UsageError(
                f"bisect --resume {args.resume} carries on with the bisect's own settings (only -j and --max-boots "
                f"may change); drop {', '.join(given)}"
            )
        ref = parse_ref(args.resume)
        if ref.kind != "bisect":
            raise UsageError(
                f"--resume {args.resume}: {ref} is a {ref.kind}; give a bisect id like s4 (`bootlab history`)"
            )
        project = load_project(args.config)
        with open_store(project, existing=True) as store:
            row = store.require(ref)
            found_in = store.root
        config = json.loads(row["params"] or "{}").get("config")
        if args.config is None and config and Path(config).is_file():
            project = load_project(Path(config))
        lab = make_lab(args, project, store_root=found_in)  # on in the store that holds it, whatever project says
        try:
            result = lab.resume_bisect(ref.id, progress=progress, jobs=args.jobs, max_boots=args.max_boots)
        finally:
            _close(lab)
        return _show(args, result)
    missing = [name for name, v in (("PROFILE", args.profile), ("--good", args.good), ("--bad", args.bad)) if not v]
    if missing:
        raise UsageError(
            f"bisect needs {', '.join(missing)}: bootlab bisect PROFILE --good REV --bad REV (or --resume ID)"
        )
    spec = BisectSpec(
        profile=args.profile,
        sets=list(args.sets),
        good=args.good,
        bad=args.bad,
        fixed=args.fixed,
        title=args.title,
        confidence=CONFIDENCE if args.confidence is None else args.confidence,
        max_boots=MAX_BOOTS if args.max_boots is None else args.max_boots,
        jobs=args.jobs,
        strict=args.strict,
        seed_base=args.seed_base,
        note=args.note,
    )
    lab = make_lab(args)
    try:
        result = lab.bisect(spec, progress=progress)
    finally:
        _close(lab)
    return _show(args, result)


def _close(lab: Any) -> None:
    if lab.store is not None:
        lab.store.close()


def _show(args: argparse.Namespace, result: dict[str, Any]) -> int:
    if args.json:
        emit_json(result)
    else:
        from bootlab.report.bisect import print_bisect

        print_bisect(result)
    if result["status"] == "interrupted":
        return 130
    return 0 if result["decision"] == "found" else 1
