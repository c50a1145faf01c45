"""Pages to files: HTML (one self-contained file, figures inline) and Markdown (for a CI job summary).

Both formats are Jinja2 templates in ``templates/``, one per kind of page and format (``trial.html.j2``,
``trial.md.j2``); HTML escapes everything it prints (crash titles and console lines are guest output), Markdown
escapes what would break a table. The numbers are formatted by the same helpers as the terminal output
(:mod:`bootlab.report.text`), so a rate reads "12/20 60% [39%-78%]" everywhere.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import jinja2

from bootlab import __version__
from bootlab.lab.stats import p_text
from bootlab.report.pages import Page
from bootlab.report.text import MARKS, decision_text, pct, rate_text, register_lines, when
from bootlab.store.rows import revision_text

TEMPLATES = Path(__file__).with_name("templates")
MARK_NAMES = {"pass": "all passed", "flaky": "flaky", "fail": "all failed", "refused": "refused", "none": "no boots"}


def _secs(value: float | None, unit: bool = True) -> str:
    if value is None:
        return "-" if unit else ""
    return f"{value:.2f} s" if unit else f"{value:.2f}"


def _prob(value: float | None) -> str:
    """A posterior probability: three decimals, and "<0.001" rather than a misleading 0.000."""
    if value is None:
        return "-"
    return "<0.001" if 0 < value < 0.0005 else f"{value:.3f}"


def _md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: no pipes, no newlines, no stray HTML."""
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _register_keys(regs: list[dict[str, Any]]) -> list[str]:
    """The register columns worth a column: those some vCPU has (``info registers`` gives PC/SP/LR; the fault
    registers come from the gdb stub, aarch64's ELR/ESR/FAR/SPSR or x86_64's CR2/CR3, and are absent when it
    could not be read)."""
    keys = ("pc", "sp", "lr", "elr", "esr", "far", "spsr", "cr2", "cr3")
    return [k for k in keys if any(r.get(k) for r in regs)]


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        rate=rate_text,
        pct=pct,
        when=when,
        secs=_secs,
        pval=p_text,
        decision=lambda seq, status: decision_text(seq, interrupted=status == "interrupted"),
        md=_md_cell,
        revision=revision_text,
        prob=_prob,
    )
    env.globals.update(
        version=__version__,
        mark_names=MARK_NAMES,
        marks=MARKS,
        register_keys=_register_keys,
        register_lines=register_lines,
    )
    return env


def html(page: Page, figures: list[Any], *, store: Path) -> str:
    """The page as one HTML document; ``figures`` come from :func:`bootlab.report.plots.figures`."""
    template = _env().get_template(f"{page.kind}.html.j2")
    return template.render(page=page, figures=figures, store=store, written=when(time.time()))


def markdown(page: Page, *, html_link: str | None = None) -> str:
    """The page as GitHub-flavoured Markdown (no figures); ``html_link`` points at the HTML report beside it."""
    template = _env().get_template(f"{page.kind}.md.j2")
    text = template.render(page=page, html_link=html_link)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
