"""Golden tests, syzkaller style: every ``tests/packs/<pack>/*.log`` has a ``.toml`` with its expected verdict.

Logs are real consoles (the Redox samples, logs recorded from the test guests) or synthesized from the kernel's
formats where no real log exists yet (marked ``synthesized = true`` with a reference). Besides the per-file check,
two table-wide checks keep the packs honest: every signature fires somewhere, and nothing fires on a clean boot.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bootlab.console.classify import check_log, classify_text
from bootlab.console.observer import Observer, wants_shell
from bootlab.packs.loader import PackSet, load_packs

GOLDEN = Path(__file__).resolve().parents[1] / "packs"
LOGS = sorted(GOLDEN.glob("*/*.log"))
SERIAL_PACKS = ("edk2", "linux", "redox")
# packs written by users (tests/packs/<pack>/packs/<pack>.toml), held to the same standard: the U-Boot pack was
# written from the README alone
USER_PACKS = ("uboot",)


def expected(log: Path) -> dict[str, Any]:
    return tomllib.loads(log.with_suffix(".toml").read_text())


def packs_of(log: Path, exp: dict[str, Any]) -> PackSet:
    """The golden's packs: shipped ones, or a user's from the golden's folder (``tests/packs/<x>/packs/``)."""
    own = log.parent / "packs"
    return load_packs(exp["packs"], log.parent if own.is_dir() else None)


def shell_wanted(log: Path, exp: dict[str, Any]) -> bool:
    """A golden recorded with credentials (``vars``) is ready only at the shell, as its live boot was."""
    return "vars" in exp and wants_shell(packs_of(log, exp), exp["vars"])


def observe(log: Path, exp: dict[str, Any]) -> Observer:
    obs = Observer(packs_of(log, exp), wait_for_shell=shell_wanted(log, exp))
    obs.feed_text(log.read_text(errors="replace"))
    obs.finish()
    return obs


def test_there_are_goldens_for_every_pack() -> None:
    for pack in (*SERIAL_PACKS, *USER_PACKS):
        assert list((GOLDEN / pack).glob("*.log")), f"no golden logs for {pack}"


@pytest.mark.parametrize("log", LOGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden(log: Path) -> None:
    exp = expected(log)
    text = log.read_text(errors="replace")
    verdict = classify_text(text, packs_of(log, exp), wait_for_shell=shell_wanted(log, exp))
    assert verdict.outcome == exp["outcome"]
    assert verdict.title == exp.get("title")
    assert (verdict.death.title if verdict.death else None) == exp.get("death")
    # TOML has no null: a golden without fatal_line expects none, so a crash golden must name the line that decided it
    assert verdict.fatal_line == exp.get("fatal_line")
    got = [(i.kind, i.title, i.process) for i in verdict.incidents]
    want = [(i["kind"], i["title"], i.get("process")) for i in exp.get("incidents", [])]
    assert got == want
    for inc, want_inc in zip(verdict.incidents, exp.get("incidents", []), strict=True):
        if "line" in want_inc:
            assert inc.line == want_inc["line"]
    if "live_stage" in exp:  # recorded with `bootlab boot`: read as `packs check` does (with the .times index)
        checked = check_log(log, packs_of(log, exp), wait_for_shell=shell_wanted(log, exp), variables=exp.get("vars"))
        assert checked.verdict.stage == exp["live_stage"]
    if "stopped_prompt" in exp:  # where an incomplete log stopped: the prompt a live hang would be titled by
        assert observe(log, exp).stopped_view()[1] == exp["stopped_prompt"]


@pytest.mark.parametrize("log", LOGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_is_documented(log: Path) -> None:
    """A golden says where it comes from: a label, a recording, or the spec it was synthesized from."""
    exp = expected(log)
    text = log.with_suffix(".toml").read_text()
    if exp.get("synthesized"):
        assert text.startswith("# SYNTHESIZED"), "synthesized goldens start with a comment naming their spec"
    else:
        assert "label" in exp or "Real console recorded" in text


def _label_outcome(label: dict[str, Any]) -> str:
    if label["fatal"]:
        return "crash"
    return "pass" if label["login_reached"] else "incomplete"


REDOX_LABELLED = [p for p in LOGS if "label" in expected(p)]


def test_every_redox_sample_is_a_golden() -> None:
    labels = json.loads((GOLDEN / "redox" / "labels.json").read_text())
    assert sorted(expected(p)["label"] for p in REDOX_LABELLED) == sorted(labels)


@pytest.mark.parametrize("log", REDOX_LABELLED, ids=lambda p: p.stem)
def test_redox_golden_agrees_with_labels(log: Path) -> None:
    """Outcome always agrees with labels.json; incidents agree unless the golden explains why not."""
    exp = expected(log)
    label = json.loads((GOLDEN / "redox" / "labels.json").read_text())[exp["label"]]
    assert exp["outcome"] == _label_outcome(label)
    want = [(i["kind"], i["process"], i["line"]) for i in label["incidents"]]
    got = [(i["kind"], i.get("process"), i["line"]) for i in exp.get("incidents", [])]
    if "label_disagreement" in exp:
        assert len(exp["label_disagreement"]) > 40, "say why the golden departs from the label"
        assert got != want or exp.get("fatal_line") != (label["fatal"] or {}).get("line")
    else:
        assert got == want
        if label["fatal"]:
            assert exp["fatal_line"] == label["fatal"]["line"]


def _fired() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """signature id -> golden files where it fired; and for clean passing goldens, what fired there."""
    fired: dict[str, set[str]] = {}
    in_clean_pass: dict[str, set[str]] = {}
    for log in LOGS:
        exp = expected(log)
        obs = observe(log, exp)
        ids = {f.signature for f in (*obs.incidents, obs.fatal, obs.death) if f is not None}
        for sid in ids:
            fired.setdefault(sid, set()).add(log.name)
        if exp["outcome"] == "pass" and not exp.get("incidents"):
            in_clean_pass[log.name] = ids
    return fired, in_clean_pass


def test_every_signature_fires_in_a_golden() -> None:
    fired, _ = _fired()
    every = [(pack, None) for pack in SERIAL_PACKS] + [(pack, GOLDEN / pack) for pack in USER_PACKS]
    missing = [s.spec.id for pack, d in every for s in load_packs([pack], d).signatures if s.spec.id not in fired]
    assert not missing, f"signatures without a golden log: {missing}"


def test_no_signature_fires_on_a_clean_boot() -> None:
    _, clean = _fired()
    assert clean, "there must be clean passing goldens"
    assert {name: ids for name, ids in clean.items() if ids} == {}


def test_fatal_signatures_never_fire_in_a_passing_golden() -> None:
    for log in LOGS:
        exp = expected(log)
        if exp["outcome"] == "pass":
            assert observe(log, exp).fatal is None, log.name
