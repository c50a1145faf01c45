"""`bootlab history [PROFILE]`: stored trials and bisects, newest first, one line each (id, date, profile,
revision, rate, note).

Matrix cells, comparison arms and the commits a bisect tested are trials too; their line says which matrix,
comparison or bisect they belong to. ``--rev REV`` keeps the trials that booted REV; ``--since REV`` those that
booted REV or a commit after it (a descendant); ``--since DATE`` (2024-05-01, or 2024-05-01T14:00) those started
then or later.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bootlab.cli.common import STORE_CONFIG_HELP, add_config_arg, add_json_arg


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("history", help="stored trials and bisects, newest first: date, revision, rate, note")
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="only this profile's trials")
    add_config_arg(p, STORE_CONFIG_HELP)
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N lines (default 50; 0: all)")
    p.add_argument("--rev", metavar="REV", help="only trials that booted this revision (a commit, tag, branch)")
    p.add_argument("--since", metavar="REV|DATE", help="only trials of REV or later commits, or started since DATE")
    add_json_arg(p, "one JSON list")
    p.set_defaults(func=run_history)


def parse_since(text: str) -> float | None:
    """A date (``2024-05-01``, ``2024-05-01T14:00``, ``2024-05-01 14:00``) as a timestamp, else None."""
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return time.mktime(time.strptime(text, fmt))
        except ValueError:
            continue
    return None


def _repos(args: argparse.Namespace, project: Any, store: Any) -> list[Path]:
    """Where to resolve --rev/--since: the profile's source repository, the project's, and every repository the
    stored boots came from (so `history --rev v1.2` works from anywhere)."""
    from bootlab.source.git import toplevel

    places: list[Path] = []
    if args.profile:
        from bootlab.profile.loader import resolve_profile
        from bootlab.source.revision import source_dir

        try:
            where = source_dir(resolve_profile(args.profile, project=project, seed=0))
        except Exception:  # a profile that no longer resolves still has history
            where = None
        if where is not None:
            places.append(where)
    places.append(project.root)
    rows = store.db.execute("SELECT DISTINCT json_extract(revision, '$.dir') FROM boots WHERE revision IS NOT NULL")
    places += [Path(r[0]) for r in rows if r[0]]
    repos: list[Path] = []
    for place in places:
        repo = toplevel(place) if place.exists() else None
        if repo is not None and repo not in repos:
            repos.append(repo)
    return repos


def _resolve(repos: list[Path], rev: str) -> tuple[Path, str] | None:
    from bootlab.source import git

    for repo in repos:
        proc = git.git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], repo, check=False)
        if proc.returncode == 0:
            return repo, proc.stdout.strip()
    return None


def _commits(args: argparse.Namespace, project: Any, store: Any) -> tuple[list[str] | None, float | None]:
    """The commits ``--rev``/``--since`` select (None: no filter) and the date ``--since`` gives."""
    import re

    from bootlab.errors import UsageError
    from bootlab.source import git

    commits: list[str] | None = None
    since: float | None = None
    repos = _repos(args, project, store) if (args.rev or args.since) else []
    where = f" in {', '.join(map(str, repos))}" if repos else " (no git repository known to resolve it in)"
    if args.rev:
        found = _resolve(repos, args.rev)
        if found is not None:
            commits = [found[1]]
        elif re.fullmatch(r"[0-9a-fA-F]{4,40}", args.rev):
            commits = [args.rev]  # a hash prefix: matched against what the store recorded
        else:
            raise UsageError(f"--rev {args.rev!r}: unknown revision{where}; give a commit hash, tag or branch")
    if args.since:
        since = parse_since(args.since)
        if since is None:
            found = _resolve(repos, args.since)
            if found is None:
                raise UsageError(f"--since {args.since!r}: neither a date (YYYY-MM-DD) nor a known revision{where}")
            repo, base = found
            stored = [
                r[0] for r in store.db.execute("SELECT DISTINCT rev_commit FROM boots WHERE rev_commit IS NOT NULL")
            ]
            later = [c for c in stored if c == base or git.is_ancestor(repo, base, c)]
            commits = later if commits is None else [c for c in commits if any(x.startswith(c) for x in later)]
    return commits, since


def run_history(args: argparse.Namespace) -> int:
    from bootlab.errors import UsageError
    from bootlab.profile.loader import load_project
    from bootlab.store.db import open_store

    if args.limit < 0:
        raise UsageError(f"--limit {args.limit}: give a positive number of trials, or 0 for all")
    from bootlab.store.rows import bisect_rows, history_rows, revision_text

    project = load_project(args.config)
    with open_store(project, existing=True) as store:
        commits, since = _commits(args, project, store)
        rows = history_rows(store, args.profile, args.limit, commits=commits, since=since)
        if commits is None:  # bisects span many revisions: a revision filter lists trials only
            rows += bisect_rows(store, args.profile, args.limit, since)
            rows.sort(key=lambda r: (-r["started"], r["kind"] != "bisect"))
            if args.limit:
                rows = rows[: args.limit]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from bootlab.report.text import rate_text, when

    if not rows:
        what = " matching --rev/--since" if commits is not None or since is not None else ""
        print("nothing stored yet" + (f" for {args.profile}" if args.profile else "") + what + "; run `bootlab trial`")
        return 0
    for r in rows:
        status = "" if r["status"] == "done" else f" [{r['status']}]"
        note = f"  # {r['note']}" if r["note"] else ""
        if r["kind"] == "bisect":
            if r["culprit"]:
                found = (
                    f"first {'good' if r['direction'] == 'fix' else 'bad'} {r['culprit'][:12]} p={r['posterior']:.3f}"
                )
            else:
                found = f"undecided (best {r['best'][:12] if r['best'] else '-'} p={r['posterior'] or 0:.3f})"
            print(
                f"{r['bisect']:>5}  {when(r['started'])}  {r['profile']}  bisect {r['good']}..{r['bad']}: {found}, "
                f"{r['boots']} boots{status}{note}"
            )
            continue
        sets = " ".join(r["sets"])
        part = f" ({r['part_of']})" if r["part_of"] else ""
        line = f"{r['trial']:>5}  {when(r['started'])}  {r['profile']} {sets}".rstrip()
        print(f"{line}  @{revision_text(r['revisions'])}  {rate_text(r)}{status}{part}{note}")
    return 0
