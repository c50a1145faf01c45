"""Trials: N boots of one profile, summarised honestly.

A trial is a list of finished boots; :func:`summarize` turns it into the numbers the user reads (pass rate with
its Wilson interval, outcomes, crash titles with the first boot and seed that showed each, incidents, per-stage
time percentiles). Running boots is :mod:`bootlab.lab.runner`'s job; this module only counts, so it is tested
with made-up verdicts and reused for stored trials (``compare --trials``, ``show``, ``export``).

What counts (and why):

- ``qemu-error`` and ``infra-error`` boots say nothing about the guest: they are *excluded* from the rate and
  reported apart (``excluded``). If they are most of the boots, the summary says so loudly (``warning``).
- With ``strict``, a boot that reached ready but had incidents (a daemon died on the way) counts as a failure:
  the user's "works" usually means "works cleanly".
- ``boots`` in the summary is the number of boots *counted in the rate*; ``boots + excluded`` ran.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bootlab.lab.results import CheckStats, StageStats, Summary, TitleGroup
from bootlab.lab.stats import Sprt, percentile, width_fixed_n, wilson
from bootlab.verdict import INFRA, Verdict


def derive_seed(base: int, index: int, salt: str = "") -> int:
    """The seed of boot ``index`` of a trial with seed base ``base``: the first 32 bits of
    sha256("base:salt:index"). Hashed, not base+index, so that guests that use the seed directly (an LCG) do not
    get correlated neighbours; deterministic, so ``--seed-base`` replays a whole trial."""
    digest = hashlib.sha256(f"{base}:{salt}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def seed_base_or_random(seed_base: int | None) -> int:
    """The seed base of a run (trial, matrix, comparison, bisect): the one given (``--seed-base``), else 32 random
    bits; either way it is recorded, so the whole run replays."""
    import secrets

    return seed_base if seed_base is not None else secrets.randbits(32)


@dataclass
class BootRecord:
    """One finished boot of a trial: its index, seed, verdict and store id (``b42``) once stored."""

    idx: int
    seed: int
    verdict: Verdict
    ref: str | None = None


def replay_command(
    profile: str, sets: list[str] | None, seed: int | None, revision: Mapping[str, Any] | None = None
) -> str:
    """The command that boots one boot of a trial again: its profile, every ``--set`` of the trial, its seed.

    Shown by ``show``, ``trial``, ``export --format junit`` and reports; without the trial's ``--set`` values the
    command would boot a different configuration (``--set cpu=max`` is what made the boot crash). ``revision``
    (the boot's stored one): when its images were built in bootlab's own checkout (``--rev``, a bisect), plain
    ``bootlab boot`` would boot whatever the user's tree holds now, so the command is preceded by a comment line
    saying which build to put in place first, and how. ``sets`` None: a single boot stored before bootlab recorded
    them (store schema 2), said in a comment line too, rather than a command that looks complete and is not."""
    from bootlab.source.revision import Revision

    notes = []
    if sets is None:
        notes.append("# stored before bootlab recorded --set values: add the ones it ran with (see its profile)")
    sets_text = "".join(f" --set {shlex.quote(x)}" for x in sets or [])
    command = f"bootlab boot {shlex.quote(profile)}{sets_text} --seed {seed if seed is not None else 'SEED'}"
    built = Revision.from_json(dict(revision)) if revision else None
    if built is not None and built.built_apart:
        commit = str(built.commit)[:12]
        how = f"git switch --detach {commit} && bootlab build {shlex.quote(profile)}{sets_text}"
        notes.append(f"# first put the build of {built.short()} in place: {how}")
    return "\n".join([*notes, command])


def stage_times(verdicts: Iterable[Verdict]) -> dict[str, list[float]]:
    """Seconds since QEMU start at which each stage was reached, per stage, in the order stages first appear."""
    times: dict[str, list[float]] = {}
    for verdict in verdicts:
        for s in verdict.stages:
            if s.t is not None:
                times.setdefault(s.name, []).append(s.t)
    return times


def check_stats(verdicts: Iterable[Verdict]) -> list[CheckStats]:
    """Each check's counts over ``verdicts``, in the order the checks first appear; skipped runs do not count."""
    runs: dict[str, list[Any]] = {}
    for verdict in verdicts:
        for c in verdict.checks:
            runs.setdefault(c.name, [])
            if c.status != "skipped":
                runs[c.name].append(c)
    out = []
    for name, done in runs.items():
        times = [c.duration_s for c in done if c.duration_s is not None and c.status in ("pass", "fail")]
        out.append(
            CheckStats(
                name=name,
                ran=len(done),
                passed=sum(1 for c in done if c.passed),
                failed=sum(1 for c in done if c.status in ("fail", "timeout")),
                timed_out=sum(1 for c in done if c.status == "timeout"),
                p50_s=round(percentile(times, 50), 3) if times else None,
            )
        )
    return out


def judge(verdict: Verdict, strict: bool = False) -> bool | None:
    """How one boot counts in a pass rate: True a pass, False a failure, None not at all (a qemu-error or
    infra-error says nothing about the guest). With ``strict`` a pass with incidents is a failure."""
    if verdict.outcome in INFRA:
        return None
    return verdict.passed and not (strict and bool(verdict.incidents))


@dataclass
class Tally:
    """Boots counted into a pass rate: passes, failures, and those left out (qemu/infra errors), with the rate
    and its 95% Wilson interval.

    The one tally of outcomes: trial summaries, running arms (progress, early stops), the store's history of a
    trial still running, JUnit exports and report pages all count through it (each boot through :func:`judge`),
    so that they cannot disagree on what counts, e.g. on ``--strict``."""

    passed: int = 0
    failed: int = 0
    excluded: int = 0

    @classmethod
    def of(cls, verdicts: Iterable[Verdict], *, strict: bool = False) -> Tally:
        tally = cls()
        for verdict in verdicts:
            tally.add(verdict, strict)
        return tally

    def add(self, verdict: Verdict, strict: bool = False) -> bool | None:
        """Count one boot; returns how it counted (:func:`judge`)."""
        judged = judge(verdict, strict)
        if judged is None:
            self.excluded += 1
        else:
            self.count(judged)
        return judged

    def count(self, passed: bool) -> None:
        """Count a boot already judged (a report's boot view carries the judgement, not the verdict)."""
        if passed:
            self.passed += 1
        else:
            self.failed += 1

    @property
    def boots(self) -> int:
        """Boots counted in the rate (``excluded`` ones are not)."""
        return self.passed + self.failed

    @property
    def rate(self) -> float | None:
        return self.passed / self.boots if self.boots else None

    def ci95(self) -> tuple[float, float]:
        """The Wilson interval of the rate; (0, 1) when nothing is counted."""
        return wilson(self.passed, self.boots)

    def to_json(self) -> dict[str, Any]:
        """``passed``, ``boots``, ``rate``, ``ci95``: the keys of a trial's summary that a rate is printed from
        (:func:`bootlab.report.text.rate_text`)."""
        return {"passed": self.passed, "boots": self.boots, "rate": self.rate, "ci95": list(self.ci95())}


def mark(result: Mapping[str, Any]) -> str:
    """The user's notes' mark of a trial's (or a matrix cell's) JSON: pass (all passed), flaky (some failed),
    fail (all failed), none (nothing counted), refused (by lint). ``bootlab.report.text.MARKS`` draws them."""
    if result.get("refused"):
        return "refused"
    boots, passed = result["boots"], result["passed"]
    if boots == 0:
        return "none"
    if passed == boots:
        return "pass"
    if passed == 0:
        return "fail"
    return "flaky"


def failure_title(verdict: Verdict) -> str:
    """What to group a failed boot under: its crash title, else "<outcome> after <stage>"."""
    if verdict.title:
        return verdict.title
    if verdict.passed:
        return "incidents (strict)"
    return f"{verdict.outcome} after {verdict.stage or 'start'}"


def _grouped(items: list[tuple[str, BootRecord]]) -> list[TitleGroup]:
    groups: dict[str, TitleGroup] = {}
    for title, rec in sorted(items, key=lambda x: x[1].idx):
        g = groups.get(title)
        if g is None:
            groups[title] = TitleGroup(title=title, count=1, first_seed=rec.seed, first_boot=rec.ref)
        else:
            g.count += 1
    return sorted(groups.values(), key=lambda g: (-g.count, g.title))


def summarize(records: list[BootRecord], *, strict: bool = False) -> Summary:
    """The trial's numbers (the fields of ``bootlab trial --json`` after its id and profile)."""
    tally = Tally()
    counted: list[BootRecord] = []
    failed: list[BootRecord] = []
    left_out: list[BootRecord] = []
    outcomes: dict[str, int] = {}
    for r in records:
        passed = tally.add(r.verdict, strict)
        (left_out if passed is None else counted).append(r)
        if passed is False:
            failed.append(r)
        outcomes[r.verdict.outcome] = outcomes.get(r.verdict.outcome, 0) + 1
    excluded, n = tally.excluded, tally.boots
    titles = _grouped([(failure_title(r.verdict), r) for r in failed])
    infra = _grouped([(failure_title(r.verdict), r) for r in left_out])
    incidents = _grouped([(i.title, r) for r in records for i in r.verdict.incidents])
    stages = {
        name: StageStats(
            p50=round(percentile(ts, 50), 3), p90=round(percentile(ts, 90), 3), max=round(max(ts), 3), n=len(ts)
        )
        for name, ts in stage_times(r.verdict for r in records).items()
    }
    checks = check_stats(r.verdict for r in counted)
    warning = None
    if excluded and excluded >= len(counted):
        warning = (
            f"{excluded} of {len(records)} boots were qemu-error/infra-error: the host or the profile is the "
            f"problem here, not the guest; the rate covers only {n} boot(s)"
        )
    return Summary(
        boots=n,
        passed=tally.passed,
        rate=tally.rate,
        ci95=tally.ci95(),
        outcomes=outcomes,
        titles=titles,
        incidents=incidents,
        stages=stages,
        checks=checks,
        excluded=excluded,
        excluded_titles=infra,
        strict=strict,
        warning=warning,
    )


@dataclass
class Stopper:
    """``--until-confident``: stop an arm when the SPRT decides (``--target``) or the interval is narrow enough
    (``--width``). ``check`` is called after every finished boot with the counts so far."""

    sprt: Sprt | None = None
    width: float | None = None
    decision: str | None = None  # reached | refuted | narrow
    decided_at: int | None = None
    history: list[str] = field(default_factory=list)

    def check(self, passes: int, fails: int) -> bool:
        n = passes + fails
        if self.decision is not None:
            return True
        if self.sprt is not None:
            d = self.sprt.decide(passes, fails)
            if d != "undecided":
                self.decision, self.decided_at = d, n
                return True
        if self.width is not None and n >= 2:
            lo, hi = Tally(passes, fails).ci95()
            if hi - lo < self.width:
                self.decision, self.decided_at = "narrow", n
                return True
        return False

    def report(self, used: int, cap: int) -> dict[str, Any]:
        """What the sequential stop decided and what it saved against a fixed-N plan with the same guarantees.

        ``saved`` is None when nothing was decided (the cap came first, or the trial was interrupted): the boots a
        fixed-N test would need are still reported (``fixed_n``), but no boots were saved by a decision never made.
        """
        out: dict[str, Any] = {"decision": self.decision or "undecided", "boots_used": used, "cap": cap}

        def saved(fixed: int) -> int | None:
            return max(0, fixed - used) if self.decision is not None else None

        if self.sprt is not None:
            out.update(
                method="sprt",
                target=self.sprt.target,
                refute_below=round(self.sprt.p0, 4),
                alpha=self.sprt.alpha,
                beta=self.sprt.beta,
                describe=self.sprt.describe(),
            )
        elif self.width is not None:
            out.update(method="width")
        if self.width is not None:
            out["width"] = self.width
        # the fixed-N plan with the guarantees of the rule that decided: a stop on width (also with --target)
        # is measured against the N planned for that width, not against the SPRT's
        if self.width is not None and (self.sprt is None or self.decision == "narrow"):
            fixed = width_fixed_n(self.width)
        elif self.sprt is not None:
            fixed = self.sprt.fixed_n()
        else:
            return out
        out.update(fixed_n=fixed, saved=saved(fixed))
        return out
