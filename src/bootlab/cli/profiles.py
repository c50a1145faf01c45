"""`bootlab profiles`: list project profiles and presets; `bootlab profiles show NAME` prints one resolved."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profiles", help="list profiles and presets, or show one resolved")
    p.add_argument("show", nargs="?", metavar="NAME", help="show this profile fully resolved")
    p.add_argument("--config", type=Path, metavar="FILE")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bootlab.profile.loader import list_profiles, load_project, resolve_profile

    project = load_project(args.config)
    if args.show:
        prof = resolve_profile(args.show, project=project, sets=args.sets, keep_builtins=True)
        data = prof.model_dump(mode="json", exclude={"seed", "boot"})
        print(json.dumps(data, indent=2))
        return 0
    rows = list_profiles(project)
    if args.json:
        print(json.dumps([{"name": n, "source": s, "description": d} for n, s, d in rows], indent=2))
        return 0
    width = max(len(n) for n, _, _ in rows)
    for name, source, desc in rows:
        print(f"{name:<{width}}  {'preset' if source == 'preset' else 'project'}  {desc}")
    return 0
