"""`bootlab note ID TEXT`: attach a note to a stored trial, boot, matrix or comparison ("after the ISB fix")."""

from __future__ import annotations

import argparse

from bootlab.cli.common import STORE_CONFIG_HELP, add_config_arg


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("note", help="attach a note to a stored trial/boot/matrix/comparison")
    p.add_argument("id", metavar="ID", help="t12, b345, m3, c2 (a bare number is a trial)")
    p.add_argument("text", metavar="TEXT", help="the note")
    add_config_arg(p, STORE_CONFIG_HELP)
    p.set_defaults(func=run_note)


def run_note(args: argparse.Namespace) -> int:
    from bootlab.errors import UsageError
    from bootlab.profile.loader import load_project
    from bootlab.store.db import open_store, parse_ref

    ref = parse_ref(args.id)
    if not args.text.strip():
        raise UsageError("note: the text is empty; give the note in quotes, e.g. bootlab note t12 'after ISB fix'")
    with open_store(load_project(args.config), existing=True) as store:
        store.add_note(ref, args.text.strip())
    print(f"noted on {ref}")
    return 0
