"""Live progress of running trials: a rich table on a terminal, one plain line per finished boot otherwise.

Shown per arm: boots done of the cap, passes and failures so far, the pass rate with its 95% interval (so one
can see the interval narrowing), the boot rate and an ETA. Progress goes to stderr so that ``--json`` on stdout
stays clean; rich is imported only when a terminal is there to draw on.
"""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Any

from bootlab.lab.summary import BootRecord, failure_title
from bootlab.report.text import rate_text

if TYPE_CHECKING:
    from bootlab.lab.runner import Arm


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class _Base:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.arms: list[Arm] = []

    def start(self, arms: list[Arm]) -> None:
        self.t0 = time.monotonic()
        self.arms = arms

    def per_worker(self) -> str:
        """Boots done per cluster worker ("w1 5, w2 4"); empty for a local run."""
        counts: dict[str, int] = {}
        for arm in self.arms:
            for r in arm.records:
                if r.verdict.worker is not None:
                    counts[r.verdict.worker.name] = counts.get(r.verdict.worker.name, 0) + 1
        return ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))

    def totals(self) -> tuple[int, int, float | None, float]:
        """(done, remaining, eta seconds, boots per minute) over all arms."""
        done = sum(len(a.records) for a in self.arms)
        remaining = sum(max(0, a.n - len(a.records)) for a in self.arms)
        elapsed = max(1e-6, time.monotonic() - self.t0)
        rate = done / elapsed
        eta = remaining / rate if rate > 0 else None
        return done, remaining, eta, rate * 60


class PlainProgress(_Base):
    """One line per finished boot: what a CI log or a pipe wants."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self.stream = stream or sys.stderr

    def update(self, arm: Arm, record: BootRecord | None) -> None:
        if record is None:
            return
        tally = arm.tally()
        v = record.verdict
        what = v.outcome if v.passed else f"{v.outcome}: {failure_title(v)}"
        if v.passed and v.incidents:
            what += f" ({len(v.incidents)} incident(s))"
        _, _, eta, per_min = self.totals()
        label = f"{arm.label} " if len(self.arms) > 1 else ""
        where = f" on {v.worker.name}" if v.worker is not None else ""
        print(
            f"  {label}boot {len(arm.records)}/{arm.n} seed {record.seed}{where}: {what} | "
            f"{tally.passed} passed, {tally.failed} failed, {rate_text(tally.to_json(), counts=False)} | "
            f"{per_min:.1f} boots/min, ETA {_eta(eta)}",
            file=self.stream,
            flush=True,
        )

    def stop(self) -> None:
        pass


class RichProgress(_Base):
    """A live table, redrawn as boots finish (and every second, so the ETA and the spinner move)."""

    def __init__(self, title: str) -> None:
        super().__init__()
        from rich.console import Console
        from rich.live import Live

        self.title = title
        self.console = Console(stderr=True)
        self.live = Live(console=self.console, refresh_per_second=2, transient=False, get_renderable=self._render)

    def start(self, arms: list[Arm]) -> None:
        super().start(arms)
        self.live.start()

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        done, _remaining, eta, per_min = self.totals()
        table = Table(
            title=Text(f"{self.title}: {done} boots done, {per_min:.1f} boots/min, ETA {_eta(eta)}"),
            title_justify="left",
            box=None,
            pad_edge=False,
        )
        for col in ("", "boots", "pass", "fail", "rate [95% CI]", "running", "last"):
            table.add_column(col)
        for arm in self.arms:
            tally = arm.tally()
            last = arm.records[-1] if arm.records else None
            last_text = (
                "" if last is None else (last.verdict.outcome if last.verdict.passed else failure_title(last.verdict))
            )
            table.add_row(
                Text(arm.label),
                f"{len(arm.records)}/{arm.n}",
                str(tally.passed),
                str(tally.failed),
                rate_text(tally.to_json(), counts=False),
                str(arm.running),
                Text(last_text[:50]),
            )
        workers = self.per_worker()
        if workers:
            table.caption = Text(f"boots per worker: {workers}")
            table.caption_justify = "left"
        return table

    def update(self, arm: Arm, record: BootRecord | None) -> None:
        self.live.refresh()

    def stop(self) -> None:
        self.live.stop()


def make_progress(title: str, *, quiet: bool = False, stream: IO[str] | None = None) -> Any:
    """Rich on a terminal, plain lines otherwise, nothing when ``quiet``."""
    from bootlab.lab.runner import NullProgress

    if quiet:
        return NullProgress()
    out = stream or sys.stderr
    if out.isatty():
        return RichProgress(title)
    return PlainProgress(out)
