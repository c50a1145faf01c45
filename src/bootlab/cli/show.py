"""`bootlab show ID [--log]`: a stored trial (summary and its boots), boot (verdict, seed, host, image hashes,
source revision, argv; its console log with ``--log``), matrix, comparison or bisect, in full."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bootlab.cli.common import STORE_CONFIG_HELP, add_config_arg, add_json_arg


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "show", help="a stored trial, boot, matrix, comparison or bisect in full (a boot's log with --log)"
    )
    p.add_argument("id", metavar="ID", help="t12, b345, m3, c2, s4 (a bare number is a trial)")
    p.add_argument("--log", action="store_true", help="print the boot's console log (boots only)")
    add_config_arg(p, STORE_CONFIG_HELP)
    add_json_arg(p, "print as JSON")
    p.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    from bootlab.errors import UsageError
    from bootlab.profile.loader import load_project
    from bootlab.store.db import open_store, parse_ref
    from bootlab.store.rows import boot_json, boot_sets

    ref = parse_ref(args.id)
    if args.log and ref.kind != "boot":
        raise UsageError(f"show --log: {ref} is a {ref.kind}; logs belong to boots (see `bootlab show {ref}` for ids)")
    with open_store(load_project(args.config), existing=True) as store:
        row = store.require(ref)
        if ref.kind == "boot":
            if args.log:
                if not row["log_path"]:
                    raise UsageError(f"boot {ref} has no stored log")
                sys.stdout.buffer.write(store.read_log(row["log_path"]))
                return 0
            data = boot_json(row)
            data["sets"] = boot_sets(store, row)  # None: stored before they were recorded
            data["notes"] = [n["text"] for n in store.notes(ref)]
            if args.json:
                print(json.dumps(data, indent=2))
            else:
                _print_boot(data)
            return 0
        if ref.kind == "trial":
            from bootlab.lab.lab import stored_trial
            from bootlab.lab.results import to_json

            trial, records = stored_trial(store, ref.id)
            result = to_json(trial)
            result["notes"] = [n["text"] for n in store.notes(ref)]
            result["revisions"] = store.trial_revisions(ref.id)
            result["boot_list"] = [
                {"boot": r.ref, "idx": r.idx, "seed": r.seed, "outcome": r.verdict.outcome, "title": r.verdict.title}
                for r in records
            ]
            if args.json:
                print(json.dumps(result, indent=2))
            else:
                _print_trial(result, records)
            return 0
        summary = json.loads(row["summary"]) if row["summary"] else None
        if summary is None:
            raise UsageError(f"{ref.kind} {ref} has no result yet (still running, or it was killed)")
        if args.json:
            print(json.dumps(summary, indent=2))
        elif ref.kind == "bisect":
            from bootlab.report.bisect import print_bisect

            print_bisect({**summary, "status": store.status_of(row)})
        elif ref.kind == "matrix":
            from bootlab.report.text import print_matrix

            print_matrix(summary)
        else:
            from bootlab.report.text import print_comparison

            print_comparison(summary)
    return 0


def _print_boot(d: dict[str, Any]) -> None:
    from bootlab.report.text import when

    v = d["verdict"]
    print(f"boot {d['boot']} ({d['trial'] or 'single boot'}, index {d['idx']}): {d['profile']}, {when(d['created'])}")
    print(f"  outcome: {v['outcome']} at stage {v.get('stage') or '-'} after {v.get('duration_s')} s")
    from bootlab.lab.summary import replay_command
    from bootlab.report.text import verdict_lines
    from bootlab.store.rows import revision_line

    for line in verdict_lines(v):
        print(line)
    *first, command = replay_command(d["profile"], d.get("sets"), d["seed"], d.get("revision")).split("\n")
    print(f"  seed: {d['seed']} (replay: {command})")
    for line in first:  # a build bootlab made apart: which one to put in place first
        print(f"    {line.removeprefix('# ')}")
    host = d["host"]
    where = f"{host['name']} " if host.get("name") else ""
    if host.get("worker"):
        where += f"(cluster worker {host['worker']}) "
    qemu, accel = host.get("qemu_version"), host.get("accel")
    print(f"  host: {where}{host.get('os')}/{host.get('arch')}, qemu {qemu}, accel {accel}")
    for key, digest in d["images"].items():
        print(f"  {key}: sha256 {digest}")
    print(f"  revision: {revision_line(d.get('revision'))}")
    if d["argv"]:
        import shlex

        print(f"  argv: {shlex.join(d['argv'])}")
    print(f"  log: bootlab show {d['boot']} --log")
    for note in d.get("notes", []):
        print(f"  note: {note}")


def _print_trial(result: dict[str, Any], records: list[Any]) -> None:
    from bootlab.report.text import print_trial
    from bootlab.store.rows import revision_line

    print_trial(result)
    revisions = result.get("revisions") or []
    if revisions:
        print("  revision: " + "; ".join(revision_line(r) for r in revisions))
    for note in result.get("notes", []):
        print(f"  note: {note}")
    print("  boots:")
    for r in records:
        v = r.verdict
        title = f"  {v.title}" if v.title and not v.passed else ""
        inc = f"  ({len(v.incidents)} incident(s))" if v.incidents else ""
        dur = f"{v.duration_s:6.2f}s" if v.duration_s is not None else "     ?"
        print(f"    {r.ref or '-':>7}  #{r.idx:<3} seed {r.seed:<10}  {v.outcome:<11} {dur}{title}{inc}")
