"""`bootlab profiles`: list project profiles and presets; `bootlab profiles NAME` (or `show NAME`) prints one
resolved; `bootlab profiles import NAME` turns a QEMU command line or run script into a profile (see
:mod:`bootlab.cli.profile_import`)."""

from __future__ import annotations

import argparse
import json

from bootlab.cli.common import add_config_arg, add_json_arg, add_set_arg
from bootlab.errors import UsageError


class SubParser(argparse.ArgumentParser):
    """The second stage of `profiles NAME ...` and `profiles import ...`: errors are one line, exit code 2;
    `--help` prints this stage's options (the first stage's parser only sees `profiles [NAME]`)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `bootlab profiles --help`)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profiles",
        help="list profiles and presets, show one resolved, or import a QEMU command line or run script",
        description=(
            "bootlab profiles [--json]  |  bootlab profiles [show] NAME [--set k=v] [--json]  |  "
            "bootlab profiles import NAME [--script FILE [--mode MODE] [--env K=V]] [--extends P] [--replace] [--lock] "
            "[--snapshot] [--json] [-- qemu-system-ARCH ARGS... | -- SCRIPT ARGS...]"
        ),
    )
    p.add_argument("show", nargs="?", metavar="NAME", help="show this profile fully resolved (or `import`)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    add_config_arg(p)
    add_set_arg(p, "with NAME: override a profile field (dotted keys); repeatable")
    add_json_arg(p, "the list as JSON (a profile is always shown as JSON)")
    p.set_defaults(func=run)


def show_parser() -> argparse.ArgumentParser:
    p = SubParser(
        prog="bootlab profiles [show] NAME",
        usage="%(prog)s [--config FILE] [--set KEY=VALUE]... [--json]",
        description="print the profile NAME fully resolved (extends, --set and {templates} applied), as JSON",
    )
    add_config_arg(p)
    add_set_arg(p, default=False)
    add_json_arg(p, "accepted for symmetry: the profile is printed as JSON anyway")
    return p


def run(args: argparse.Namespace) -> int:
    from bootlab.profile.loader import list_profiles, load_project, resolve_profile

    if args.show == "import":
        from bootlab.cli.profile_import import run_import

        return run_import(args)
    if args.show == "show" and args.rest and not args.rest[0].startswith("-"):
        args.show, args.rest = args.rest[0], args.rest[1:]
    if args.rest:
        show_parser().parse_args(args.rest, namespace=args)  # `profiles NAME --json`: options after the name
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
