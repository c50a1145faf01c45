"""`bootlab report ID [ID...] | --history PROFILE [-o PATH] [--format html|md] [--open]`: pages people look at.

One self-contained HTML file per stored trial, matrix, comparison, bisect or boot (or a profile's history): plots
as inline SVG, the verdict of every boot, failed boots with their log excerpt, registers and replay command, and the
environment. ``--format md`` writes Markdown for a CI job summary. matplotlib and Jinja2 (the ``report`` extra)
are imported here only, so no other command pays for them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bootlab.cli.common import STORE_CONFIG_HELP, add_config_arg
from bootlab.errors import UsageError

if TYPE_CHECKING:
    from bootlab.report.pages import Page
    from bootlab.store.db import Store

FORMATS = {"html": "html", "md": "md", "markdown": "md"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report", help="an HTML (or Markdown) page with plots for stored trials, matrices, comparisons, bisects"
    )
    p.add_argument(
        "ids", nargs="*", metavar="ID", help="t12 (trial), m3 (matrix), c2 (comparison), s4 (bisect), b345 (boot)"
    )
    p.add_argument("--history", metavar="PROFILE", help="a profile's trials over time instead of IDs")
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="file to write (a directory with several IDs; - for stdout); default bootlab-report-ID.html here",
    )
    p.add_argument("--format", default="html", metavar="FMT", help="html (default) or md (for $GITHUB_STEP_SUMMARY)")
    p.add_argument("--open", action="store_true", help="open the written report in the web browser")
    add_config_arg(p, STORE_CONFIG_HELP)
    p.set_defaults(func=run_report)


def _need(modules: tuple[str, ...]) -> None:
    """The report extra is optional: say how to get it instead of a traceback."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise UsageError(
                f"bootlab report needs {name}, from the report extra: pip install 'bootlab[report]' "
                f"(matplotlib and jinja2)"
            ) from None


def _check_args(args: argparse.Namespace) -> str:
    fmt = FORMATS.get(args.format.lower())
    if fmt is None:
        raise UsageError(f"--format {args.format}: unknown format; use html or md")
    if args.history is None and not args.ids:
        raise UsageError(
            "report needs what to report: an ID (t12, m3, c2, s4, b345; `bootlab history` lists them) or "
            "--history PROFILE"
        )
    if args.history is not None and not args.history.strip():
        raise UsageError("--history needs a profile name, e.g. --history redox-sim")
    if args.open and (fmt != "html" or args.output == "-"):
        raise UsageError("--open opens an HTML file: drop --open, or write HTML to a file (not --format md, not -o -)")
    if args.output == "-" and fmt == "html" and len(args.ids) + (args.history is not None) > 1:
        raise UsageError("-o - writes one HTML page to stdout; give one ID, or -o DIR for several")
    return fmt


def _targets(args: argparse.Namespace, fmt: str, count: int) -> list[Path | None]:
    """Where each report goes (None: stdout). One report: -o is the file (or an existing directory to put it in);
    several: -o is a directory, created if needed."""
    if args.output == "-":
        return [None] * count
    if args.output is None:
        return [Path.cwd()] * count
    out = Path(args.output).expanduser()
    if count > 1 or args.output.endswith(("/", os.sep)):
        if out.exists() and not out.is_dir():
            raise UsageError(f"-o {out}: with several IDs, -o names a directory to write them in; {out} is a file")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot create the directory {out}: {exc.strerror}; give -o a writable directory"
            ) from None
    return [out] * count


def _resolve(target: Path | None, page: Page, fmt: str) -> Path | None:
    if target is None:
        return None
    if target.is_dir():
        return target / f"{page.default_name}.{fmt}"
    return target


def _write(path: Path, text: str) -> None:
    """Write atomically (a reader never sees half a page); any OS refusal is one line and exit 2."""
    from bootlab.paths import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
    except OSError as exc:
        raise UsageError(
            f"cannot write the report to {path}: {exc.strerror or exc}; give -o a writable file or directory"
        ) from None


def _check_not_empty(store: Store) -> None:
    row = store.db.execute("SELECT (SELECT COUNT(*) FROM trials) + (SELECT COUNT(*) FROM boots)").fetchone()
    if not row[0]:
        raise UsageError(
            f"the store {store.root} is empty: nothing to report; run `bootlab trial PROFILE -n 10` first, or point "
            f"BOOTLAB_STORE (or --config) at the store you meant"
        )


def run_report(args: argparse.Namespace) -> int:
    fmt = _check_args(args)
    from bootlab.store.db import open_store, parse_ref

    refs = [parse_ref(i) for i in args.ids]
    _need(("jinja2", "matplotlib") if fmt == "html" else ("jinja2",))
    from bootlab.profile.loader import load_project
    from bootlab.report import pages, render

    written: list[Path] = []
    with open_store(load_project(args.config), existing=True) as store:
        _check_not_empty(store)
        loaded = [pages.load_history(store, args.history)] if args.history is not None else []
        loaded += [pages.load(store, ref) for ref in refs]
        targets = _targets(args, fmt, len(loaded))
        for page, target in zip(loaded, targets, strict=True):
            path = _resolve(target, page, fmt)
            if fmt == "html":
                from bootlab.report import plots

                text = render.html(page, plots.figures(page), store=store.root)
            else:
                beside = (path.parent if path else Path.cwd()) / f"{(path.stem if path else page.default_name)}.html"
                text = render.markdown(page, html_link=beside.name if beside.is_file() else None)
            if path is None:
                sys.stdout.write(text)
                continue
            _write(path, text)
            written.append(path)
            print(f"report: {path} ({_size(len(text.encode()))})")
    if args.open:
        import webbrowser

        for path in written:
            if not webbrowser.open(path.resolve().as_uri()):
                print(f"report: no web browser found to open it; open {path} yourself", file=sys.stderr)
    return 0


def _size(n: int) -> str:
    return f"{n / 1024:.0f} kB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"
