"""`bootlab history [PROFILE]`: stored trials, newest first, one line each (id, date, profile, rate, note).

Matrix cells and comparison arms are trials too; their line says which matrix or comparison they belong to.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("history", help="stored trials, newest first: date, profile, rate and interval, note")
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="only this profile's trials")
    p.add_argument("--config", type=Path, metavar="FILE", help="project file (decides where the store is)")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N trials (default 50; 0: all)")
    p.add_argument("--json", action="store_true", help="one JSON list")
    p.set_defaults(func=run_history)


def history_rows(store: Any, profile: str | None, limit: int | None) -> list[dict[str, Any]]:
    rows = []
    for row in store.trials(profile, limit=limit or None):
        summary = json.loads(row["summary"]) if row["summary"] else {}
        part = None
        if row["matrix_id"] is not None:
            part = f"m{row['matrix_id']}"
        elif row["comparison_id"] is not None:
            part = f"c{row['comparison_id']}/{row['arm']}"
        if summary:
            boots, passed = summary.get("boots"), summary.get("passed")
            rate, ci = summary.get("rate"), summary.get("ci95")
        else:  # still running (or killed): count what is stored so far
            from bootlab.lab.stats import wilson

            outcomes = [b["outcome"] for b in store.boots(row["id"])]
            counted = [o for o in outcomes if o not in ("qemu-error", "infra-error")]
            boots, passed = len(counted), counted.count("pass")
            rate = passed / boots if boots else None
            ci = list(wilson(passed, boots))
        rows.append(
            {
                "trial": f"t{row['id']}",
                "started": row["started"],
                "profile": row["profile"],
                "sets": json.loads(row["sets"] or "[]"),
                "status": store.status_of(row),
                "boots": boots,
                "passed": passed,
                "rate": rate,
                "ci95": ci,
                "part_of": part,
                "note": row["note"],
            }
        )
    return rows


def run_history(args: argparse.Namespace) -> int:
    from bootlab.errors import UsageError
    from bootlab.profile.loader import load_project
    from bootlab.store.db import open_store

    if args.limit < 0:
        raise UsageError(f"--limit {args.limit}: give a positive number of trials, or 0 for all")
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
