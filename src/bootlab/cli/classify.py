"""`bootlab classify LOGFILE... --pack NAME`: the boot observer over saved console logs, no QEMU.

Useful on logs from before bootlab (CI artefacts, pasted transcripts) and as the golden-test harness. Packs are
compiled once per call, so hundreds of logs cost little more than reading them. One file prints a readable
summary (or one JSON object); several files print one line each (with ``--json``: one JSON object per line,
each with its ``file``). Exit 0 when every log passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bootlab.cli.common import add_config_arg, add_json_arg, project_dir

# fields that mean nothing offline (no clock, no QEMU)
_OFFLINE_FIELDS = ("outcome", "stage", "stages", "title", "fatal_line", "incidents", "death")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("classify", help="classify saved console logs with an OS pack (pass/crash/incomplete)")
    p.add_argument("logs", nargs="+", type=Path, metavar="LOGFILE", help="console log file(s)")
    p.add_argument(
        "--pack",
        required=True,
        metavar="NAME",
        help="pack(s) that read the log, e.g. redox or edk2,redox (project packs/ first, then shipped)",
    )
    add_config_arg(p, "project file whose packs/ directory to search")
    add_json_arg(p, "JSON: one object per log (one per line for several)")
    p.set_defaults(func=classify)


def classify(args: argparse.Namespace) -> int:
    import json

    from bootlab.console.classify import classify_file
    from bootlab.packs.loader import load_packs

    packs = load_packs(args.pack, project_dir(args.config))
    many = len(args.logs) > 1
    worst = 0
    for path in args.logs:
        verdict = classify_file(path, packs)
        worst = max(worst, verdict.exit_code())
        data = verdict.model_dump(mode="json", include=set(_OFFLINE_FIELDS))
        if args.json:
            obj = {"file": str(path), **data} if many else data
            print(json.dumps(obj, indent=None if many else 2))
            continue
        title = f"  {verdict.title}" if verdict.title else ""
        n = len(verdict.incidents)
        inc = f"  ({n} incident{'s' if n != 1 else ''})" if n else ""
        stage = verdict.stage or "-"
        if many:
            print(f"{path}: {verdict.outcome} at {stage}{title}{inc}")
        else:
            from bootlab.report.text import verdict_lines

            print(f"{verdict.outcome} (stage {stage}){title}")
            for line in verdict_lines(data, title=False):  # the offline fields: no clock, no registers
                print(line)
    return worst
