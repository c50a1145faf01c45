"""`bootlab history [PROFILE]`: stored trials, newest first, one line each (id, date, profile, rate, note).

Matrix cells and comparison arms are trials too; their line says which matrix or comparison they belong to.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("history", help="stored trials, newest first: date, profile, rate and interval, note")
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="only this profile's trials")
    p.add_argument("--config", type=Path, metavar="FILE", help="project file (decides where the store is)")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N trials (default 50; 0: all)")
    p.add_argument("--json", action="store_true", help="one JSON list")
    p.set_defaults(func=run_history)


def run_history(args: argparse.Namespace) -> int:
    from bootlab.errors import UsageError
    from bootlab.profile.loader import load_project
    from bootlab.store.db import open_store

    if args.limit < 0:
        raise UsageError(f"--limit {args.limit}: give a positive number of trials, or 0 for all")
    from bootlab.store.rows import history_rows

    with open_store(load_project(args.config)) as store:
        rows = history_rows(store, args.profile, args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from bootlab.report.text import rate_text, when

    if not rows:
        print("no trials stored yet" + (f" for {args.profile}" if args.profile else "") + "; run `bootlab trial`")
        return 0
    for r in rows:
        sets = " ".join(r["sets"])
        status = "" if r["status"] == "done" else f" [{r['status']}]"
        part = f" ({r['part_of']})" if r["part_of"] else ""
        note = f"  # {r['note']}" if r["note"] else ""
        line = f"{r['trial']:>5}  {when(r['started'])}  {r['profile']} {sets}".rstrip()
        print(f"{line}  {rate_text(r)}{status}{part}{note}")
    return 0
