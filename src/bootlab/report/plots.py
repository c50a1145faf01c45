"""The figures of a report: matplotlib drawing small SVG that is inlined in the page.

Why matplotlib to SVG: the page must open from disk, offline, years later, and be attached to a bug report, so
plots are static vector graphics inside the file, not a JavaScript runtime from a CDN. Text stays text
(``svg.fonttype = 'none'``: searchable, and the browser's own font), many boots are drawn as runs, boxes and
histograms rather than one path per point (a 1,000-boot trial stays small), and ids are salted per figure so
that several SVGs in one page never share an id. pyplot is not used: each figure is its own object, no global
state, no GUI backend.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies), the same
outcome always in the same colour. Every figure has a caption that says what to read from it.

Add a kind: write ``def KIND_figures(page) -> list[Figure]`` and register it in :data:`FIGURES`.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Patch, PathPatch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from bootlab.lab.stats import p_text, percentile
from bootlab.lab.summary import Tally, failure_title
from bootlab.report.pages import Page
from bootlab.report.text import difference_text, pct, rate_text

OUTCOME_COLOURS = {
    "pass": "#009E73",
    "crash": "#D55E00",
    "hang": "#E69F00",
    "timeout": "#CC79A7",
    "login-failed": "#882255",
    "check-failed": "#0072B2",
    "incomplete": "#56B4E9",
    "qemu-error": "#999999",
    "infra-error": "#BBBBBB",
}
STRICT_FAIL = "#F0E442"  # passed, but with incidents, in a --strict trial
ARM_COLOURS = ("#0072B2", "#E69F00")  # A, B
VARIANT_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#999999")
VARIANT_MARKERS = ("o", "s", "D", "^")
INK = "#333333"
MUTED = "#777777"
FAIL = "#D55E00"

STYLE: Any = {  # Any: matplotlib types rc_context's keys as a Literal of every rcParam
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "axes.edgecolor": "#999999",
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e6e6e6",
    "grid.linewidth": 0.6,
    "xtick.color": "#555555",
    "ytick.color": "#555555",
    "text.color": INK,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "path.simplify": True,
}
#: Boots per stage drawn as dots; above it a histogram (each dot is ~110 bytes of SVG, a histogram ~2 kB in all).
DOTS_UP_TO = 60
WIDTH = 7.6  # inches: a figure fills the page's text column at 100%


@dataclass
class Figure:
    """One plot of a page: an anchor name, a heading, the caption (what to read from it) and inline SVG."""

    name: str
    title: str
    caption: str
    svg: str
    #: (colour, marker, label) entries the page lists under the figure: an HTML legend wraps and is never clipped
    legend: list[tuple[str, str, str]] = field(default_factory=list)


_XML_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_FONT_FAMILY = re.compile(r"; font-family: [^;\"]*")


def to_svg(fig: MplFigure, name: str) -> str:
    """The figure as an inline ``<svg>`` element: no XML prologue or metadata, ids unique to ``name``, no
    per-text font list (the page's CSS names the font once), sized by CSS from its viewBox."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"bootlab-{name}", "svg.id": name}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = _METADATA.sub("", _XML_PROLOGUE.sub("", buf.getvalue(), count=1), count=1)
    svg = _FONT_FAMILY.sub("", svg)
    # the figure's own ids (figure_1, axes_1, ...) repeat in every figure: prefix them with the figure's name
    svg = re.sub(
        r'id="((?:figure|axes|patch|line2d|text|matplotlib\.axis|xtick|ytick|legend|PolyCollection|'
        r"LineCollection|PathCollection|BrokenBarHCollection|QuadMesh|image|FillBetweenPolyCollection)"
        r'[_\w.]*)"',
        rf'id="{name}-\1"',
        svg,
    )
    return svg.replace("<svg ", f'<svg class="plot" role="img" aria-label="{name}" ', 1)


def _figure(height: float, width: float = WIDTH) -> MplFigure:
    return MplFigure(figsize=(width, height), layout="constrained")


def _draw(name: str, draw: Callable[[], MplFigure]) -> str:
    with matplotlib.rc_context(STYLE):
        return to_svg(draw(), name)


def _drawn(*figures: Figure | None) -> list[Figure]:
    """A page's figures, without those that had nothing to draw (each figure function returns None then)."""
    return [f for f in figures if f is not None]


def _rate_point(ax: Any, x: float, r: dict[str, Any], colour: str, marker: str = "o") -> None:
    """One rate (a trial's, a revision's, a commit's) as a point with its 95% interval as error bars."""
    lo, hi = r["ci95"]
    ax.errorbar(
        [x],
        [100 * r["rate"]],
        yerr=[[100 * (r["rate"] - lo)], [100 * (hi - r["rate"])]],
        fmt=marker,
        color=colour,
        capsize=3,
        markersize=5,
        linewidth=1.4,
    )


def _outcome_colour(b: dict[str, Any]) -> str:
    if b["outcome"] == "pass" and not b["passed"]:
        return STRICT_FAIL
    return OUTCOME_COLOURS.get(b["outcome"], MUTED)


def _outcome_key(b: dict[str, Any]) -> str:
    return "pass with incidents (strict)" if b["outcome"] == "pass" and not b["passed"] else b["outcome"]


def _ready_stage(boots: list[dict[str, Any]]) -> str:
    ready = [b["stage"] for b in boots if b["ready_t"] is not None and b["stage"]]
    return max(set(ready), key=ready.count) if ready else "ready"


# -- trial figures -------------------------------------------------------------------------------------------------


def running_rate(boots: list[dict[str, Any]], name: str = "rate") -> Figure | None:
    """Pass rate after each counted boot with its Wilson band: how sure the number is, and whether it settled."""
    counted = [b for b in boots if b["counted"]]
    if not counted:
        return None
    n = len(counted)
    # at most ~300 points: the band is smooth, and a 1,000-boot trial need not carry 2,000 vertices
    step = max(1, math.ceil(n / 300))
    xs, ys, los, his = [], [], [], []
    tally = Tally()
    for i, b in enumerate(counted, 1):
        tally.count(b["passed"])
        if i % step == 0 or i == n or i == 1:
            lo, hi = tally.ci95()
            xs.append(i)
            ys.append(100 * (tally.rate or 0))
            los.append(100 * lo)
            his.append(100 * hi)

    # with many boots the cumulative rate hides drift late in the run: also show the rate over a moving window
    window = min(100, max(10, n // 10)) if n >= 40 else 0
    roll_x, roll_y = [], []
    if window:
        flags = [1 if b["passed"] else 0 for b in counted]
        for i in range(window, n + 1, max(1, step)):
            roll_x.append(i)
            roll_y.append(100 * sum(flags[i - window : i]) / window)

    def draw() -> MplFigure:
        fig = _figure(2.3)
        ax = fig.add_subplot()
        ax.fill_between(xs, los, his, color=ARM_COLOURS[0], alpha=0.18, linewidth=0, label="95% Wilson interval")
        if window:
            ax.plot(
                roll_x,
                roll_y,
                color=MUTED,
                linewidth=0.9,
                linestyle=(0, (3, 2)),
                label=f"rate of the last {window} boots",
            )
        ax.plot(xs, ys, color=ARM_COLOURS[0], linewidth=1.6, label="pass rate so far")
        ax.set_ylim(-2, 102)
        ax.set_xlim(0.5, max(n, 2) + 0.5)
        ax.set_ylabel("pass rate (%)")
        ax.set_xlabel("boots counted (in start order)")
        ax.annotate(
            f"{ys[-1]:.0f}% [{los[-1]:.0f}–{his[-1]:.0f}%]",
            (xs[-1], ys[-1]),
            xytext=(-6, 10 if ys[-1] < 80 else -14),
            textcoords="offset points",
            ha="right",
            fontweight="bold",
            color=ARM_COLOURS[0],
        )
        ax.legend(loc="lower left", ncols=3)
        return fig

    final = rate_text(tally.to_json())
    drift = (
        f" The dashed line is the rate over the last {window} boots: a slope in it is drift, which the cumulative "
        f"rate hides."
        if window
        else ""
    )
    return Figure(
        name,
        "Pass rate",
        f"{final} (95% Wilson interval). The line is the rate after each boot and the band its interval: a band "
        f"still wide at the right end means more boots would change the number.{drift}",
        _draw(name, draw),
    )


def _runs(values: Sequence[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """(index, key) sorted by index -> maximal runs (start, length, key) of consecutive indexes with one key."""
    runs: list[tuple[int, int, str]] = []
    for idx, key in values:
        if runs and runs[-1][2] == key and runs[-1][0] + runs[-1][1] == idx:
            start, length, _ = runs[-1]
            runs[-1] = (start, length + 1, key)
        else:
            runs.append((idx, 1, key))
    return runs


def _add_rects(ax: Any, rects: list[tuple[float, float, float, float]], colour: str) -> None:
    """Many rectangles as one compound path: one SVG element per colour instead of one per rectangle."""
    if not rects:
        return
    vertices: list[tuple[float, float]] = []
    codes: list[Any] = []
    for x, y, w, h in rects:
        vertices += [(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]
        codes += [MplPath.MOVETO, MplPath.LINETO, MplPath.LINETO, MplPath.LINETO, MplPath.CLOSEPOLY]
    ax.add_patch(PathPatch(MplPath(vertices, codes), facecolor=colour, edgecolor="none", linewidth=0))


def outcome_strip(rows: list[tuple[str, list[dict[str, Any]]]], name: str = "strip") -> Figure | None:
    """One row per arm, one cell per boot in start order, coloured by outcome; incidents ticked beneath. Drawn as
    runs of equal outcomes, so 1,000 boots cost a few hundred rectangles, not a thousand points."""
    if not any(boots for _, boots in rows):
        return None
    colours: dict[str, str] = {}
    counts: dict[str, int] = {}
    for _, boots in rows:
        for b in boots:
            key = _outcome_key(b)
            colours[key] = _outcome_colour(b)
            counts[key] = counts.get(key, 0) + 1
    n_max = max((b["idx"] or 0) + 1 for _, boots in rows for b in boots)

    def draw() -> MplFigure:
        fig = _figure(0.55 * len(rows) + 1.0)
        ax = fig.add_subplot()
        ax.grid(False)
        ticks = []
        for r, (label, boots) in enumerate(rows):
            y = len(rows) - 1 - r
            ticks.append((y + 0.375, label))
            order = sorted(boots, key=lambda b: b["idx"] or 0)
            runs = _runs([(b["idx"] or 0, _outcome_key(b)) for b in order])
            # the row's commonest outcome as one bar across its whole span, the others drawn over it
            lengths: dict[str, int] = {}
            for _, w, k in runs:
                lengths[k] = lengths.get(k, 0) + w
            common = max(lengths, key=lambda k: lengths[k])
            first, last = runs[0][0], runs[-1][0] + runs[-1][1]
            gaps = [(x + w, nx - x - w) for (x, w, _), (nx, _, _) in itertools.pairwise(runs) if nx > x + w]
            _add_rects(ax, [(first, y, last - first, 0.75)], colours[common])
            _add_rects(ax, [(x, y, w, 0.75) for x, w in gaps], "#ffffff")  # boots not stored (killed mid-run)
            for key, colour in colours.items():
                if key != common:
                    _add_rects(ax, [(x, y, w, 0.75) for x, w, k in runs if k == key], colour)
            incident_runs = _runs([(b["idx"] or 0, "i") for b in order if b["incidents"]])
            _add_rects(ax, [(x + 0.15, y - 0.22, w - 0.3, 0.14) for x, w, _ in incident_runs], INK)
        ax.set_xlim(0, max(n_max, 1))
        ax.set_ylim(-0.35, len(rows) - 0.1)
        ax.set_yticks([t for t, _ in ticks], [label for _, label in ticks])
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ax.set_xlabel("boot index (start order)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles = [Patch(color=c, label=f"{k} {counts[k]}") for k, c in colours.items()]
        if any(b["incidents"] for _, boots in rows for b in boots):
            handles.append(Patch(color=INK, label="incidents (the mark beneath)"))
        fig.legend(handles=handles, loc="outside upper left", ncols=min(len(handles), 6))
        return fig

    worst = sorted((k for k in counts if k != "pass"), key=lambda k: -counts[k])
    what = f"{worst[0]} ({counts[worst[0]]})" if worst else "none"
    return Figure(
        name,
        "Outcome of each boot, in order",
        f"Each cell is one boot, left to right in the order they started; commonest failure: {what}. Failures "
        f"bunched at one end point to drift on the host or in the guest, not chance.",
        _draw(name, draw),
    )


def _jitter(k: int) -> float:
    """A deterministic spread in [-0.5, 0.5): the golden-ratio sequence (no random numbers in a report)."""
    return ((k * 0.6180339887) % 1.0) - 0.5


def stage_times(
    series: list[tuple[str, str, list[dict[str, Any]]]],
    stages: list[str],
    notes: dict[str, str] | None = None,
    name: str = "stages",
) -> Figure | None:
    """Per stage (in boot order, top to bottom), the time each boot reached it: a box (quartiles, median) with
    whiskers to min and max, over the boots themselves as dots (up to 60) or as a histogram (more). ``series``
    are (label, colour, boots), one per arm; ``notes`` is text for the right margin per stage (the rank test)."""
    data = {
        (s, j): [b["stages"][s] for b in boots if b["counted"] and s in b["stages"]]
        for s in stages
        for j, (_, _, boots) in enumerate(series)
    }
    if not any(data.values()):
        return None
    k = len(series)
    band = 0.8 / k
    dots = max(len(ts) for ts in data.values()) <= DOTS_UP_TO  # one way for every row: dots or histograms

    def draw() -> MplFigure:
        fig = _figure(0.42 * len(stages) * (1 + 0.6 * (k - 1)) + 0.9)
        ax = fig.add_subplot()
        for i, stage in enumerate(stages):
            for j, (_, colour, _) in enumerate(series):
                ts = data[(stage, j)]
                if not ts:
                    continue
                y = len(stages) - 1 - i + (k - 1 - 2 * j) * band / 2
                h = band * 0.8
                if dots:
                    jitter = [y + _jitter(m) * h * 0.9 for m in range(len(ts))]
                    ax.scatter(ts, jitter, s=7, color=colour, alpha=0.55, linewidths=0)
                else:  # a histogram in the upper part of the band, the box beneath it
                    lo_t, hi_t = min(ts), max(ts)
                    bins = max(10, min(40, round(2 * math.sqrt(len(ts)))))
                    width = (hi_t - lo_t) / bins or 1.0
                    counts = [0] * bins
                    for t in ts:
                        counts[min(bins - 1, int((t - lo_t) / width))] += 1
                    top = max(counts)
                    base = y - h * 0.1
                    xs = [lo_t + width * c for c in range(bins + 1)]
                    heights = [base + h * 0.6 * c / top for c in counts]
                    ax.stairs(heights, xs, baseline=base, fill=True, color=colour, alpha=0.35, linewidth=0)
                    y, h = y - h * 0.3, h * 0.6
                q1, med, q3 = percentile(ts, 25), percentile(ts, 50), percentile(ts, 75)
                ax.plot([min(ts), q1], [y, y], color=colour, linewidth=1)
                ax.plot([q3, max(ts)], [y, y], color=colour, linewidth=1)
                ax.add_patch(
                    Rectangle(
                        (q1, y - h * 0.3), max(q3 - q1, 1e-9), h * 0.6, fill=False, edgecolor=colour, linewidth=1.2
                    )
                )
                ax.plot([med, med], [y - h * 0.38, y + h * 0.38], color=colour, linewidth=2.2)
        ax.set_yticks([len(stages) - 1 - i for i in range(len(stages))], stages)
        ax.set_ylim(-0.6, len(stages) - 0.4)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel("seconds since QEMU started")
        ax.grid(axis="y", visible=False)
        if notes:
            trans = blended_transform_factory(ax.transAxes, ax.transData)
            for i, stage in enumerate(stages):
                if stage in notes:
                    ax.text(
                        1.01, len(stages) - 1 - i, notes[stage], transform=trans, va="center", fontsize=8.5, color=INK
                    )
        if k > 1:
            handles = [Patch(color=c, label=label) for label, c, _ in series]
            fig.legend(handles=handles, loc="outside upper left", ncols=k)
        return fig

    return Figure(
        name,
        "Time to each stage",
        "When each boot reached each stage: the box spans the middle half of the boots, the thick line is the "
        "median, the whiskers reach the fastest and slowest. A wide box or a long whisker is a stage whose "
        "time varies from boot to boot.",
        _draw(name, draw),
    )


def ready_ecdf(series: list[tuple[str, str, list[dict[str, Any]]]], name: str = "ready") -> Figure | None:
    """The share of all counted boots that were ready by time t (a step per boot): it rises where boots become
    ready and levels off at the pass rate, so speed and reliability read from one curve."""
    curves = []
    for label, colour, boots in series:
        counted = [b for b in boots if b["counted"]]
        ready = sorted(b["ready_t"] for b in counted if b["ready_t"] is not None)
        if counted and ready:
            curves.append((label, colour, ready, len(counted)))
    if not curves:
        return None
    stage = _ready_stage([b for _, _, boots in series for b in boots])

    def draw() -> MplFigure:
        fig = _figure(2.4)
        ax = fig.add_subplot()
        x_max = max(c[2][-1] for c in curves)
        x_min = min(c[2][0] for c in curves)
        # zoomed on where boots become ready (not from 0: the spread of a few tenths would be a vertical line)
        left = max(0.0, x_min - 0.25 * (x_max - x_min) - 0.05 * x_max)
        right = x_max + 0.08 * (x_max - left)
        for label, colour, ready, n in curves:
            xs = [left, *ready, right]
            ys = [0.0, *(100 * (i + 1) / n for i in range(len(ready))), 100 * len(ready) / n]
            ax.step(
                xs,
                ys,
                where="post",
                color=colour,
                linewidth=1.6,
                label=f"{label}, median {percentile(ready, 50):.2f} s",
            )
            med = percentile(ready, 50)
            ax.plot([med], [100 * (len(ready) / 2) / n], marker="o", color=colour, markersize=4)
            if len(curves) == 1:  # with several curves the medians go in the legend, where they cannot collide
                ax.annotate(
                    f"median {med:.2f} s",
                    (med, 100 * (len(ready) / 2) / n),
                    xytext=(6, -10),
                    textcoords="offset points",
                    color=colour,
                    fontsize=8.5,
                )
        ax.set_ylim(-2, 102)
        ax.set_xlim(left, right)
        ax.set_ylabel("boots ready (%)")
        ax.set_xlabel(f"seconds since QEMU started (ready = {stage})")
        if len(curves) > 1:
            ax.legend(loc="upper left")
        return fig

    parts = "; ".join(f"{label + ': ' if label else ''}median {percentile(r, 50):.2f} s" for label, _, r, _ in curves)
    return Figure(
        name,
        "Time to ready",
        f"Share of all counted boots that reached {stage} by each time ({parts}). The curve levels off at the "
        f"pass rate; a curve further right is slower.",
        _draw(name, draw),
    )


def failure_titles(series: list[tuple[str, str, list[dict[str, Any]]]], name: str = "failures") -> Figure | None:
    """Failed boots grouped by crash title, commonest first (ten at most; the rest summed in one bar), one bar
    per arm. Titles are written above their bars, so long Linux titles do not squeeze the plot."""
    counts: list[dict[str, int]] = []
    for _, _, boots in series:
        c: dict[str, int] = {}
        for b in boots:
            if b["counted"] and not b["passed"]:
                title = failure_title(b["model"])
                c[title] = c.get(title, 0) + 1
        counts.append(c)
    totals: dict[str, int] = {}
    for c in counts:
        for t, v in c.items():
            totals[t] = totals.get(t, 0) + v
    if not totals:
        return None
    order = sorted(totals, key=lambda t: (-totals[t], t))
    shown, rest = order[:10], order[10:]
    labels = [t if len(t) <= 90 else t[:88] + "…" for t in shown]
    if rest:
        labels.append(f"{len(rest)} other titles")
    k = len(series)

    def value(c: dict[str, int], i: int) -> int:
        return c.get(shown[i], 0) if i < len(shown) else sum(c.get(t, 0) for t in rest)

    def draw() -> MplFigure:
        rows = len(labels)
        fig = _figure(rows * (0.3 + 0.2 * k) + 0.8)
        ax = fig.add_subplot()
        top = max(value(c, i) for c in counts for i in range(rows))
        for i, label in enumerate(labels):
            y = rows - 1 - i
            for j, ((_, colour, _), c) in enumerate(zip(series, counts, strict=True)):
                v = value(c, i)
                yy = y - 0.12 - j * 0.5 / k
                ax.barh(yy, v, height=0.4 / k, color=colour if k > 1 else FAIL, linewidth=0)
                ax.text(v + top * 0.01, yy, str(v), va="center", fontsize=8.5, color=INK if v else MUTED)
            ax.text(0, y + 0.2, label, va="bottom", fontsize=8.5, color=INK)
        ax.set_yticks([])
        ax.set_ylim(-0.7, rows - 0.1)
        ax.set_xlim(0, top * 1.08 + 0.5)
        ax.set_xlabel("failed boots")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.spines["left"].set_visible(False)
        ax.grid(axis="y", visible=False)
        if k > 1:
            handles = [Patch(color=colour, label=label) for label, colour, _ in series]
            fig.legend(handles=handles, loc="outside upper left", ncols=k)
        return fig

    return Figure(
        name,
        "Failures by title",
        f"{sum(totals.values())} failed boots under {len(totals)} title(s): a title is one bug, normalised so "
        f"that addresses and line numbers do not split it. The commonest is the one to fix first.",
        _draw(name, draw),
    )


def trial_figures(page: Page) -> list[Figure]:
    arm = page.data["arm"]
    boots = arm["boots"]
    stages = list(arm["summary"].get("stages") or {})
    one = [("", ARM_COLOURS[0], boots)]
    return _drawn(
        running_rate(boots),
        outcome_strip([("", boots)]),
        stage_times(one, stages),
        ready_ecdf(one),
        failure_titles(one),
    )


# -- matrix ------------------------------------------------------------------------------------------------------


def _text_colour(rgba: tuple[float, float, float, float]) -> str:
    r, g, b, _ = rgba
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "#ffffff"


def matrix_heatmap(matrix: dict[str, Any], name: str = "heatmap") -> Figure | None:
    """Pass rate per cell on a red (0%) to blue (100%) scale, counts and interval written in; refused cells hatched
    grey. The first axis runs down, the second across; the others (a third axis and beyond) make one panel per
    value."""
    axes: dict[str, list[str]] = matrix["axes"]
    keys = list(axes)
    if not keys or not matrix["cells"]:
        return None
    row_key = keys[0] if len(keys) > 1 else None
    col_key = keys[1] if len(keys) > 1 else keys[0]
    facet_keys = keys[2:]
    rows = axes[row_key] if row_key else [""]
    cols = axes[col_key]
    facets: list[tuple[str, ...]] = list(
        dict.fromkeys(tuple(str(c["axes"][k]) for k in facet_keys) for c in matrix["cells"])
    )
    cmap = matplotlib.colormaps["RdYlBu"]

    def cell_at(facet: tuple[str, ...], r: str, c: str) -> dict[str, Any] | None:
        for cell in matrix["cells"]:
            ax_ = cell["axes"]
            if (
                str(ax_[col_key]) == c
                and (row_key is None or str(ax_[row_key]) == r)
                and tuple(str(ax_[k]) for k in facet_keys) == facet
            ):
                return cell
        return None

    def draw() -> MplFigure:
        per_row = min(len(facets), max(1, int(7.0 // (1.45 * len(cols) + 0.6))))
        grid_rows = math.ceil(len(facets) / per_row)
        # cells about 1.4 inches wide, not stretched over the page when there are few of them
        width = min(WIDTH, per_row * (1.45 * len(cols) + 0.6) + 1.9)
        fig = _figure(grid_rows * (0.62 * len(rows) + 0.9) + 0.5, width=width)
        subs = fig.subplots(grid_rows, per_row, squeeze=False)
        for f_i, facet in enumerate(facets):
            ax = subs[f_i // per_row][f_i % per_row]
            ax.grid(False)
            for r_i, r in enumerate(rows):
                for c_i, c in enumerate(cols):
                    cell = cell_at(facet, r, c)
                    y = len(rows) - 1 - r_i
                    if cell is None:
                        continue
                    if cell.get("refused"):
                        ax.add_patch(
                            Rectangle(
                                (c_i, y), 1, 1, facecolor="#eeeeee", edgecolor="#ffffff", hatch="///", linewidth=2
                            )
                        )
                        ax.text(c_i + 0.5, y + 0.5, "refused\nby lint", ha="center", va="center", fontsize=8, color=INK)
                        continue
                    boots, passed = cell.get("boots") or 0, cell.get("passed") or 0
                    if boots == 0:
                        ax.add_patch(Rectangle((c_i, y), 1, 1, facecolor="#dddddd", edgecolor="#ffffff", linewidth=2))
                        ax.text(c_i + 0.5, y + 0.5, "no boots\ncounted", ha="center", va="center", fontsize=8)
                        continue
                    colour = cmap(passed / boots)
                    ax.add_patch(Rectangle((c_i, y), 1, 1, facecolor=colour, edgecolor="#ffffff", linewidth=2))
                    ink = _text_colour(colour)
                    ax.text(
                        c_i + 0.5,
                        y + 0.62,
                        f"{passed}/{boots}",
                        ha="center",
                        va="center",
                        fontsize=10,
                        fontweight="bold",
                        color=ink,
                    )
                    ax.text(
                        c_i + 0.5,
                        y + 0.3,
                        rate_text(cell, counts=False),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color=ink,
                    )
            ax.set_xlim(0, len(cols))
            ax.set_ylim(0, len(rows))
            ax.set_xticks([i + 0.5 for i in range(len(cols))], [str(c) for c in cols])
            ax.set_yticks([len(rows) - 1 - i + 0.5 for i in range(len(rows))], [str(r) for r in rows])
            ax.tick_params(length=0)
            for side in ("left", "bottom"):
                ax.spines[side].set_visible(False)
            ax.set_xlabel(col_key)
            if row_key and f_i % per_row == 0:
                ax.set_ylabel(row_key)
            if facet_keys:
                ax.set_title("  ".join(f"{k}={v}" for k, v in zip(facet_keys, facet, strict=True)), fontsize=9)
        for extra in range(len(facets), grid_rows * per_row):
            subs[extra // per_row][extra % per_row].set_visible(False)
        sm = matplotlib.cm.ScalarMappable(cmap=cmap, norm=matplotlib.colors.Normalize(0, 100))
        bar = fig.colorbar(sm, ax=subs.ravel().tolist(), fraction=0.04, pad=0.02)
        bar.set_label("pass rate (%)")
        bar.outline.set_visible(False)
        return fig

    refused = sum(1 for c in matrix["cells"] if c.get("refused"))
    refused_text = f"; {refused} cell(s) refused by lint (hatched, not booted)" if refused else ""
    facet_text = f" One panel per {', '.join(facet_keys)}." if facet_keys else ""
    return Figure(
        name,
        "Pass rate per cell",
        f"Each cell: passed/counted, the rate and its 95% interval; colour from red (0%) to blue (100%). Every "
        f"cell booted the same seeds, so a difference between cells comes from the configuration"
        f"{refused_text}.{facet_text}",
        _draw(name, draw),
    )


def matrix_figures(page: Page) -> list[Figure]:
    return _drawn(matrix_heatmap(page.data["matrix"]))


# -- comparison ----------------------------------------------------------------------------------------------------


def comparison_rates(c: dict[str, Any], name: str = "rates") -> Figure:
    """A and B as points with their Wilson intervals (left), and B - A with Newcombe's interval (right): the
    difference is real when its interval stays clear of zero."""
    a, b = c["a"], c["b"]

    def draw() -> MplFigure:
        fig = _figure(1.8)
        left, right = fig.subplots(1, 2, width_ratios=[3, 2])
        for y, side, colour in ((1, a, ARM_COLOURS[0]), (0, b, ARM_COLOURS[1])):
            if side.get("boots"):
                lo, hi = side["ci95"]
                left.errorbar(
                    [100 * side["rate"]],
                    [y],
                    xerr=[[100 * (side["rate"] - lo)], [100 * (hi - side["rate"])]],
                    fmt="o",
                    color=colour,
                    capsize=4,
                    linewidth=2,
                    markersize=6,
                )
                text = rate_text(side)
                # above its point, anchored on the side with room, so it never runs into the axis labels
                ha = "right" if side["rate"] > 0.75 else "left" if side["rate"] < 0.25 else "center"
                left.annotate(
                    text,
                    (100 * side["rate"], y),
                    xytext=(0, 9),
                    textcoords="offset points",
                    ha=ha,
                    va="bottom",
                    fontsize=8.5,
                    color=colour,
                )
        left.set_yticks([1, 0], [f"A {_short(a['label'])}", f"B {_short(b['label'])}"])
        left.set_ylim(-0.6, 1.6)
        left.set_xlim(-3, 103)
        left.set_xlabel("pass rate (%), 95% Wilson interval")
        left.tick_params(axis="y", length=0)
        right.axvline(0, color=MUTED, linewidth=1, linestyle="--")
        if c.get("difference") is not None:
            lo, hi = c["difference_ci95"]
            d = c["difference"]
            colour = INK if c.get("significant") else MUTED
            right.errorbar(
                [100 * d],
                [0],
                xerr=[[100 * (d - lo)], [100 * (hi - d)]],
                fmt="D",
                color=colour,
                capsize=4,
                linewidth=2,
                markersize=5,
            )
            right.text(100 * d, 0.25, difference_text(d, (lo, hi)), ha="center", fontsize=8.5, color=colour)
        right.set_xlim(-103, 103)
        right.set_ylim(-0.6, 0.8)
        right.set_yticks([0], ["B − A"])
        right.tick_params(axis="y", length=0)
        right.set_xlabel("difference (points), 95% Newcombe")
        return fig

    return Figure(
        name,
        "Pass rates and their difference",
        f"{c['sentence']}. The verdict is Fisher's exact test (p = {p_text(c['p_value'])}); right, B − A with its 95% "
        f"Newcombe interval says how large the difference may be (near 0% and 100% it can clear zero while the "
        f"exact test, more cautious, does not yet).",
        _draw(name, draw),
    )


def _short(label: str, width: int = 34) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def comparison_figures(page: Page) -> list[Figure]:
    c, a, b = page.data["comparison"], page.data["a"], page.data["b"]
    la, lb = f"A {_short(c['a']['label'])}", f"B {_short(c['b']['label'])}"
    series = [(la, ARM_COLOURS[0], a["boots"]), (lb, ARM_COLOURS[1], b["boots"])]
    stages = list(dict.fromkeys([*(a["summary"].get("stages") or {}), *(b["summary"].get("stages") or {})]))
    notes = {}
    for row in page.data["timing"]["stages"]:
        p = row["p_value"]
        if p is not None:
            how = {1: ", B slower", -1: ", B faster", 0: ""}[row["direction"]] if p < 0.05 else ""
            notes[row["stage"]] = f"p = {p_text(p)}{how}"
    stage_fig = stage_times(series, stages, notes)
    if stage_fig is not None:
        stage_fig.caption = (
            f"{page.data['timing']['sentence']}. Both arms per stage (A above, B below); on the right the "
            f"Mann–Whitney rank test of each stage, two-sided: p < 0.05 says the arms' times differ."
        )
    return _drawn(
        comparison_rates(c),
        outcome_strip([("A", a["boots"]), ("B", b["boots"])]),
        stage_fig,
        ready_ecdf(series),
        failure_titles(series),
    )


# -- boot ----------------------------------------------------------------------------------------------------------


def boot_timeline(boot: dict[str, Any], name: str = "timeline") -> Figure | None:
    """The stages of one boot as a Gantt chart (each from when it was reached to the next), with incidents and
    the fatal line marked: where the boot spent its time, and where it died."""
    stages = sorted(boot["stages"].items(), key=lambda kv: kv[1])
    if not stages:
        return None
    end = boot["duration_s"] or max(t for _, t in stages)
    end = max(end, *(t for _, t in stages))
    timed = [i for i in boot["incidents"] if i.get("t") is not None]
    extra = (["incidents"] if timed else []) + (["fatal"] if boot["fatal_t"] is not None else [])
    labels = [s for s, _ in stages] + extra

    def draw() -> MplFigure:
        fig = _figure(0.3 * len(labels) + 0.9)
        ax = fig.add_subplot()
        colour = OUTCOME_COLOURS.get(boot["outcome"], MUTED)
        # the last stage ends at the fatal line: after it the guest is dead (the dump, registers and stop follow)
        last_end = boot["fatal_t"] if boot["fatal_t"] is not None else end
        for i, (_, t) in enumerate(stages):
            nxt = stages[i + 1][1] if i + 1 < len(stages) else max(last_end, t)
            y = len(labels) - 1 - i
            ax.barh(y, max(nxt - t, end * 0.004), left=t, height=0.55, color=colour, alpha=0.75, linewidth=0)
            ax.text(t, y + 0.38, f"{t:.2f} s", fontsize=7.5, color=MUTED)
        if timed:
            y = len(labels) - 1 - len(stages)
            for inc in timed:
                ax.plot([inc["t"]], [y], marker="|", markersize=12, color=OUTCOME_COLOURS["hang"], mew=2)
        if boot["fatal_t"] is not None:
            ax.barh(0, end - boot["fatal_t"], left=boot["fatal_t"], height=0.2, color="#cccccc", linewidth=0)
            ax.plot([boot["fatal_t"]], [0], marker="X", markersize=9, color=FAIL)
            ax.text(boot["fatal_t"], 0.3, f"{boot['fatal_t']:.2f} s", fontsize=7.5, color=FAIL)
        ax.set_yticks([len(labels) - 1 - i for i in range(len(labels))], labels)
        ax.set_ylim(-0.6, len(labels) - 0.2)
        ax.set_xlim(0, end * 1.05)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel("seconds since QEMU started")
        ax.grid(axis="y", visible=False)
        return fig

    where = (
        f"died at {boot['fatal_t']:.2f} s in {boot['stage']} (the grey bar: the crash dump, the registers and "
        f"stopping QEMU, until {end:.2f} s)"
        if boot["fatal_t"] is not None
        else (f"ended {boot['outcome']} at stage {boot['stage'] or '-'}")
    )
    return Figure(
        name,
        "Timeline",
        f"Each bar runs from the moment a stage was reached to the next one; this boot {where}. A long bar is "
        f"where the time went.",
        _draw(name, draw),
    )


def boot_figures(page: Page) -> list[Figure]:
    return _drawn(boot_timeline(page.data["boot"]))


# -- history -------------------------------------------------------------------------------------------------------


def history_rates(rows: list[dict[str, Any]], variants: list[str], name: str = "history") -> Figure | None:
    """Each trial's rate and Wilson interval in the order they ran, one colour per variant (its --set values):
    trials of different configurations are not one series."""
    points = [r for r in rows if r.get("boots")]
    if not points:
        return None

    def style(variant: str) -> tuple[str, str]:
        i = variants.index(variant)
        return VARIANT_COLOURS[i % len(VARIANT_COLOURS)], VARIANT_MARKERS[(i // len(VARIANT_COLOURS)) % 4]

    def draw() -> MplFigure:
        fig = _figure(2.6)
        ax = fig.add_subplot()
        for x, r in enumerate(rows):
            if not r.get("boots"):
                continue
            _rate_point(ax, x, r, *style(" ".join(r["sets"])))
        step = max(1, math.ceil(len(rows) / 24))
        ax.set_xticks(
            list(range(0, len(rows), step)),
            [rows[i]["trial"] for i in range(0, len(rows), step)],
            rotation=45 if len(rows) > 10 else 0,
            ha="right" if len(rows) > 10 else "center",
        )
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylim(-3, 103)
        ax.set_ylabel("pass rate (%)")
        ax.set_xlabel("trials, oldest first")
        return fig

    used = list(dict.fromkeys(" ".join(r["sets"]) for r in points))
    return Figure(
        name,
        "Pass rate over time",
        "Each point is one trial with its 95% Wilson interval, oldest on the left; one colour and mark per set of "
        "--set values. Trust a change only where the intervals of two trials of one variant do not overlap.",
        _draw(name, draw),
        legend=[(*style(v), v or "(no --set)") for v in used],
    )


def revision_rates(revisions: list[dict[str, Any]], variants: list[str], name: str = "revisions") -> Figure | None:
    """The boots of every trial pooled per source revision, rate and Wilson interval, in the order the revisions
    were first booted; one colour per variant (as in :func:`history_rates`), side by side at a revision."""
    if not revisions:
        return None
    ticks = list(dict.fromkeys((r["revision"]["commit"], r["revision"]["dirty"]) for r in revisions))
    labels = {(r["revision"]["commit"], r["revision"]["dirty"]): r["tick"] for r in revisions}
    used = list(dict.fromkeys(r["variant"] for r in revisions))

    def style(variant: str) -> tuple[str, str]:
        i = variants.index(variant)
        return VARIANT_COLOURS[i % len(VARIANT_COLOURS)], VARIANT_MARKERS[(i // len(VARIANT_COLOURS)) % 4]

    def draw() -> MplFigure:
        fig = _figure(2.7)
        ax = fig.add_subplot()
        k = len(used)
        for r in revisions:
            x = ticks.index((r["revision"]["commit"], r["revision"]["dirty"])) + 0.0
            x += (used.index(r["variant"]) - (k - 1) / 2) * min(0.5 / k, 0.18)
            _rate_point(ax, x, r, *style(r["variant"]))
        step = max(1, math.ceil(len(ticks) / 26))
        shown = list(range(0, len(ticks), step))
        ax.set_xticks(shown, [labels[ticks[i]] for i in shown], rotation=55, ha="right", rotation_mode="anchor",
                      fontsize=7.5)  # fmt: skip
        ax.set_xlim(-0.6, len(ticks) - 0.4)
        ax.set_ylim(-3, 103)
        ax.set_ylabel("pass rate (%)")
        ax.set_xlabel("source revisions, in the order they were first booted")
        ax.grid(axis="x", visible=False)
        return fig

    return Figure(
        name,
        "Pass rate per revision",
        "Every boot of the trials above pooled by the commit its image was built from (+dirty: from a tree with "
        "uncommitted changes), with its 95% Wilson interval, one colour and mark per set of --set values. A "
        "revision booted by several trials has a narrower interval than any of them.",
        _draw(name, draw),
        legend=[(*style(v), v or "(no --set)") for v in used] if len(used) > 1 else [],
    )


def history_figures(page: Page) -> list[Figure]:
    return _drawn(
        history_rates(page.data["rows"], page.data["variants"]),
        revision_rates(page.data["revisions"], page.data["variants"]),
    )


# -- bisect --------------------------------------------------------------------------------------------------------

#: Failure titles of a bisect in these colours, commonest first (purple, orange, blue, sky, black, yellow); further
#: titles share one grey. Passes are the outcome green, as everywhere; vermillion marks the answer (the first bad
#: or good commit) in every bisect figure, so no title wears it.
TITLE_COLOURS = ("#CC79A7", "#E69F00", "#0072B2", "#56B4E9", "#000000", "#F0E442")
OTHER_TITLES = "#8c8c8c"
IGNORED = "#d0d0d0"  # failures of another title than --title's: neither good nor bad evidence
EXCLUDED = "#eeeeee"  # qemu-error / infra-error: nothing about the guest


def _commit_ticks(line: list[dict[str, Any]], best: int, keep: set[int], limit: int = 26) -> list[int]:
    """Which commits of the line get a labelled tick: all of them on a short line, else the ends, the best one and
    then the tested ones (``keep``), thinned so that labels never crowd (kept a few commits apart)."""
    n = len(line)
    if n <= limit:
        return list(range(n))
    gap = max(1, math.ceil(n / limit))
    chosen: list[int] = []
    for i in [0, n - 1, best, *sorted(keep)]:
        if all(abs(i - j) >= gap for j in chosen):
            chosen.append(i)
    return sorted(chosen)


def bisect_posterior(page: Page, name: str = "posterior") -> Figure | None:
    """The posterior of "commit k is the first bad (good) one" for every commit of the line, the asked confidence
    as a dashed line, and under the axis which commits were booted or could not be built."""
    data, b = page.data, page.data["bisect"]
    line = data["line"]
    if not line or line[0]["posterior"] is None:
        return None
    best = b["best"]["index"]
    found = b.get("culprit") is not None
    word = "good" if b["direction"] == "fix" else "bad"
    n = len(line)

    def draw() -> MplFigure:
        fig = _figure(2.7)
        ax = fig.add_subplot()
        xs = [c["index"] for c in line]
        ys = [100 * c["posterior"] for c in line]
        colours = [FAIL if c["index"] == best else ARM_COLOURS[0] for c in line]
        ax.bar(xs, ys, width=0.8 if n <= 80 else 1.0, color=colours, linewidth=0)
        ax.axhline(100 * b["confidence"], color=INK, linewidth=0.9, linestyle=(0, (4, 3)))
        ax.text(
            n - 0.5,
            100 * b["confidence"] + 2,
            f"asked confidence {pct(b['confidence'])}",
            ha="right",
            va="bottom",
            fontsize=8,
            color=INK,
        )
        tested = [c["index"] for c in line if c["tested"]]
        skipped = [c["index"] for c in line if c["skipped"]]
        ax.scatter(tested, [-5] * len(tested), marker="^", s=22, color=INK, linewidths=0, clip_on=False)
        ax.scatter(skipped, [-5] * len(skipped), marker="x", s=24, color=FAIL, linewidths=1.4, clip_on=False)
        p = ys[best]
        ax.annotate(
            f"{line[best]['commit'][:12]}  {p / 100:.3f}",
            (best, p),
            xytext=(0, 4),
            textcoords="offset points",
            ha="left" if best < n * 0.6 else "right",
            va="bottom",
            fontsize=8.5,
            fontweight="bold",
            color=FAIL,
        )
        ticks = _commit_ticks(line, best, {*tested, *skipped})
        labels = []
        for i in ticks:
            end = " good" if i == (n - 1 if b["direction"] == "fix" else 0) else ""
            end = " bad" if i == (0 if b["direction"] == "fix" else n - 1) else end
            labels.append(line[i]["commit"][:7] + end)
        ax.set_xticks(ticks, labels, rotation=55, ha="right", rotation_mode="anchor", fontsize=7.5)
        for tick, i in zip(ax.get_xticklabels(), ticks, strict=True):
            if i == best:
                tick.set_color(FAIL)
                tick.set_fontweight("bold")
        ax.set_xlim(-0.7, n - 0.3)
        ax.set_ylim(-9, 108)
        ax.set_yticks([0, 25, 50, 75, 100])
        ax.set_ylabel("posterior (%)")
        ax.set_xlabel("commits of the line, oldest to newest")
        ax.grid(axis="x", visible=False)
        return fig

    answer = (
        f"{line[best]['commit'][:12]} reached {b['posterior']:.3f}"
        if found
        else f"no commit reached {b['confidence']:g}; the likeliest, {line[best]['commit'][:12]}, has "
        f"{b['posterior']:.3f}"
    )
    return Figure(
        name,
        f"Which commit is the first {word} one",
        f"Each bar is the probability that this commit is the first {word} one, given all {b['boots']} boots "
        f"(the symptom's rates before and after the change unknown, integrated out): {answer}. The search stops "
        f"when a bar reaches the dashed line. Under the axis: ▲ commits booted, ✕ commits that could not be built "
        f"(never booted, but still candidates).",
        _draw(name, draw),
    )


def bisect_rates(page: Page, name: str = "rates") -> Figure | None:
    """The share of each tested commit's counted boots that showed the symptom, with its Wilson interval, against
    the estimated rates before and after the likeliest change: the step the search believes in."""
    data, b = page.data, page.data["bisect"]
    rows = [c for c in data["commits"] if c["counted"]]
    if not rows:
        return None
    n = b["line_length"]
    best = b["best"]["index"]

    def draw() -> MplFigure:
        fig = _figure(2.5)
        ax = fig.add_subplot()
        # the estimated rates as a step at the likeliest change (posterior means, averaged over where it is)
        old, new = 100 * b["symptom_rate_old"], 100 * b["symptom_rate_new"]
        ax.plot([-0.5, best - 0.5], [old, old], color=MUTED, linewidth=1.2, linestyle=(0, (2, 2)))
        ax.plot([best - 0.5, n - 0.5], [new, new], color=MUTED, linewidth=1.2, linestyle=(0, (2, 2)))
        ax.plot([best - 0.5, best - 0.5], [old, new], color=MUTED, linewidth=0.8, linestyle=(0, (2, 2)))
        ax.text(-0.4, old + 2.5, f"p_old ≈ {old:.0f}%", fontsize=8, color=MUTED, va="bottom")
        ax.text(n - 0.6, new + 2.5, f"p_new ≈ {new:.0f}%", fontsize=8, color=MUTED, va="bottom", ha="right")
        for c in rows:
            _rate_point(ax, c["index"], c["symptom_rate"], FAIL if c["index"] == best else ARM_COLOURS[0])
        ticks = _commit_ticks(data["line"], best, {c["index"] for c in rows})
        ax.set_xticks(ticks, [data["line"][i]["commit"][:7] for i in ticks], rotation=55, ha="right",
                      rotation_mode="anchor", fontsize=7.5)  # fmt: skip
        ax.set_xlim(-0.7, n - 0.3)
        ax.set_ylim(-4, 104)
        ax.set_ylabel("boots with the symptom (%)")
        ax.set_xlabel("commits of the line, oldest to newest")
        ax.grid(axis="x", visible=False)
        return fig

    return Figure(
        name,
        "The symptom's rate per commit",
        f"Each point is a tested commit: the share of its counted boots that showed the symptom, with its 95% "
        f"Wilson interval. The dashed step is what the search estimates: about {pct(b['symptom_rate_old'])} before "
        f"the change and {pct(b['symptom_rate_new'])} after it. A commit with few boots has a wide interval: that "
        f"is why one clean batch does not clear a commit of a flaky regression.",
        _draw(name, draw),
    )


def bisect_boots(page: Page, name: str = "commits") -> Figure | None:
    """One row per tested commit (oldest at the top): its boots as a bar, clean ones green, those showing the
    symptom coloured by failure title, failures ignored by ``--title`` and qemu/infra errors in greys."""
    data, b = page.data, page.data["bisect"]
    rows = data["commits"]
    if not rows:
        return None
    totals: Counter[str] = Counter()
    for c in rows:
        for title, count in c["evidence_titles"]["symptom"]:
            totals[title] += count
    named = [t for t, _ in totals.most_common(len(TITLE_COLOURS))]
    colour_of = {t: TITLE_COLOURS[i] for i, t in enumerate(named)}
    best = b["best"]["index"]
    widest = max((sum(c["evidence"].values()) for c in rows), default=1) or 1

    def label(c: dict[str, Any]) -> str:
        subject = c.get("subject") or ""
        return f"{c['commit'][:8]}  {_short(subject, 30)}"

    def draw() -> MplFigure:
        fig = _figure(0.3 * len(rows) + 0.9)
        ax = fig.add_subplot()
        for r, c in enumerate(rows):
            y = len(rows) - 1 - r
            x = 0.0
            segments = [("clean", OUTCOME_COLOURS["pass"], c["evidence"]["clean"])]
            symptom = dict(c["evidence_titles"]["symptom"])
            segments += [(t, colour_of[t], symptom.pop(t)) for t in named if t in symptom]
            segments.append(("other", OTHER_TITLES, sum(symptom.values())))
            segments += [
                ("ignored", IGNORED, c["evidence"]["ignored"]),
                ("excluded", EXCLUDED, c["evidence"]["excluded"]),
            ]
            for _, colour, count in segments:
                if count:
                    ax.barh(y, count, left=x, height=0.62, color=colour, linewidth=0.6, edgecolor="#ffffff")
                    x += count
            if c.get("skipped"):
                ax.text(0.1, y, f"skipped: {_short(c['skipped'], 70)}", va="center", fontsize=8, color=FAIL)
                continue
            counted = c["counted"]
            text = f"{c['symptom']}/{counted}" + (f"  p={c['posterior']:.2f}" if c["posterior"] >= 0.01 else "")
            ax.text(x + widest * 0.01, y, text, va="center", fontsize=8, color=FAIL if c["index"] == best else INK)
        ax.set_yticks([len(rows) - 1 - r for r in range(len(rows))], [label(c) for c in rows], fontsize=8)
        for tick, c in zip(ax.get_yticklabels(), rows, strict=True):
            if c["index"] == best:
                tick.set_color(FAIL)
                tick.set_fontweight("bold")
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlim(0, widest * 1.22 + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("boots")
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ax.grid(axis="y", visible=False)
        return fig

    legend = [(OUTCOME_COLOURS["pass"], "s", "clean (passed)")]
    legend += [(colour_of[t], "s", t) for t in named]
    if len(totals) > len(named):
        legend.append((OTHER_TITLES, "s", f"{len(totals) - len(named)} other failure titles"))
    if any(c["evidence"]["ignored"] for c in rows):
        legend.append((IGNORED, "s", f"other failures, ignored (not /{b['title']}/)"))
    if any(c["evidence"]["excluded"] for c in rows):
        legend.append((EXCLUDED, "s", "qemu-error / infra-error, not counted"))
    what = f"failures titled /{b['title']}/" if b.get("title") else "failures"
    return Figure(
        name,
        "Boots and failures per commit",
        f"Each row is a commit the search booted, oldest at the top; its bar is its boots, coloured by what they "
        f"showed ({what} count as the symptom, coloured by title). On the right: boots with the symptom / boots "
        f"counted, and the commit's posterior. "
        + (
            f"The first {'good' if b['direction'] == 'fix' else 'bad'} commit is in red."
            if b.get("culprit")
            else "In red, the likeliest commit: no commit is sure yet."
        ),
        _draw(name, draw),
        legend=legend,
    )


def bisect_figures(page: Page) -> list[Figure]:
    return _drawn(bisect_posterior(page), bisect_boots(page), bisect_rates(page))


#: kind of page -> its figures.
FIGURES: dict[str, Callable[[Page], list[Figure]]] = {
    "trial": trial_figures,
    "matrix": matrix_figures,
    "comparison": comparison_figures,
    "boot": boot_figures,
    "history": history_figures,
    "bisect": bisect_figures,
}


def figures(page: Page) -> list[Figure]:
    return FIGURES[page.kind](page)
