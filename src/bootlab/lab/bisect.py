"""``bootlab bisect``: which commit made booting fail (or, with ``--fixed``, pass), with a stated confidence.

The search itself is :mod:`bootlab.lab.changepoint` (a Bayesian change point over the first-parent line between
the two ends, next commit by expected information). This module runs it for real:

- **Commits.** The line is resolved once and stored with the bisect, so ``--resume`` works on the same commits
  even after a branch named as an end has moved.
- **Builds.** A commit is built the first time it is chosen, in bootlab's own checkout (never the user's tree),
  and its outputs are kept in the cache, so coming back to it costs nothing. A commit that does not build is
  skipped (as ``git bisect skip``): it stays a candidate (it may be the culprit; the answer then says the change
  lies between it and its neighbour) but is never booted.
- **Boots.** Each batch is ``-j`` boots of one commit, run through :meth:`Lab.run` like a trial's boots, so a
  batch fans out the same way: over this host's cores, or over a cluster's workers when the lab is a
  :class:`~bootlab.cluster.lab.ClusterLab` (``bootlab bisect --cluster``). Every tested commit is a
  stored trial linked to the bisect; its boots carry the commit as their revision. Seeds come from the bisect's
  seed base salted by the commit, and continue from the boots already stored: a resumed bisect never repeats a
  boot.
- **Evidence.** A boot shows the symptom when it does not pass (with ``--strict``, also when it passed with
  incidents); with ``--title REGEX`` only a failure whose title matches shows it, and other failures count for
  nothing (an unrelated flaky crash must not steer the search). qemu-error and infra-error boots count for
  nothing either; a commit whose boots are mostly those is skipped.
- **State.** The bisect's row is updated after every batch, so a killed bisect resumes from what it knew.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bootlab.errors import UsageError
from bootlab.lab.changepoint import ChangePoint, Priors
from bootlab.lab.summary import failure_title, judge, seed_base_or_random
from bootlab.verdict import Verdict

if TYPE_CHECKING:
    from collections.abc import Callable

    from bootlab.lab.lab import Lab
    from bootlab.lab.runner import Progress
    from bootlab.source.build import Built
    from bootlab.source.checkout import Checkout
    from bootlab.source.git import CommitInfo
    from bootlab.store.db import Store

#: Default stop: one commit's posterior at least this.
CONFIDENCE = 0.95
#: Default boot budget of a bisect: a cap, not a plan (a bisect stops at the confidence, after about 50 boots for a
#: 40% crash). It is sized for the hard case bench/bisect.py measures, a 10% crash (median ~260 boots, p90 ~430):
#: with 200 three runs in four ended without an answer, wasting every boot spent.
MAX_BOOTS = 1000


@dataclass
class BisectSpec:
    """What to search: the profile, the two ends as the user named them, and the rules."""

    profile: str
    sets: list[str]
    good: str
    bad: str
    fixed: bool = False
    title: str | None = None
    confidence: float = CONFIDENCE
    max_boots: int = MAX_BOOTS
    jobs: int | None = None
    strict: bool = False
    seed_base: int | None = None
    note: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "sets": self.sets,
            "good": self.good,
            "bad": self.bad,
            "fixed": self.fixed,
            "title": self.title,
            "confidence": self.confidence,
            "max_boots": self.max_boots,
            "jobs": self.jobs,
            "strict": self.strict,
            "seed_base": self.seed_base,
        }

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> BisectSpec:
        return cls(
            profile=p["profile"],
            sets=list(p.get("sets") or []),
            good=p["good"],
            bad=p["bad"],
            fixed=bool(p.get("fixed")),
            title=p.get("title"),
            confidence=float(p.get("confidence", CONFIDENCE)),
            max_boots=int(p.get("max_boots", MAX_BOOTS)),
            jobs=p.get("jobs"),
            strict=bool(p.get("strict")),
            seed_base=p.get("seed_base"),
        )


def check_spec(spec: BisectSpec) -> re.Pattern[str] | None:
    """Bad options are one line each, before anything is built or booted."""
    if not 0.5 <= spec.confidence < 1:
        raise UsageError(f"--confidence {spec.confidence}: give a probability in [0.5, 1), e.g. 0.95")
    if spec.max_boots < 1:
        raise UsageError(f"--max-boots {spec.max_boots}: the budget must be at least 1 boot (e.g. 300)")
    if spec.jobs is not None and spec.jobs < 1:
        raise UsageError(f"-j {spec.jobs}: a batch is at least 1 boot")
    return None if spec.title is None else title_pattern(spec.title)


def title_pattern(text: str) -> re.Pattern[str]:
    """``--title REGEX`` (bisect, and trial's ``--bisect-exit``): searched in a failure's title."""
    try:
        return re.compile(text)
    except re.error as exc:
        raise UsageError(f"--title {text!r}: not a valid regular expression ({exc}); fix the pattern") from None


def symptom(verdict: Verdict, *, strict: bool, title: re.Pattern[str] | None) -> bool | None:
    """True: the boot shows the symptom; False: it is clean; None: it says nothing (infra, or another title)."""
    passed = judge(verdict, strict)
    if passed is None:
        return None
    if passed:
        return False
    if title is None:
        return True
    return True if title.search(failure_title(verdict)) else None


@dataclass
class Tested:
    """One commit of the line and what is known of it."""

    index: int
    commit: str
    trial_id: int | None = None
    boots: int = 0  # started and finished, whatever their outcome (the next seed index)
    symptom: int = 0
    clean: int = 0
    ignored: int = 0  # failures with another title (--title)
    excluded: int = 0  # qemu-error / infra-error
    titles: Counter[str] = field(default_factory=Counter)
    skipped: str | None = None  # why the commit is never booted (a build error)
    build: dict[str, Any] | None = None

    def add(self, verdict: Verdict, shows: bool | None) -> None:
        self.boots += 1
        if judge(verdict) is None:
            self.excluded += 1
        elif shows is None:
            self.ignored += 1
        elif shows:
            self.symptom += 1
        else:
            self.clean += 1
        if not verdict.passed or (shows and verdict.incidents):
            self.titles[failure_title(verdict)] += 1

    @property
    def infra_bound(self) -> bool:
        """Mostly qemu-error/infra-error: the commit cannot be tested (as ``git bisect skip``)."""
        return self.excluded >= 2 and self.excluded >= self.symptom + self.clean + self.ignored


class BisectProgress(Protocol):
    """What a bisect reports as it goes (on top of the runner's per-boot progress)."""

    def boots(self) -> Progress: ...
    def event(self, text: str) -> None: ...


class Bisection:
    """One bisect run by a :class:`~bootlab.lab.lab.Lab` (its project, host, store and boot function: a
    :class:`~bootlab.cluster.lab.ClusterLab` fans each batch out over its workers). :meth:`run` returns the
    ``--json`` object. ``Lab.bisect`` and ``Lab.resume_bisect`` are the way in."""

    def __init__(self, lab: Lab, *, progress: BisectProgress | None = None) -> None:
        if lab.store is None:
            raise ValueError("a bisect is stored as it goes: its lab needs a store")
        self.lab = lab
        self.project = lab.project
        self.store: Store = lab.store
        self.progress = progress
        self.builds: dict[str, Built] = {}
        self.commits: list[str] = []

    # -- setting up ---------------------------------------------------------------------------------------------

    def line(self, spec: BisectSpec) -> tuple[Path, list[str]]:
        """(repository, the first-parent line from the old end to the new end), checked."""
        from bootlab.source import git
        from bootlab.source.build import build_profile, repository

        profile = build_profile(self.project, spec.profile, spec.sets)
        repo = repository(profile)
        good = git.resolve(repo, spec.good, what="--good")
        bad = git.resolve(repo, spec.bad, what="--bad")
        if good == bad:
            raise UsageError(
                f"--good {spec.good} and --bad {spec.bad} are the same commit ({good[:12]}); give two different ends"
            )
        old, new = (bad, good) if spec.fixed else (good, bad)
        if not git.is_ancestor(repo, old, new):
            if spec.fixed:
                raise UsageError(
                    f"--bad {spec.bad} is not an ancestor of --good {spec.good}: with --fixed the bad end is the "
                    f"older one (it still fails) and the good end the newer one; swap them or drop --fixed"
                )
            hint = " (if the newer one is the good one, you are looking for a fix: add --fixed)"
            raise UsageError(
                f"--good {spec.good} is not an ancestor of --bad {spec.bad}: a bisect needs the good end before the "
                f"bad end on one line of history{hint if git.is_ancestor(repo, new, old) else ''}"
            )
        commits = git.first_parent_line(repo, old, new)
        if len(commits) < 2 or commits[-1] != new:
            raise UsageError(
                f"no first-parent line from {old[:12]} to {new[:12]} in {repo}: the older end is only reachable "
                f"through a merged branch; give an older end that lies on the first-parent history of the newer one"
            )
        return repo, commits

    def start(self, spec: BisectSpec) -> dict[str, Any]:
        check_spec(spec)
        repo, commits = self.line(spec)
        spec.seed_base = seed_base_or_random(spec.seed_base)
        params = {
            **spec.params(),
            "repo": str(repo),
            "line": commits,
            "config": str(self.project.path) if self.project.path else None,
        }
        batch = self._batch_size(spec)
        bisect_id = self.store.begin_bisect(spec.profile, params, spec.note)
        return self._run(bisect_id, spec, repo, commits, {}, batch)

    def resume(self, bisect_id: int, *, jobs: int | None = None, max_boots: int | None = None) -> dict[str, Any]:
        """Carry on from the stored state. ``jobs`` and ``max_boots`` replace the stored batch size and budget
        (and are stored): neither changes what the boots so far showed or the seeds of the boots to come."""
        from bootlab.store.db import Ref

        row = self.store.require(Ref("bisect", bisect_id))
        status = self.store.status_of(row)
        if status == "done":
            raise UsageError(f"bisect s{bisect_id} has finished; `bootlab show s{bisect_id}` shows its answer")
        if status == "running":
            raise UsageError(f"bisect s{bisect_id} is running in another bootlab (pid alive); let it finish")
        params = json.loads(row["params"])
        changed = {k: v for k, v in (("jobs", jobs), ("max_boots", max_boots)) if v is not None}
        spec = BisectSpec.from_params({**params, **changed})
        check_spec(spec)
        repo = Path(params["repo"])
        commits = list(params["line"])
        from bootlab.source import git

        for end in (commits[0], commits[-1]):
            if not repo.is_dir() or git.git(["cat-file", "-e", f"{end}^{{commit}}"], repo, check=False).returncode:
                raise UsageError(f"bisect s{bisect_id}: commit {end[:12]} is no longer in {repo}; it cannot resume")
        saved = json.loads(row["summary"]) if row["summary"] else {}
        batch = self._batch_size(spec)
        self.store.claim_bisect(bisect_id, changed)
        return self._run(bisect_id, spec, repo, commits, saved, batch)

    # -- the loop -----------------------------------------------------------------------------------------------

    def _run(
        self, bisect_id: int, spec: BisectSpec, repo: Path, commits: list[str], saved: dict[str, Any], batch: int
    ) -> dict[str, Any]:
        from bootlab.source.checkout import Checkout
        from bootlab.source.git import commit_info

        title = check_spec(spec)
        assert spec.seed_base is not None
        self.commits = commits
        info = commit_info(repo, commits)
        tested = {i: Tested(i, c) for i, c in enumerate(commits)}
        cp = ChangePoint(len(commits), priors_for(spec.fixed))
        self._restore(bisect_id, spec, tested, cp, title, saved)
        state = "running"
        decision = "undecided"

        def save(state: str, decision: str, *, final: bool = False) -> dict[str, Any]:
            """Store what is known so far (after every batch, so an interrupted bisect resumes from it)."""
            result = bisect_result(bisect_id, spec, commits, info, tested, cp, state, decision)
            self.store.update_bisect(bisect_id, state, result, finished=final and state == "done")
            return result

        checkout: Checkout | None = None
        try:
            with contextlib.ExitStack() as stack:
                while True:
                    _, p = cp.best()
                    used = sum(t.boots for t in tested.values())
                    if p >= spec.confidence:
                        decision = "found"
                        break
                    if used >= spec.max_boots:
                        decision = "budget"
                        break
                    size = min(batch, spec.max_boots - used)
                    i = cp.next_commit(size)
                    if i is None:
                        decision = "exhausted"
                        break
                    t = tested[i]
                    if t.commit not in self.builds:

                        def open_checkout() -> Checkout:
                            nonlocal checkout
                            if checkout is None:
                                checkout = stack.enter_context(Checkout(repo))
                            return checkout

                        if not self._build(spec, t, open_checkout, info.get(t.commit)):
                            cp.skip(i)
                            save("running", decision)
                            continue
                    interrupted = self._batch(bisect_id, spec, t, size, cp, title, info.get(t.commit))
                    save("running", decision)
                    if interrupted:
                        state = "interrupted"
                        break
        except KeyboardInterrupt:
            state = "interrupted"
        except BaseException:
            # an error mid-way (lint refuses a commit's image, the store is gone...): keep what was learnt,
            # resumable once fixed, then let the error say what happened
            save("interrupted", "interrupted", final=True)
            self._finish_trials(tested, spec, "interrupted")
            raise
        if state != "interrupted":
            state = "done"
            if decision == "undecided":
                decision = "interrupted"
        result = save(state, decision, final=True)
        self._finish_trials(tested, spec, state)
        return result

    def _batch_size(self, spec: BisectSpec) -> int:
        """Boots per batch: ``-j``, else as many as the lab runs at once (this host's cores, or a cluster's slots).

        Asked of the lab before anything is built or stored, also with ``-j``: a cluster's lab asks its scheduler
        here, so an unreachable one, or one without a worker for this profile, is one line and nothing to undo."""
        from bootlab.profile.loader import resolve_profile

        profile = resolve_profile(spec.profile, project=self.project, sets=spec.sets, seed=0)
        default = self.lab.default_jobs(profile)
        return spec.jobs or default

    def _restore(
        self,
        bisect_id: int,
        spec: BisectSpec,
        tested: dict[int, Tested],
        cp: ChangePoint,
        title: re.Pattern[str] | None,
        saved: dict[str, Any],
    ) -> None:
        """What a resumed bisect already knows: its stored boots, and the commits it skipped."""
        by_commit = {t.commit: t for t in tested.values()}
        for row in self.store.bisect_trials(bisect_id):
            commit = json.loads(row["params"] or "{}").get("commit")
            t = by_commit.get(commit)
            if t is None:
                continue
            t.trial_id = int(row["id"])
            for b in self.store.boots(t.trial_id):
                verdict = Verdict.model_validate_json(b["verdict"])
                t.add(verdict, symptom(verdict, strict=spec.strict, title=title))
            cp.record(t.index, t.symptom, t.clean)
        for entry in saved.get("commits", []):
            t = by_commit.get(entry.get("commit"))
            if t is None:
                continue
            t.build = entry.get("build")
            if entry.get("skipped"):
                t.skipped = entry["skipped"]
                cp.skip(t.index)
        for t in tested.values():
            if t.skipped is None and t.infra_bound:
                t.skipped = "most boots were qemu-error/infra-error"
                cp.skip(t.index)

    def _build(self, spec: BisectSpec, t: Tested, checkout: Callable[[], Checkout], commit: CommitInfo | None) -> bool:
        from bootlab.source.build import BuildError, build_revision

        subject = f" {commit.subject!r}" if commit else ""
        try:
            built = build_revision(
                self.project,
                spec.profile,
                spec.sets,
                commit=t.commit,
                rev=None,
                checkout=checkout,
                announce=self._event,
            )
        except BuildError as exc:
            t.skipped = f"build-error: {exc}"
            t.build = {"error": str(exc)}
            self._event(f"{t.commit[:12]}{subject}: build-error, skipped ({exc})")
            return False
        self.builds[t.commit] = built
        t.build = {"seconds": round(built.seconds, 1), "cached": built.cached, "log": built.log}
        how = "reused an earlier build" if built.cached else f"built in {built.seconds:.1f} s"
        self._event(f"{t.commit[:12]}{subject}: {how}")
        return True

    def _batch(
        self,
        bisect_id: int,
        spec: BisectSpec,
        t: Tested,
        size: int,
        cp: ChangePoint,
        title: re.Pattern[str] | None,
        commit: CommitInfo | None,
    ) -> bool:
        """Boot ``size`` boots of commit ``t``; returns True when interrupted."""
        from bootlab.lab.lab import ArmSpec
        from bootlab.lab.summary import derive_seed

        assert spec.seed_base is not None
        built = self.builds[t.commit]
        lab = self.lab
        salt = t.commit[:12]
        label = f"{t.commit[:12]}" + (f" {commit.subject[:40]}" if commit else "")
        arm_spec = ArmSpec(
            spec.profile, spec.sets, label=label, project=built.project(self.project), revision=built.revision
        )
        checked = lab.check(arm_spec, derive_seed(spec.seed_base, t.boots, salt))
        checked.refuse(f"profile {spec.profile} at {t.commit[:12]}")
        if t.trial_id is None:
            params = {
                "bisect": f"s{bisect_id}",
                "commit": t.commit,
                "seed_base": spec.seed_base,
                "seed_salt": salt,
                "strict": spec.strict,
            }
            t.trial_id = lab.begin_trial(checked, params, None, bisect_id=bisect_id)
        arm = lab.make_arm(checked, n=size, seed_base=spec.seed_base, salt=salt, strict=spec.strict)
        arm.trial_id = t.trial_id
        arm.started = t.boots
        arm.n = arm.cap = t.boots + size
        progress = self.progress.boots() if self.progress is not None else None
        res = lab.run([arm], jobs=size, progress=progress)
        fails = passes = 0
        for rec in sorted(arm.records, key=lambda r: r.idx):
            shows = symptom(rec.verdict, strict=spec.strict, title=title)
            t.add(rec.verdict, shows)
            fails += shows is True
            passes += shows is False
        cp.record(t.index, fails, passes)
        if t.skipped is None and t.infra_bound:
            t.skipped = "most boots were qemu-error/infra-error"
            cp.skip(t.index)
        best, p = cp.best()
        self._event(
            f"{t.commit[:12]}: {fails} of {len(arm.records)} showed the symptom ({t.symptom}/{t.symptom + t.clean} "
            f"so far); most likely first {'good' if spec.fixed else 'bad'}: {self.commits[best][:12]} p={p:.3f}"
        )
        return res.interrupted

    def _event(self, text: str) -> None:
        if self.progress is not None:
            self.progress.event(text)

    # -- results ------------------------------------------------------------------------------------------------

    def _finish_trials(self, tested: dict[int, Tested], spec: BisectSpec, state: str) -> None:
        from bootlab.lab.lab import stored_trial
        from bootlab.lab.results import to_json

        status = "interrupted" if state == "interrupted" else "done"
        for t in tested.values():
            if t.trial_id is None:
                continue
            summary, _ = stored_trial(self.store, t.trial_id)
            summary.status = status
            self.store.finish_trial(t.trial_id, status, to_json(summary))


def priors_for(fixed: bool) -> Priors:
    """The search's priors: the old side rarely shows the symptom; ``--fixed`` swaps the sides."""
    return Priors().swapped() if fixed else Priors()


def line_posterior(result: dict[str, Any]) -> list[float]:
    """P(commit k is the first new one) for every commit of the line, recomputed from a stored result's counts.

    The result keeps the posterior of the commits it tested; a report plots every commit of the line. The counts
    (symptom and clean boots per tested commit, and the skipped ones) are all the search knew, and this is the
    same :class:`ChangePoint` with the same priors, so the numbers are the ones the search printed."""
    cp = ChangePoint(int(result["line_length"]), priors_for(result["direction"] == "fix"))
    for row in result["commits"]:
        cp.record(int(row["index"]), int(row["symptom"]), int(row["clean"]))
        if row.get("skipped"):
            cp.skip(int(row["index"]))
    return [float(p) for p in cp.posterior()]


def bisect_result(
    bisect_id: int,
    spec: BisectSpec,
    commits: list[str],
    info: dict[str, CommitInfo],
    tested: dict[int, Tested],
    cp: ChangePoint,
    state: str,
    decision: str,
) -> dict[str, Any]:
    """The ``--json`` object of a bisect (also what the store keeps)."""
    post = cp.posterior()
    best, p = cp.best()
    p_old, p_new = cp.rates()

    def describe(i: int) -> dict[str, Any]:
        c = info.get(commits[i])
        return {
            "commit": commits[i],
            "index": i,
            "subject": c.subject if c else None,
            "author": c.author if c else None,
            "date": c.date if c else None,
            "posterior": round(float(post[i]), 6),
        }

    rows = []
    for i, t in sorted(tested.items()):
        if t.boots == 0 and t.skipped is None:
            continue
        rows.append(
            {
                **describe(i),
                "end": "old" if i == 0 else ("new" if i == len(commits) - 1 else None),
                "trial": f"t{t.trial_id}" if t.trial_id is not None else None,
                "boots": t.boots,
                "symptom": t.symptom,
                "clean": t.clean,
                "ignored": t.ignored,
                "excluded": t.excluded,
                "titles": [{"title": k, "count": v} for k, v in t.titles.most_common()],
                "skipped": t.skipped,
                "build": t.build,
            }
        )
    found = decision == "found"
    ranked = [describe(k) for k, pk in cp.ranked(6) if pk >= 0.01]
    word = "good" if spec.fixed else "bad"
    return {
        "bisect": f"s{bisect_id}",
        "profile": spec.profile,
        "sets": spec.sets,
        "direction": "fix" if spec.fixed else "regression",
        "good": {"rev": spec.good, "commit": commits[-1] if spec.fixed else commits[0]},
        "bad": {"rev": spec.bad, "commit": commits[0] if spec.fixed else commits[-1]},
        "first": f"first {word} commit",
        "title": spec.title,
        "confidence": spec.confidence,
        "status": state,
        "decision": decision,
        "culprit": describe(best) if found else None,
        "best": describe(best),
        "posterior": round(p, 6),
        "runners_up": [r for r in ranked if r["index"] != best] if found else ranked,
        "commits": rows,
        "line_length": len(commits),
        "boots": sum(t.boots for t in tested.values()),
        "max_boots": spec.max_boots,
        "symptom_rate_old": round(p_old, 4),
        "symptom_rate_new": round(p_new, 4),
        "seed_base": spec.seed_base,
        "strict": spec.strict,
    }
