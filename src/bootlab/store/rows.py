"""Store rows as the JSON objects that ``show``, ``history``, ``export`` and reports print and read.

One place for these shapes, so that ``bootlab show b7 --json``, the JUnit export and the HTML report describe a
boot with the same keys, and ``bootlab history --json`` and the history report list the same trials.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootlab.store.db import Store


def boot_json(row: sqlite3.Row) -> dict[str, Any]:
    """A stored boot: ids, seed, outcome, host, image hashes, argv, the verdict and the resolved profile."""
    return {
        "boot": f"b{row['id']}",
        "trial": f"t{row['trial_id']}" if row["trial_id"] is not None else None,
        "idx": row["idx"],
        "profile": row["profile"],
        "seed": row["seed"],
        "outcome": row["outcome"],
        "title": row["title"],
        "created": row["created"],
        "note": row["note"],
        "host": json.loads(row["host"]),
        "images": json.loads(row["images"]),
        "argv": json.loads(row["argv"]),
        "verdict": json.loads(row["verdict"]),
        "resolved_profile": json.loads(row["profile_json"]),
        "log": row["log_path"],
        "revision": json.loads(row["revision"]) if row["revision"] else None,
    }


def boot_sets(store: Store, row: sqlite3.Row) -> list[str] | None:
    """The ``--set`` values a stored boot ran with: its trial's, or a single boot's own; None for a single boot
    stored before bootlab recorded them (its resolved profile still says what it ran with)."""
    if row["trial_id"] is None:
        return list(json.loads(row["sets"])) if row["sets"] is not None else None
    from bootlab.store.db import Ref

    return list(json.loads(store.require(Ref("trial", row["trial_id"]))["sets"] or "[]"))


def revision_text(revisions: list[dict[str, Any]]) -> str:
    from bootlab.source.revision import Revision

    if not revisions:
        return "-"
    first = Revision.from_json(revisions[0])
    text = first.short() if first else "-"
    return text + (f" +{len(revisions) - 1} more" if len(revisions) > 1 else "")


def revision_line(data: dict[str, Any] | None) -> str:
    """Where a boot's images came from, in one line: the revision, and whether bootlab built it apart."""
    from bootlab.source.revision import Revision

    rev = Revision.from_json(data)
    if rev is None or not rev.commit:
        return "unknown (the images are not in a git working tree)"
    where = "bootlab's build of it" if rev.checkout else rev.dir
    return f"{rev.short()} in {where}"


def history_rows(
    store: Store,
    profile: str | None,
    limit: int | None,
    *,
    commits: list[str] | None = None,
    since: float | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for row in store.trials(profile, limit=limit or None, commits=commits, since=since):
        summary = json.loads(row["summary"]) if row["summary"] else {}
        part = None
        if row["matrix_id"] is not None:
            part = f"m{row['matrix_id']}"
        elif row["comparison_id"] is not None:
            part = f"c{row['comparison_id']}/{row['arm']}"
        elif row["bisect_id"] is not None:
            part = f"s{row['bisect_id']}"
        if summary:
            boots, passed = summary.get("boots"), summary.get("passed")
            rate, ci = summary.get("rate"), summary.get("ci95")
        else:  # still running (or killed): count what is stored so far, as its summary will
            from bootlab.lab.summary import Tally
            from bootlab.verdict import Verdict

            strict = bool(json.loads(row["params"] or "{}").get("strict"))
            verdicts = (Verdict.model_validate_json(b["verdict"]) for b in store.boots(row["id"]))
            tally = Tally.of(verdicts, strict=strict)
            boots, passed, rate, ci = tally.boots, tally.passed, tally.rate, list(tally.ci95())
        rows.append(
            {
                "kind": "trial",
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
                "revisions": store.trial_revisions(row["id"]),
                "note": row["note"],
            }
        )
    return rows


def bisect_rows(store: Store, profile: str | None, limit: int | None, since: float | None) -> list[dict[str, Any]]:
    rows = []
    for row in store.bisects(profile, limit=limit or None):
        if since is not None and row["started"] < since:
            continue
        summary = json.loads(row["summary"]) if row["summary"] else {}
        params = json.loads(row["params"] or "{}")
        rows.append(
            {
                "kind": "bisect",
                "bisect": f"s{row['id']}",
                "started": row["started"],
                "profile": row["profile"],
                "status": store.status_of(row),
                "good": params.get("good"),
                "bad": params.get("bad"),
                "direction": "fix" if params.get("fixed") else "regression",
                "decision": summary.get("decision"),
                "culprit": (summary.get("culprit") or {}).get("commit"),
                "best": (summary.get("best") or {}).get("commit"),
                "posterior": summary.get("posterior"),
                "boots": summary.get("boots", 0),
                "note": row["note"],
            }
        )
    return rows
