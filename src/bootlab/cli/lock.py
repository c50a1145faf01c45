"""`bootlab lock PROFILE [--update]`: record the profile's resolved argv so it can never drift."""

from __future__ import annotations

import argparse

from bootlab.cli.common import add_profile_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lock", help="lock a known-good profile: later runs refuse if its command line changes")
    add_profile_args(p, seed=False)
    p.add_argument("--update", action="store_true", help="relock a locked profile whose command line changed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bootlab.errors import UsageError
    from bootlab.host import probe
    from bootlab.lab.preflight import canonical_invocation
    from bootlab.profile.loader import load_project
    from bootlab.profile.lock import argv_diff, read_locks, write_lock

    project = load_project(args.config)
    inv = canonical_invocation(project, args.profile, args.sets, probe())
    name = inv.profile.name
    entry = read_locks(project).get(name)
    if entry is not None and entry.get("sha256") == inv.sha256:
        print(f"{name}: already locked, unchanged (sha256 {inv.sha256[:16]})")
        return 0
    if entry is not None and not args.update:
        raise UsageError(
            f"profile {name} is already locked with a different command line "
            f"({argv_diff(list(entry.get('argv', [])), inv.argv)}); use --update to relock on purpose"
        )
    path = write_lock(project, name, inv.argv, inv.sha256)
    print(f"{name}: {'relocked' if entry else 'locked'} in {path} (sha256 {inv.sha256[:16]})")
    return 0
