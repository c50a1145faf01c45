"""Trials, matrices and comparisons as library calls: resolve and lint each arm, record it in the store, run the
boots (:mod:`bootlab.lab.runner`), summarise. The CLI commands are thin wrappers around :class:`Lab`.

Seeds: every boot's seed is ``derive_seed(seed_base, index, salt)``. The seed base is random unless given, and
always recorded, so ``--seed-base`` replays a whole trial and each boot's own seed replays it alone with
``bootlab boot --seed``. A matrix gives every cell the same seeds (differences between cells then come from the
configuration, not from luck); the two arms of a comparison get independent seeds (salts ``a`` and ``b``),
because Fisher's test assumes independent samples.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bootlab.errors import UsageError
from bootlab.lab.results import Arm as ResultArm
from bootlab.lab.results import ComparisonResult, MatrixCell, MatrixResult, TrialResult, to_json
from bootlab.lab.runner import Arm, BootFn, Progress, RunResult, run_arms
from bootlab.lab.sequential import PairStopper, sequential_sentence
from bootlab.lab.stats import boots_per_arm, compare_times, diff_interval, fisher_p, p_text
from bootlab.lab.summary import (
    BootRecord,
    Stopper,
    derive_seed,
    mark,
    seed_base_or_random,
    stage_times,
    summarize,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from bootlab.host import Host
    from bootlab.lab.bisect import BisectProgress, BisectSpec
    from bootlab.profile.loader import Project
    from bootlab.profile.model import Profile
    from bootlab.source.revision import Revision
    from bootlab.store.db import Store


@dataclass
class ArmSpec:
    """What to boot: a profile and its ``--set`` overrides; ``axes`` are a matrix cell's coordinates.

    ``project`` and ``revision`` are set for an arm that boots a build of a revision (``--rev``): the project
    then reads the build's outputs from bootlab's build of it (see :mod:`bootlab.source.build`)."""

    profile: str
    sets: list[str] = field(default_factory=list)
    label: str = ""
    axes: dict[str, str] = field(default_factory=dict)
    project: Project | None = None
    revision: Revision | None = None


@dataclass
class Checked:
    """An arm after resolving and linting its first boot: refused when lint has errors (and no --force)."""

    spec: ArmSpec
    profile: Profile
    findings: list[Any]
    refused: list[str]

    def refuse(self, what: str) -> None:
        """Raise the one-line refusal for a trial or comparison arm that lint refused."""
        if self.refused:
            from bootlab.lab.preflight import lint_refusal

            raise lint_refusal(what, [r.split(":")[0] for r in self.refused])


def parse_axis(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``KEY=V1,V2`` (or ``KEY=["v,with,commas", "v2"]``) -> (key, [(label, --set text)])."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    how = "use --axis KEY=V1,V2 (e.g. --axis cpu=cortex-a72,max or --axis smp=1,4)"
    if not sep or not key or not rest.strip():
        raise UsageError(f"--axis {text!r}: expected KEY=V1,V2[,...]; {how}")
    if any(not part for part in key.split(".")):
        raise UsageError(f"--axis {text!r}: malformed key `{key}`; use dotted names like machine.highmem")
    values: list[tuple[str, str]]
    if rest.strip().startswith("["):
        try:
            raw = tomllib.loads(f"v = {rest}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"--axis {text!r}: the value list is not valid TOML ({exc}); {how}") from None
        values = [(str(v), f"{key}={json.dumps(v)}") for v in raw]
    else:
        parts = [p.strip() for p in rest.split(",")]
        if any(not p for p in parts):
            raise UsageError(f"--axis {text!r}: empty value in the list; {how}")
        values = [(p, f"{key}={p}") for p in parts]
    if len({label for label, _ in values}) != len(values):
        raise UsageError(f"--axis {text!r}: a value is listed twice; list each value once")
    return key, values


def matrix_cells(profile: str, sets: list[str], axes: list[str]) -> tuple[dict[str, list[str]], list[ArmSpec]]:
    """The product of the axes, in order (the first axis varies slowest, as in the user's notes table)."""
    parsed = [parse_axis(a) for a in axes]
    keys = [k for k, _ in parsed]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise UsageError(f"--axis {dup}: given twice; put all its values in one --axis {dup}=V1,V2")
    if not parsed:
        raise UsageError("matrix needs at least one --axis KEY=V1,V2 (e.g. --axis cpu=cortex-a72,max)")
    cells = []
    for combo in itertools.product(*(vals for _, vals in parsed)):
        axes_map = {k: label for k, (label, _) in zip(keys, combo, strict=True)}
        cell_sets = [*sets, *(s for _, s in combo)]
        label = " ".join(f"{k}={v}" for k, v in axes_map.items())
        cells.append(ArmSpec(profile=profile, sets=cell_sets, label=label, axes=axes_map))
    return {k: [label for label, _ in vals] for k, vals in parsed}, cells


def check_count(n: int, flag: str = "-n") -> int:
    if n < 1:
        raise UsageError(f"{flag} {n}: the number of boots must be at least 1 (e.g. {flag} 10)")
    if n > 100_000:
        raise UsageError(f"{flag} {n}: more than 100000 boots is surely a typo; use a smaller {flag}")
    return n


class Lab:
    """Runs arms against one project, one host and one store. ``boot_fn`` defaults to real observed boots."""

    def __init__(
        self,
        project: Project,
        host: Host,
        store: Store | None,
        *,
        boot_fn: BootFn | None = None,
        force: bool = False,
        revision: Revision | None = None,
    ) -> None:
        self.project = project
        self.host = host
        self.store = store
        self.force = force
        self.revision = revision  # the revision every arm boots, unless its spec says otherwise
        if boot_fn is None:
            from bootlab.lab.runner import real_boot_fn

            boot_fn = real_boot_fn(host, project.root)
        self.boot_fn = boot_fn

    # -- arms ------------------------------------------------------------------------------------------------------

    def resolve(self, spec: ArmSpec, seed: int, idx: int) -> Profile:
        from bootlab.profile.loader import resolve_profile

        project = spec.project or self.project
        return resolve_profile(spec.profile, project=project, sets=spec.sets, seed=seed, boot_index=idx)

    def check(self, spec: ArmSpec, seed: int, host: Host | None = None) -> Checked:
        """Preflight the arm's first boot (lock, profile, packs, fallback, files, lint) against ``host`` (default:
        this one; a cluster passes a worker's); lint errors refuse the arm unless forced (a matrix shows such a
        cell as refused)."""
        from bootlab.lab.preflight import preflight

        pf = preflight(spec.project or self.project, spec.profile, sets=spec.sets, seed=seed, host=host or self.host)
        refused = [f"{f.id}: {f.message}" for f in pf.errors]
        return Checked(spec, pf.profile, pf.findings, [] if self.force else refused)

    def make_arm(
        self,
        checked: Checked,
        *,
        n: int,
        seed_base: int,
        salt: str = "",
        strict: bool = False,
        stopper: Stopper | None = None,
        trial_id: int | None = None,
    ) -> Arm:
        spec = checked.spec
        return Arm(
            label=spec.label or spec.profile,
            # each boot is resolved again ({seed}, {boot}), its check scripts as the preflight read them
            make_profile=lambda idx, seed: self.resolve(spec, seed, idx).with_check_texts(checked.profile),
            n=n,
            cap=n,
            seed_base=seed_base,
            seed_salt=salt,
            strict=strict,
            smp=checked.profile.smp,
            trial_id=trial_id,
            stopper=stopper,
            revision=spec.revision or self.revision,
        )

    def begin_trial(
        self,
        checked: Checked,
        params: dict[str, Any],
        note: str | None = None,
        **links: Any,
    ) -> int | None:
        if self.store is None:
            return None
        from bootlab.profile.loader import profile_hash

        return self.store.begin_trial(
            checked.spec.profile,
            profile_hash=profile_hash(checked.profile),
            sets=checked.spec.sets,
            params=params,
            note=note,
            **links,
        )

    def run(self, arms: list[Arm], *, jobs: int | None, progress: Progress | None) -> RunResult:
        return asyncio.run(run_arms(arms, self.boot_fn, jobs=jobs, store=self.store, host=self.host, progress=progress))

    def default_jobs(self, profile: Profile) -> int:
        """Boots of ``profile`` this lab runs at once when ``-j`` is not given (a bisect's batch size)."""
        from bootlab.lab.runner import default_jobs

        return default_jobs(profile.smp)

    def trial_result(self, arm: Arm, spec: ArmSpec, *, seed_base: int, interrupted: bool) -> TrialResult:
        """One trial's result; its JSON is also what the store keeps as the trial's summary."""
        sequential = None
        if arm.stopper is not None:
            sequential = arm.stopper.report(len(arm.records), arm.cap)
            sequential["decided_at"] = arm.stopper.decided_at
        result = TrialResult(
            trial=f"t{arm.trial_id}" if arm.trial_id is not None else None,
            profile=spec.profile,
            sets=spec.sets,
            status="interrupted" if interrupted else "done",
            summary=summarize(arm.records, strict=arm.strict),
            stopped_early=arm.stopped_early,
            seed_base=seed_base,
            sequential=sequential,
        )
        if self.store is not None and arm.trial_id is not None:
            self.store.finish_trial(arm.trial_id, result.status, to_json(result))
        return result

    # -- the three commands ------------------------------------------------------------------------------------------

    def trial(
        self,
        spec: ArmSpec,
        *,
        n: int,
        jobs: int | None = None,
        strict: bool = False,
        note: str | None = None,
        seed_base: int | None = None,
        stopper: Stopper | None = None,
        progress: Progress | None = None,
    ) -> TrialResult:
        check_count(n)
        base = seed_base_or_random(seed_base)
        checked = self.check(spec, derive_seed(base, 0))
        checked.refuse(f"profile {spec.profile}")
        params: dict[str, Any] = {"n": n, "jobs": jobs, "strict": strict, "seed_base": base}
        if stopper is not None:
            params["until_confident"] = {
                "target": stopper.sprt.target if stopper.sprt else None,
                "width": stopper.width,
            }
        trial_id = self.begin_trial(checked, params, note)
        if self.store is not None and trial_id is not None and note:
            from bootlab.store.db import Ref

            self.store.add_note(Ref("trial", trial_id), note)
        arm = self.make_arm(checked, n=n, seed_base=base, strict=strict, stopper=stopper, trial_id=trial_id)
        res = self.run([arm], jobs=jobs, progress=progress)
        out = self.trial_result(arm, spec, seed_base=base, interrupted=res.interrupted)
        out.lint = [f"{f.severity}: [{f.id}] {f.message}" for f in checked.findings if f.severity != "info"]
        return out

    def matrix(
        self,
        profile: str,
        sets: list[str],
        axes: list[str],
        *,
        n: int,
        jobs: int | None = None,
        strict: bool = False,
        note: str | None = None,
        seed_base: int | None = None,
        progress: Progress | None = None,
        stoppers: Callable[[], Stopper] | None = None,
    ) -> MatrixResult:
        """``stoppers`` makes a fresh stopper for each cell (``--until-confident``: each cell stops on its own)."""
        check_count(n)
        axes_map, specs = matrix_cells(profile, sets, axes)
        base = seed_base_or_random(seed_base)
        checks = [self.check(spec, derive_seed(base, 0)) for spec in specs]
        matrix_id = (
            self.store.begin_matrix(profile, axes_map, {"n": n, "sets": sets, "seed_base": base}, note)
            if self.store is not None
            else None
        )
        arms: list[tuple[Checked, Arm | None]] = []
        for checked in checks:
            if checked.refused:
                arms.append((checked, None))
                continue
            tid = self.begin_trial(checked, {"n": n, "strict": strict, "seed_base": base}, None, matrix_id=matrix_id)
            stopper = stoppers() if stoppers is not None else None
            arms.append(
                (checked, self.make_arm(checked, n=n, seed_base=base, strict=strict, trial_id=tid, stopper=stopper))
            )
        res = self.run([a for _, a in arms if a is not None], jobs=jobs, progress=progress)
        cells: list[MatrixCell] = []
        for checked, arm in arms:
            if arm is None:
                cells.append(MatrixCell(axes=checked.spec.axes, refused=checked.refused, mark="refused"))
                continue
            cell = self.trial_result(arm, checked.spec, seed_base=base, interrupted=res.interrupted)
            cells.append(MatrixCell(axes=checked.spec.axes, mark=mark(to_json(cell)), result=cell))
        out = MatrixResult(
            matrix=f"m{matrix_id}" if matrix_id is not None else None,
            profile=profile,
            sets=sets,
            axes=axes_map,
            n=n,
            seed_base=base,
            status="interrupted" if res.interrupted else "done",
            cells=cells,
        )
        if self.store is not None and matrix_id is not None:
            self.store.finish_matrix(matrix_id, out.status, to_json(out))
        return out

    def compare(
        self,
        a: ArmSpec,
        b: ArmSpec,
        *,
        n: int,
        jobs: int | None = None,
        strict: bool = False,
        note: str | None = None,
        seed_base: int | None = None,
        progress: Progress | None = None,
        stopper: Stopper | None = None,
    ) -> ComparisonResult:
        """``stopper`` (``--until-confident``) is shared by both arms and sees both (a :class:`PairStopper`)."""
        check_count(n)
        base = seed_base_or_random(seed_base)
        checks = [self.check(a, derive_seed(base, 0, "a")), self.check(b, derive_seed(base, 0, "b"))]
        for checked in checks:
            checked.refuse(checked.spec.label)
        cid = self.store.begin_comparison(note) if self.store is not None else None
        arms = []
        for checked, salt in zip(checks, ("a", "b"), strict=True):
            params = {"n": n, "strict": strict, "seed_base": base, "seed_salt": salt}
            tid = self.begin_trial(checked, params, None, comparison_id=cid, arm=salt)
            arms.append(
                self.make_arm(checked, n=n, seed_base=base, salt=salt, strict=strict, trial_id=tid, stopper=stopper)
            )
        if isinstance(stopper, PairStopper):
            stopper.watch(arms[0], arms[1])
        res = self.run(arms, jobs=jobs, progress=progress)
        ra = self.trial_result(arms[0], a, seed_base=base, interrupted=res.interrupted)
        rb = self.trial_result(arms[1], b, seed_base=base, interrupted=res.interrupted)
        timing = stage_timing(arms[0].records, arms[1].records, a.label, b.label)
        out = comparison(ra, rb, a.label, b.label, timing=timing)
        if stopper is not None:
            out.sequential = ra.sequential
            out.sentence = sequential_sentence(to_json(out)) or out.sentence
        out.comparison = f"c{cid}" if cid is not None else None
        out.status = "interrupted" if res.interrupted else "done"
        if self.store is not None and cid is not None and arms[0].trial_id and arms[1].trial_id:
            self.store.finish_comparison(cid, arms[0].trial_id, arms[1].trial_id, to_json(out))
        return out

    def bisect(self, spec: BisectSpec, *, progress: BisectProgress | None = None) -> dict[str, Any]:
        """Search the commits between ``spec.good`` and ``spec.bad`` (see :mod:`bootlab.lab.bisect`); each batch
        runs through :meth:`run`. Returns the bisect's ``--json`` object, also when interrupted."""
        from bootlab.lab.bisect import Bisection

        return Bisection(self, progress=progress).start(spec)

    def resume_bisect(
        self,
        bisect_id: int,
        *,
        progress: BisectProgress | None = None,
        jobs: int | None = None,
        max_boots: int | None = None,
    ) -> dict[str, Any]:
        """Carry on a stored bisect that was interrupted, with its own settings (but a new batch size or budget
        when given), without repeating a boot."""
        from bootlab.lab.bisect import Bisection

        return Bisection(self, progress=progress).resume(bisect_id, jobs=jobs, max_boots=max_boots)


def stage_timing(
    records_a: list[BootRecord], records_b: list[BootRecord], label_a: str, label_b: str
) -> dict[str, Any]:
    """Stage times of both arms side by side, with the rank test per stage, and a sentence on the last stage both
    reach (usually the ready stage: "does B boot slower?")."""
    rows = compare_times(stage_times(r.verdict for r in records_a), stage_times(r.verdict for r in records_b))
    return {"stages": rows, "sentence": timing_sentence(rows, label_a, label_b)}


def timing_sentence(rows: list[dict[str, Any]], label_a: str, label_b: str) -> str:
    if not rows:
        return "no stage reached by both arms: no times to compare"
    last = rows[-1]
    stage, p = last["stage"], last["p_value"]
    if p is None:
        return f"too few boots reached {stage} to compare times ({last['n_a']} and {last['n_b']})"
    medians = f"medians A {last['a_p50']:.2f} s, B {last['b_p50']:.2f} s; Mann–Whitney p = {p_text(p)}"
    if p < 0.05 and last["direction"]:
        how = "later" if last["direction"] > 0 else "earlier"
        return f"{label_b} reaches {stage} {how} than {label_a} ({medians})"
    return f"no difference in time to {stage} seen ({medians})"


def comparison(
    ra: TrialResult, rb: TrialResult, label_a: str, label_b: str, timing: dict[str, Any] | None = None
) -> ComparisonResult:
    """Both rates, their difference with Newcombe's interval, Fisher's two-sided p, and the sentence; ``timing``
    (from :func:`stage_timing`) is carried when the boots are at hand."""
    ka, na, kb, nb = ra.summary.passed, ra.summary.boots, rb.summary.passed, rb.summary.boots
    pa, pb = ra.summary.rate, rb.summary.rate
    p = fisher_p(ka, na, kb, nb)
    lo, hi = diff_interval(ka, na, kb, nb)
    more: int | None = None
    significant = p < 0.05 and na > 0 and nb > 0
    if na == 0 or nb == 0:
        sentence = "nothing to compare yet: one side has no counted boots"
    elif significant:
        better, worse = (label_b, label_a) if (pb or 0) > (pa or 0) else (label_a, label_b)
        sentence = f"{better} passes more often than {worse} (p = {p_text(p)})"
    else:
        assert pa is not None and pb is not None
        need = boots_per_arm(pa, pb)
        if need is None:
            sentence = (
                f"no difference seen ({pa:.0%} both, p = {p_text(p)}); a real difference, if any, is smaller than "
                f"these {min(na, nb)} boots each can show"
            )
        else:
            more = max(1, need - min(na, nb))
            sentence = (
                f"not distinguishable yet (p = {p_text(p)}): about {more} more boots each would settle a difference "
                f"this size ({pa:.0%} vs {pb:.0%})"
            )
    return ComparisonResult(
        a=ResultArm(label=label_a, result=ra),
        b=ResultArm(label=label_b, result=rb),
        difference=(pb - pa) if pa is not None and pb is not None else None,
        difference_ci95=(lo, hi),
        p_value=p,
        significant=significant,
        more_boots_each=more,
        sentence=sentence,
        timing=timing,
    )


def stored_trial(store: Store, trial_id: int) -> tuple[TrialResult, list[BootRecord]]:
    """A stored trial's summary recomputed from its boots (so ``compare --trials`` and ``export`` agree)."""
    from bootlab.store.db import Ref
    from bootlab.verdict import Verdict

    row = store.require(Ref("trial", trial_id))
    records = [
        BootRecord(int(b["idx"] or 0), int(b["seed"] or 0), Verdict.model_validate_json(b["verdict"]), f"b{b['id']}")
        for b in store.boots(trial_id)
    ]
    params = json.loads(row["params"] or "{}")
    saved = json.loads(row["summary"]) if row["summary"] else {}
    result = TrialResult(
        trial=f"t{trial_id}",
        profile=row["profile"],
        sets=json.loads(row["sets"] or "[]"),
        status=store.status_of(row),
        summary=summarize(records, strict=bool(params.get("strict"))),
        stopped_early=bool(saved.get("stopped_early", False)),
        seed_base=params.get("seed_base"),
        sequential=saved.get("sequential"),
        note=row["note"],
        started=row["started"],
    )
    return result, records
