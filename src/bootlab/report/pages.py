"""What a report shows, read from the store: one :class:`Page` per trial, matrix, comparison, bisect, boot or
history.

Pages are built from store rows and the JSON summaries the store keeps (the ``--json`` objects of ``trial``,
``matrix`` and ``compare``), never from a running :class:`~bootlab.lab.lab.Lab`: a report of a trial run
months ago, or by another bootlab version, is the same as one written the minute it ended. Nothing here imports
matplotlib or Jinja2; :mod:`bootlab.report.plots` draws a page's figures and :mod:`bootlab.report.render` writes
it as HTML or Markdown.

Adding a kind is a loader here (registered in :data:`LOADERS`), a figure function in
:mod:`bootlab.report.plots` (in ``FIGURES``) and a template per format (``templates/KIND.html.j2`` and
``KIND.md.j2``), as the bisect's are.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bootlab.errors import UsageError
from bootlab.lab.lab import stored_trial, timing_sentence
from bootlab.lab.stats import compare_times
from bootlab.lab.summary import Tally, failure_title, judge, replay_command, stage_times
from bootlab.report.logs import excerpt, fatal_index, log_lines
from bootlab.store.db import Ref
from bootlab.store.rows import boot_json, boot_sets, history_rows, revision_line
from bootlab.verdict import Verdict

if TYPE_CHECKING:
    from bootlab.source.revision import Revision
    from bootlab.store.db import Store

#: Failed boots shown with their log excerpt, registers and replay command, per page. Beyond it the verdict table
#: still lists every boot, and ``bootlab report bN`` shows any one in full: a 1,000-boot trial with 400 failures
#: would otherwise be megabytes of near-identical excerpts.
MAX_FAILURE_DETAILS = 24


@dataclass
class Page:
    """One report: ``kind`` picks the template and the figures; ``data`` is what they read."""

    kind: str
    ref: str
    title: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def default_name(self) -> str:
        return f"bootlab-report-{self.ref}"


def _plain(obj: Any) -> Any:
    """A summary as plain JSON data, whether the store reader returned a dict or a typed model."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return json.loads(json.dumps(obj))


# -- boots -------------------------------------------------------------------------------------------------------


def boot_view(row: sqlite3.Row, sets: list[str] | None, strict: bool = False) -> dict[str, Any]:
    """One stored boot as the templates and plots read it (the verdict's fields, flattened)."""
    b = boot_json(row)
    verdict = Verdict.model_validate(b["verdict"])
    stages = {s.name: s.t for s in verdict.stages if s.t is not None}
    ready_t = stages.get(verdict.stage or "") if verdict.passed else None
    passed = judge(verdict, strict)
    return {
        **b,
        "sets": sets or [],
        "stage": verdict.stage,
        "duration_s": verdict.duration_s,
        "fatal_line": verdict.fatal_line,
        "fatal_t": verdict.fatal_t,
        "incidents": [i.model_dump() for i in verdict.incidents],
        "registers": [r.model_dump() for r in verdict.registers],
        "checks": [c.model_dump() for c in verdict.checks],
        "stages": stages,
        "ready_t": ready_t,
        "counted": passed is not None,
        "passed": bool(passed),
        "replay": replay_command(b["profile"], sets, b["seed"], b["revision"]),
        "model": verdict,
    }


def _pick_failures(boots: list[dict[str, Any]], cap: int) -> list[dict[str, Any]]:
    """Up to ``cap`` failed boots, taken round-robin over their titles (the commonest first), so that a rare
    failure is shown even when a common one fills the trial."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for b in boots:
        if not b["passed"]:
            groups.setdefault(failure_title(b["model"]), []).append(b)
    queues = sorted(groups.values(), key=lambda g: -len(g))
    picked: list[dict[str, Any]] = []
    depth = 0
    while len(picked) < cap and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(picked) < cap:
                picked.append(q[depth])
        depth += 1
    return sorted(picked, key=lambda b: b["idx"] if b["idx"] is not None else -1)


def _with_excerpt(store: Store, boot: dict[str, Any]) -> dict[str, Any]:
    lines = _read_lines(store, boot)
    return {**boot, "excerpt": excerpt(lines, boot["fatal_line"], skip=_skip(boot)) if lines is not None else None}


def _skip(boot: dict[str, Any]) -> int:
    """How many earlier lines carry the fatal line's text: incidents with the same line, before the fatal one."""
    fatal, fatal_t = (boot["fatal_line"] or "").strip(), boot["fatal_t"]
    return sum(
        1
        for i in boot["incidents"]
        if (i.get("line") or "").strip() == fatal and (i.get("t") is None or fatal_t is None or i["t"] <= fatal_t)
    )


def _read_lines(store: Store, boot: dict[str, Any]) -> list[str] | None:
    if not boot["log"]:
        return None
    try:
        return log_lines(store.read_log(boot["log"]))
    except UsageError:  # the log file went missing from the store: the page says so instead of failing
        return None


def environment(boots: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the boots ran: bootlab and QEMU versions, hosts, accelerators, image hashes, source revisions, the
    resolved profile and argv of the first boot. Values that changed during the trial are all listed, with how
    many boots saw each."""
    hosts: Counter[tuple[Any, ...]] = Counter()
    images: Counter[tuple[str, Any]] = Counter()
    revisions: Counter[str] = Counter()
    for b in boots:
        revisions[revision_line(b["revision"])] += 1
        h = b["host"]
        hosts[(h.get("bootlab"), h.get("os"), h.get("arch"), h.get("qemu"), h.get("qemu_version"), h.get("accel"))] += 1
        for key, digest in b["images"].items():
            images[(key, digest)] += 1
    first = boots[0] if boots else None
    profile = None
    if first is not None:
        profile = json.dumps(_drop_empty(first["resolved_profile"]), indent=2)
    keys = ("bootlab", "os", "arch", "qemu", "qemu_version", "accel")
    return {
        "hosts": [{**dict(zip(keys, h, strict=True)), "boots": n} for h, n in hosts.most_common()],
        "images": [{"key": k, "sha256": d, "boots": n} for (k, d), n in sorted(images.items())],
        # where the images came from: a --rev trial booted a build of that revision, not the user's tree
        "revisions": [{"text": text, "boots": n} for text, n in revisions.items()],
        "profile": profile,
        "argv": shlex.join(first["argv"]) if first and first["argv"] else None,
        "first_boot": first["boot"] if first else None,
        "first_seed": first["seed"] if first else None,
        "boots": len(boots),
    }


def _drop_empty(value: Any) -> Any:
    """The resolved profile without null, empty and false-y defaults: what was set, readable at a glance."""
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v not in (None, [], {}, "")}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


# -- trials --------------------------------------------------------------------------------------------------------


def trial_summary(store: Store, row: sqlite3.Row) -> dict[str, Any]:
    """The trial's stored ``--json`` summary; a trial still running (or killed) is counted from its boots."""
    saved = json.loads(row["summary"]) if row["summary"] else None
    if saved is None:
        saved = _plain(stored_trial(store, int(row["id"]))[0])
    return {
        **saved,
        "trial": f"t{row['id']}",
        "status": store.status_of(row),
        "note": row["note"],
        "started": row["started"],
        "finished": row["finished"],
        "n": json.loads(row["params"] or "{}").get("n"),
    }


def arm_view(store: Store, trial_id: int, cap: int = MAX_FAILURE_DETAILS) -> dict[str, Any]:
    """A trial with its boots, its failed boots in detail (at most ``cap``) and its environment."""
    row = store.require(Ref("trial", trial_id))
    summary = trial_summary(store, row)
    sets = list(summary.get("sets") or json.loads(row["sets"] or "[]"))
    strict = bool(summary.get("strict"))
    boots = [boot_view(b, sets, strict) for b in store.boots(trial_id)]
    failed = [b for b in boots if not b["passed"]]
    shown = [_with_excerpt(store, b) for b in _pick_failures(boots, cap)]
    n = summary.get("n") or len(boots)
    seed_base = summary.get("seed_base")
    sets_text = "".join(f" --set {shlex.quote(s)}" for s in sets)
    build = shared_build(boots)
    # a comparison arm's seeds are salted with its side: `bootlab trial --seed-base` would not boot them again
    replay_trial = None
    if seed_base is not None and row["comparison_id"] is None:
        replay_trial = f"bootlab trial {shlex.quote(summary['profile'])}{sets_text} -n {n} --seed-base {seed_base}"
        replay_trial += f" --rev {build.commit}" if build else ""
    return {
        "summary": summary,
        "boots": boots,
        "failures": shown,
        "failures_total": len(failed),
        "env": environment(boots),
        "notes": [note["text"] for note in store.notes(Ref("trial", trial_id))],
        "replay_trial": replay_trial,
        "replay_boot": replay_command(summary["profile"], sets, None, build.to_json() if build else None),
        "build": build,
    }


def shared_build(boots: list[dict[str, Any]]) -> Revision | None:
    """The revision a trial's boots were all built from in bootlab's own checkout (a ``--rev`` trial or arm), so
    that its replay boots that build again with ``--rev``; None when they booted the user's tree (or mixed)."""
    from bootlab.source.revision import Revision

    found = {Revision.from_json(b["revision"]) for b in boots}
    if len(found) != 1:
        return None
    (only,) = found
    if only is None or not only.built_apart:
        return None
    # the commit, exactly: a tag or branch named at the time may point elsewhere now
    return Revision(dir=only.dir, commit=str(only.commit)[:12], rev=only.rev, checkout=True)


def _label(summary: dict[str, Any]) -> str:
    return " ".join([summary["profile"], *(f"--set {s}" for s in summary.get("sets") or [])])


def load_trial(store: Store, ref: Ref) -> Page:
    arm = arm_view(store, ref.id)
    return Page("trial", str(ref), f"trial {ref}: {_label(arm['summary'])}", {"arm": arm})


def load_matrix(store: Store, ref: Ref) -> Page:
    row = store.require(ref)
    if not row["summary"]:
        raise UsageError(
            f"matrix {ref} has no result yet (still running, or it was killed); its cells are trials: "
            f"`bootlab history` lists them"
        )
    matrix = json.loads(row["summary"])
    matrix["status"] = store.status_of(row)
    cells = [c for c in matrix["cells"] if not c.get("refused") and c.get("trial")]
    cap = max(2, MAX_FAILURE_DETAILS // max(1, len(cells)))
    arms = {c["trial"]: arm_view(store, int(c["trial"][1:]), cap) for c in cells}
    views = []
    for c in matrix["cells"]:
        label = " ".join(f"{k}={v}" for k, v in c["axes"].items())
        views.append({**c, "label": label, "arm": arms.get(c.get("trial") or "")})
    booted = [b for arm in arms.values() for b in arm["boots"]]
    data = {
        "matrix": matrix,
        "cells": views,
        "note": row["note"],
        "notes": [n["text"] for n in store.notes(ref)],
        "started": row["started"],
        "finished": row["finished"],
        "env": environment(booted),
        "refused": [c for c in views if c.get("refused")],
        "marks": dict(Counter(c["mark"] for c in matrix["cells"]).most_common()),
    }
    axes = " × ".join(matrix["axes"])
    return Page("matrix", str(ref), f"matrix {ref}: {matrix['profile']}, {axes}", data)


def load_comparison(store: Store, ref: Ref) -> Page:
    row = store.require(ref)
    if not row["summary"] or row["trial_a"] is None or row["trial_b"] is None:
        raise UsageError(
            f"comparison {ref} has no result yet (still running, or it was killed); its arms are "
            f"trials: `bootlab history` lists them"
        )
    comparison = json.loads(row["summary"])
    cap = MAX_FAILURE_DETAILS // 2
    a, b = arm_view(store, int(row["trial_a"]), cap), arm_view(store, int(row["trial_b"]), cap)
    # the rank test is recomputed from the stored boots: comparisons stored before it existed get it too
    rows = compare_times(*(stage_times(x["model"] for x in arm["boots"]) for arm in (a, b)))
    label_a, label_b = comparison["a"]["label"], comparison["b"]["label"]
    timing = {"stages": rows, "sentence": timing_sentence(rows, label_a, label_b)}
    data = {
        "comparison": comparison,
        "a": a,
        "b": b,
        "timing": timing,
        "note": row["note"],
        "notes": [n["text"] for n in store.notes(ref)],
        "started": row["started"],
        "finished": row["finished"],
        "same_env": _env_key(a["env"]) == _env_key(b["env"]),
        "replay": _replay_comparison(comparison, a, b),
    }
    return Page("comparison", str(ref), f"comparison {ref}: {label_a} vs {label_b}", data)


def _replay_comparison(c: dict[str, Any], arm_a: dict[str, Any], arm_b: dict[str, Any]) -> str | None:
    """``bootlab compare`` with every --set of each arm given as --a/--b: the same arms, the same seeds, and the
    same builds (``--rev`` when both arms booted one revision's build, else ``--a-rev``/``--b-rev``)."""
    a, b = arm_a["summary"], arm_b["summary"]
    if a.get("seed_base") is None or a.get("seed_base") != b.get("seed_base"):
        return None
    profiles = [a["profile"]] if a["profile"] == b["profile"] else [a["profile"], b["profile"]]
    words = ["bootlab", "compare", *profiles]
    words += [w for s in a.get("sets") or [] for w in ("--a", s)]
    words += [w for s in b.get("sets") or [] for w in ("--b", s)]
    n = max(a.get("n") or a["boots"], b.get("n") or b["boots"])
    strict = " --strict" if a.get("strict") else ""
    build_a, build_b = arm_a["build"], arm_b["build"]
    if build_a and build_b and build_a.commit == build_b.commit:
        words += ["--rev", str(build_a.commit)]
    else:
        words += [
            w for flag, rev in (("--a-rev", build_a), ("--b-rev", build_b)) if rev for w in (flag, str(rev.commit))
        ]
    return f"{shlex.join(words)} -n {n} --seed-base {a['seed_base']}{strict}"


def _env_key(env: dict[str, Any]) -> tuple[Any, ...]:
    return (
        tuple((h["os"], h["arch"], h["qemu_version"], h["accel"]) for h in env["hosts"]),
        tuple((i["key"], i["sha256"]) for i in env["images"]),
    )


#: A boot page shows at most this many lines of the console log (the end of it when longer).
MAX_LOG_LINES = 4000


def load_boot(store: Store, ref: Ref) -> Page:
    row = store.require(ref)
    sets = boot_sets(store, row)
    boot = boot_view(row, sets)
    lines = _read_lines(store, boot)
    log = None
    if lines is not None:
        at = fatal_index(lines, boot["fatal_line"], _skip(boot))
        start = max(0, len(lines) - MAX_LOG_LINES)
        log = {
            "lines": [{"n": i + 1, "text": t, "fatal": i == at} for i, t in enumerate(lines[start:], start)],
            "total": len(lines),
            "cut": start,
        }
    boot = {**boot, "excerpt": excerpt(lines, boot["fatal_line"], skip=_skip(boot)) if lines is not None else None}
    data = {
        "boot": boot,
        "log": log,
        "notes": [n["text"] for n in store.notes(ref)],
        "env": environment([boot]),
    }
    return Page("boot", str(ref), f"boot {ref}: {boot['profile']}, {boot['outcome']}", data)


def load_history(store: Store, profile: str) -> Page:
    rows = list(reversed(history_rows(store, profile, None)))
    if not rows:
        known = sorted({r["profile"] for r in store.trials()})
        hint = (
            f"profiles with trials: {', '.join(known)}" if known else "the store has no trials yet; run `bootlab trial`"
        )
        raise UsageError(f"report --history {profile}: no trials of {profile} in the store {store.root}; {hint}")
    variants = list(dict.fromkeys(" ".join(r["sets"]) for r in rows))
    revisions, unrecorded = _per_revision(store, rows)
    data = {"profile": profile, "rows": rows, "variants": variants, "revisions": revisions, "unrecorded": unrecorded}
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in profile)
    return Page("history", f"history-{safe}", f"history of {profile}: {len(rows)} trials", data)


# -- bisects -------------------------------------------------------------------------------------------------------

#: What each boot of a bisect was, as evidence (see bootlab.lab.bisect.symptom), in the order plots stack them.
EVIDENCE = ("clean", "symptom", "ignored", "excluded")


def _evidence(shows: bool | None, boot: dict[str, Any]) -> str:
    if not boot["counted"]:
        return "excluded"
    return "ignored" if shows is None else ("symptom" if shows else "clean")


def _rate(k: int, n: int) -> dict[str, Any]:
    """A count as the templates' ``rate`` filter and the plots read it (here: boots showing the symptom)."""
    return Tally(passed=k, failed=n - k).to_json()


def _bisect_replay(summary: dict[str, Any], params: dict[str, Any]) -> str:
    """``bootlab bisect`` with the same ends, rules and seed base: the same search, boot for boot (given the same
    batch size: ``-j`` when it was given, else this host's default, as the original's was)."""
    words = ["bootlab", "bisect", summary["profile"], *(w for s in summary.get("sets") or [] for w in ("--set", s))]
    words += ["--good", summary["good"]["rev"], "--bad", summary["bad"]["rev"]]
    if summary["direction"] == "fix":
        words.append("--fixed")
    if summary.get("title"):
        words += ["--title", summary["title"]]
    words += ["--confidence", f"{summary['confidence']:g}", "--max-boots", str(summary["max_boots"])]
    if params.get("jobs"):
        words += ["-j", str(params["jobs"])]
    if summary.get("strict"):
        words.append("--strict")
    return shlex.join([*words, "--seed-base", str(summary["seed_base"])])


def _rev(text: str) -> str:
    """A revision as the user named it, a full hash shortened (a title is no place for 40 hex digits)."""
    return text[:12] if len(text) == 40 and all(ch in "0123456789abcdef" for ch in text.lower()) else text


def _images_per_commit(commits: list[dict[str, Any]]) -> dict[str, Any]:
    """The files the bisect booted: those every commit shared once, and per commit those its build made."""
    seen: dict[str, set[Any]] = {}
    per_commit = []
    for c in commits:
        images = c["boot_views"][0]["images"] if c["boot_views"] else {}
        per_commit.append((c, images))
        for key, digest in images.items():
            seen.setdefault(key, set()).add(digest)
    shared = {k for k, digests in seen.items() if len(digests) == 1}
    return {
        "shared": [{"key": k, "sha256": next(iter(seen[k]))} for k in sorted(shared)],
        "per_commit": [
            {"commit": c["commit"], "subject": c.get("subject"), "key": k, "sha256": d}
            for c, images in per_commit
            for k, d in sorted(images.items())
            if k not in shared
        ],
    }


def load_bisect(store: Store, ref: Ref) -> Page:
    """A bisect: its answer, every commit of the line with its posterior, and per tested commit its boots (each
    classified as the search counted it: symptom, clean, ignored by ``--title``, or excluded as qemu/infra)."""
    from bootlab.lab.bisect import line_posterior, symptom, title_pattern

    row = store.require(ref)
    if not row["summary"]:
        raise UsageError(
            f"bisect {ref} has no result yet (its first batch has not finished, or it was killed before); "
            f"`bootlab bisect --resume {ref}` carries it on"
        )
    summary = {**json.loads(row["summary"]), "status": store.status_of(row)}
    params = json.loads(row["params"] or "{}")
    line: list[str] = list(params.get("line") or [])
    pattern = title_pattern(summary["title"]) if summary.get("title") else None
    strict = bool(summary.get("strict"))
    sets = list(summary.get("sets") or [])
    by_commit: dict[str, list[dict[str, Any]]] = {}
    for trow in store.bisect_trials(ref.id):
        commit = json.loads(trow["params"] or "{}").get("commit")
        for stored in store.boots(int(trow["id"])):
            view = boot_view(stored, sets, strict)
            shows = symptom(view["model"], strict=strict, title=pattern)
            view["evidence"] = _evidence(shows, view)
            by_commit.setdefault(str(commit), []).append(view)
    post = line_posterior(summary) if line else []
    best = summary["best"]["index"]
    commits = []
    for c in summary["commits"]:
        boots = by_commit.get(c["commit"], [])
        kinds = Counter(v["evidence"] for v in boots)
        titles: dict[str, Counter[str]] = {k: Counter() for k in EVIDENCE}
        for v in boots:
            if v["evidence"] != "clean":
                titles[v["evidence"]][failure_title(v["model"])] += 1
        counted = c["symptom"] + c["clean"]
        commits.append(
            {
                **c,
                "boot_views": boots,
                "evidence": {k: kinds.get(k, 0) for k in EVIDENCE},
                "evidence_titles": {k: v.most_common() for k, v in titles.items()},
                "counted": counted,
                "symptom_rate": _rate(c["symptom"], counted),
                "is_best": c["index"] == best,
            }
        )
    cap = max(2, MAX_FAILURE_DETAILS // max(1, len(commits)))
    failures = []
    for c in commits:
        # the boots the search counted against the commit (and the other failures, which it ignored)
        shown = _pick_failures([b for b in c["boot_views"] if b["evidence"] in ("symptom", "ignored")], cap)
        if shown:
            failures.append({"commit": c, "boots": [_with_excerpt(store, b) for b in shown]})
    tested = {c["index"]: c for c in commits}
    data = {
        "bisect": summary,
        "params": params,
        "commits": commits,
        # unbuildable commits the answer may be (the change is then at one of them or the commit after it)
        "hinges": [c for c in commits if c.get("skipped") and c["posterior"] >= 0.05],
        # the stored runners-up of an undecided bisect include its likeliest commit, which the page names apart
        "runners_up": [r for r in summary["runners_up"] if r["index"] != best],
        "line": [
            {
                "index": i,
                "commit": commit,
                "posterior": post[i] if post else None,
                "tested": i in tested and not tested[i].get("skipped"),
                "skipped": bool(tested.get(i, {}).get("skipped")),
            }
            for i, commit in enumerate(line)
        ],
        "failures": failures,
        "every_boot": [{"commit": c, "arm": {"boots": c["boot_views"], "failures": []}} for c in commits],
        # the images differ per commit: listed per commit under the environment, not pooled with boot counts
        "env": {**environment([b for c in commits for b in c["boot_views"]]), "images": [], "revisions": []},
        "images": _images_per_commit(commits),
        "notes": [n["text"] for n in store.notes(ref)],
        "started": row["started"],
        "finished": row["finished"],
        "replay": _bisect_replay(summary, params),
    }
    good, bad = f"good {_rev(summary['good']['rev'])}", f"bad {_rev(summary['bad']['rev'])}"
    ends = f"{bad} .. {good}" if summary["direction"] == "fix" else f"{good} .. {bad}"  # the older end first
    return Page("bisect", str(ref), f"bisect {ref}: {_label(summary)}, {ends}", data)


def _per_revision(store: Store, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The history's boots pooled per source revision (commit, dirty or not) and variant (``--set`` values), in
    the order each revision was first booted; and how many counted boots recorded no revision (booted before
    bootlab recorded revisions, or from a directory outside git). A trial's boots normally share one revision;
    one rebuilt in place mid-trial splits over two, and a bisect's trials are one revision each."""
    from bootlab.source.revision import Revision

    groups: dict[tuple[str, str, bool], dict[str, Any]] = {}
    unrecorded = 0
    for r in rows:
        trial = store.require(Ref("trial", int(r["trial"][1:])))
        strict = bool(json.loads(trial["params"] or "{}").get("strict"))
        variant = " ".join(r["sets"])
        for b in store.boots(int(trial["id"])):
            verdict = Verdict.model_validate_json(b["verdict"])
            if judge(verdict) is None:
                continue
            rev = Revision.from_json(json.loads(b["revision"])) if b["revision"] else None
            if rev is None or not rev.commit:
                unrecorded += 1
                continue
            g = groups.setdefault(
                (variant, rev.commit, rev.dirty),
                {
                    "revision": rev.to_json(),
                    "label": rev.short(),
                    "tick": rev.commit[:8] + ("+dirty" if rev.dirty else ""),
                    "variant": variant,
                    "sets": r["sets"],
                    "tally": Tally(),
                    "trials": [],
                    "first": b["created"],
                },
            )
            g["tally"].add(verdict, strict)
            g["first"] = min(g["first"], b["created"])
            if r["trial"] not in g["trials"]:
                g["trials"].append(r["trial"])
    out = sorted(groups.values(), key=lambda g: g["first"])
    for g in out:
        g.update(g.pop("tally").to_json())
    return out, unrecorded


#: kind of store id -> the loader of its page (each kind of KINDS in store.db that has a page).
LOADERS: dict[str, Callable[[Store, Ref], Page]] = {
    "trial": load_trial,
    "matrix": load_matrix,
    "comparison": load_comparison,
    "boot": load_boot,
    "bisect": load_bisect,
}


def load(store: Store, ref: Ref) -> Page:
    loader = LOADERS.get(ref.kind)
    if loader is None:
        raise UsageError(
            f"report {ref}: no report for a {ref.kind}; report a trial, matrix, comparison, bisect or boot"
        )
    return loader(store, ref)
