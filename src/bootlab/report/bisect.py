"""A bisect as text: its answer, the commits it tested, and live progress while it runs."""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Any

from bootlab.report.text import pct

if TYPE_CHECKING:
    from bootlab.lab.runner import Arm
    from bootlab.lab.summary import BootRecord


class _BootLines:
    """The runner's progress for one batch: a line per finished boot."""

    def __init__(self, owner: BisectLines) -> None:
        self.owner = owner

    def start(self, arms: list[Arm]) -> None:
        pass

    def update(self, arm: Arm, record: BootRecord | None) -> None:
        if record is None:
            return
        from bootlab.lab.summary import failure_title

        v = record.verdict
        what = v.outcome if v.passed else f"{v.outcome}: {failure_title(v)}"
        ref = f" ({record.ref})" if record.ref else ""
        where = f" on {v.worker.name}" if v.worker is not None else ""  # --cluster: which worker booted it
        self.owner.line(f"  {arm.label[:12]} boot #{record.idx} seed {record.seed}{where}: {what}{ref}")

    def stop(self) -> None:
        pass


class BisectLines:
    """Plain lines on stderr (a CI log, a pipe, a terminal alike): builds, each boot, the posterior after each
    batch. ``quiet`` prints nothing."""

    def __init__(self, stream: IO[str] | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.monotonic()

    def line(self, text: str) -> None:
        if not self.quiet:
            elapsed = time.monotonic() - self.t0
            print(f"[{int(elapsed) // 60:3d}m{int(elapsed) % 60:02d}s] {text}", file=self.stream, flush=True)

    def boots(self) -> Any:
        from bootlab.lab.runner import NullProgress

        return NullProgress() if self.quiet else _BootLines(self)

    def event(self, text: str) -> None:
        self.line(text)


class _RichBoots(_BootLines):
    """On a terminal: the same lines, plus a spinner saying which batch is booting and how far it is."""

    owner: RichBisectLines

    def start(self, arms: list[Arm]) -> None:
        self.first = {id(a): a.started for a in arms}
        label = ", ".join(a.label for a in arms)
        self.owner.status = self.owner.console.status(f"booting {label}", spinner="dots")
        self.owner.status.start()

    def update(self, arm: Arm, record: BootRecord | None) -> None:
        super().update(arm, record)
        if self.owner.status is not None:
            size = arm.n - self.first.get(id(arm), 0)
            fails = arm.tally().failed
            self.owner.status.update(
                f"booting {arm.label}: {len(arm.records)} of {size} done ({fails} failed), {arm.running} running"
            )

    def stop(self) -> None:
        if self.owner.status is not None:
            self.owner.status.stop()
            self.owner.status = None


class RichBisectLines(BisectLines):
    """BisectLines drawn with rich on a terminal: a live spinner for the batch in flight."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.status: Any = None

    def line(self, text: str) -> None:
        from rich.text import Text

        elapsed = time.monotonic() - self.t0
        self.console.print(Text.assemble((f"[{int(elapsed) // 60:3d}m{int(elapsed) % 60:02d}s] ", "dim"), text))

    def boots(self) -> Any:
        return _RichBoots(self)


def make_bisect_progress(*, quiet: bool = False) -> BisectLines:
    """Nothing when ``quiet``; a live spinner and lines on a terminal; plain lines otherwise (CI logs, pipes)."""
    if not quiet and sys.stderr.isatty():
        return RichBisectLines()
    return BisectLines(quiet=quiet)


def print_bisect(r: dict[str, Any], stream: IO[str] | None = None) -> None:
    out = stream or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out)

    direction = "fix" if r["direction"] == "fix" else "regression"
    status = "" if r["status"] == "done" else f" [{r['status']}]"
    sets = "".join(f" --set {s}" for s in r.get("sets", []))
    good, bad = r["good"], r["bad"]
    say(
        f"bisect {r['bisect']}: {r['profile']}{sets}, {direction} between good {good['commit'][:12]} ({good['rev']}) "
        f"and bad {bad['commit'][:12]} ({bad['rev']}), {r['line_length'] - 1} candidate commits{status}"
    )
    if r.get("title"):
        say(f"  only failures titled /{r['title']}/ count; other failures are ignored")
    c = r.get("culprit")
    if c is not None:
        say(f"{r['first']}: {c['commit']}")
        say(f"  {c['subject']}")
        say(f"  {c['author']}, {c['date']}")
        say(f"  posterior {c['posterior']:.3f} (asked for {r['confidence']:g}) after {r['boots']} boots")
    else:
        why = {
            "budget": f"the budget of {r['max_boots']} boots ran out",
            "exhausted": "no commit that can be booted would tell more (unbuildable commits in the way)",
            "interrupted": "interrupted",
        }.get(r["decision"], r["decision"])
        b = r["best"]
        say(f"no commit reached {r['confidence']:g} ({why}) after {r['boots']} boots")
        say(f"  most likely {r['first']}: {b['commit'][:12]} {b['subject'] or ''} (posterior {b['posterior']:.3f})")
    if r.get("runners_up"):
        say("  runners-up: " + ", ".join(f"{x['commit'][:12]} {x['posterior']:.3f}" for x in r["runners_up"]))
    say(
        f"  symptom rate (estimated): {pct(r['symptom_rate_old'])} before the change, "
        f"{pct(r['symptom_rate_new'])} after it"
    )
    say("commits tested (oldest first):")
    for row in r["commits"]:
        end = {"old": " [old end]", "new": " [new end]"}.get(row.get("end") or "", "")
        subject = (row.get("subject") or "")[:44]
        if row.get("skipped"):
            say(f"  {row['commit'][:12]}  skipped: {row['skipped'][:100]}{end}")
            continue
        counted = row["symptom"] + row["clean"]
        extra = []
        if row["ignored"]:
            extra.append(f"{row['ignored']} other failures ignored")
        if row["excluded"]:
            extra.append(f"{row['excluded']} qemu/infra errors")
        more = f" ({', '.join(extra)})" if extra else ""
        say(
            f"  {row['commit'][:12]}  {row['symptom']:>3}/{counted:<3} symptom  p={row['posterior']:.3f}  "
            f"{row.get('trial') or '-':>5}  {subject}{end}{more}"
        )
        for t in row.get("titles", [])[:3]:
            say(f"      {t['count']:>3} x {t['title']}")
    if r["status"] == "interrupted":
        say(f"  interrupted: resume with `bootlab bisect --resume {r['bisect']}` (no boot is repeated)")
