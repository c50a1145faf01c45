"""The `bootlab` entry point: parses arguments, dispatches to a command module, maps errors to exit codes.

Each command group lives in its own module under ``bootlab.cli`` and exposes ``register(subparsers)``, which adds
its parser(s) and sets ``func`` to a handler ``(argparse.Namespace) -> int``. Modules are imported lazily by name
so that ``bootlab doctor`` does not pay for scipy or the observer: keep module-level imports in command modules
light and import heavy libraries inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from bootlab import __version__
from bootlab.errors import EXIT_USAGE, BootlabError

# command name -> module under bootlab.cli that registers it. Order is the order of `bootlab --help`.
COMMANDS: dict[str, str] = {
    "doctor": "doctor",
    "run": "run",
    "boot": "boot",
    "script": "script",
    "lock": "lock",
    "lint": "lint",
    "profiles": "profiles",
    "classify": "classify",
    "packs": "packs",
    "build": "build",
    "trial": "trial",
    "matrix": "matrix",
    "compare": "compare",
    "bisect": "bisect",
    "history": "history",
    "show": "show",
    "note": "note",
    "export": "export",
    "report": "report",
    "vm": "vm",
    "worker": "worker",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, and no abbreviated options (`trial --seed 3`
    must not silently mean `--seed-base 3`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"bootlab: {message} (see `{self.prog} --help`)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; with ``only``, import just that command's module (fast path for dispatch)."""
    parser = _Parser(prog="bootlab", description="Boot OS images in QEMU, observe them, measure them.")
    parser.add_argument("--version", action="version", version=f"bootlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            continue  # dispatching one known command: the others' parsers (and their imports) are not needed
        try:
            mod = importlib.import_module(f"bootlab.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bootlab.cli.{module}":
                continue  # command not built yet
            raise
        mod.register(sub)
    return parser


def _command_name(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg in COMMANDS:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:  # answered before any parser is built (that imports every command)
        print(f"bootlab {__version__}")
        return 0
    # pydantic looks for plugins through importlib.metadata at its first model (a scan of every installed
    # distribution); bootlab uses none. Not passed on to the user's build command, whose tools may use some.
    from bootlab.environ import set_own

    set_own("PYDANTIC_DISABLE_PLUGINS", "__all__")
    command = _command_name(args_list)
    # --debug is bootlab's own option: only before the command (after it, e.g. in `vm exec NAME -- cmd --debug`,
    # it belongs to someone else)
    debug = "--debug" in args_list[: args_list.index(command) if command else len(args_list)]
    parser = build_parser(only=command)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        if exc.code == EXIT_USAGE and command == "trial" and "--bisect-exit" in args_list:
            # `git bisect run` would read 2 as "bad": a mistyped option must stop it, as other bad input does
            from bootlab.cli.trial import BISECT_ABORT, bisect_said

            return bisect_said(*BISECT_ABORT)
        raise
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        _recover_checkouts()
        return int(args.func(args))
    except BootlabError as exc:
        if debug:
            raise
        print(f"bootlab: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `bootlab show x --json | head`: the reader left; say nothing more (and not at interpreter exit either).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _recover_checkouts() -> None:
    """A bootlab killed while it had a revision checked out left a worktree behind: remove it now (one line says
    so). Costs one directory listing when there is nothing to do."""
    from bootlab.source.checkout import recover

    recover(sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
