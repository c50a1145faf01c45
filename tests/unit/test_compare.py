"""Comparisons: the sentence, the numbers, interleaving of A and B, stored trials, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_trial_support import make_lab, refused

from bootlab.cli.main import main
from bootlab.host import Host
from bootlab.lab.lab import ArmSpec, comparison
from bootlab.lab.results import TrialResult, to_json
from bootlab.lab.summary import BootRecord, summarize
from bootlab.verdict import Verdict

COMPARE_KEYS = {"a", "b", "difference", "difference_ci95", "p_value", "significant", "more_boots_each", "sentence"}


def arm(passed: int, boots: int) -> TrialResult:
    records = [BootRecord(i, i, Verdict(outcome="pass" if i < passed else "crash")) for i in range(boots)]
    return TrialResult(trial=None, profile="p", sets=[], status="done", summary=summarize(records))


def test_the_users_ten_boots_are_not_enough() -> None:
    c = to_json(comparison(arm(6, 10), arm(10, 10), "dsb-wfi", "isb-barriers"))
    assert c["p_value"] == pytest.approx(0.0867, abs=1e-4)
    assert not c["significant"]
    assert c["more_boots_each"] is not None and 5 <= c["more_boots_each"] <= 20
    assert c["sentence"].startswith("not distinguishable yet (p = 0.0867): about ")
    assert "more boots each would settle a difference this size" in c["sentence"]
    assert c["difference"] == pytest.approx(0.4)


def test_significant_sentence_names_the_better_side() -> None:
    c = to_json(comparison(arm(12, 30), arm(30, 30), "dsb-wfi", "isb-barriers"))
    assert c["significant"] and c["sentence"].startswith("isb-barriers passes more often than dsb-wfi (p = ")
    c = to_json(comparison(arm(30, 30), arm(12, 30), "A", "B"))
    assert c["sentence"].startswith("A passes more often than B")
    c = to_json(comparison(arm(5, 10), arm(5, 10), "A", "B"))
    assert "no difference seen" in c["sentence"] and c["more_boots_each"] is None


def test_compare_interleaves_a_and_b(tmp_path: Path, fake_host: Host) -> None:
    lab = make_lab(tmp_path, fake_host)
    order: list[str] = []
    inner = lab.boot_fn

    async def spy(profile, log_path):  # type: ignore[no-untyped-def]
        order.append(profile.vars["build"])
        return await inner(profile, log_path)

    lab.boot_fn = spy
    a = ArmSpec("sim", ["cpu=max", "vars.build=dsb-wfi"], label="dsb-wfi")
    b = ArmSpec("sim", ["cpu=max", "vars.build=isb-barriers"], label="isb-barriers")
    c = to_json(lab.compare(a, b, n=40, jobs=1, seed_base=2))
    assert order[:6] == ["dsb-wfi", "isb-barriers"] * 3
    assert set(c) >= COMPARE_KEYS and c["comparison"] == "c1"
    assert c["b"]["passed"] == 40 and 10 <= c["a"]["passed"] <= 32
    assert c["significant"] and c["p_value"] < 0.01


def test_cli_compare_variants_and_stored_trials(sim_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["compare", "sim", "--config", str(sim_config), "--set", "cpu=max"]
    argv = [*base, "--a", "vars.build=dsb-wfi", "--b", "vars.build=isb-barriers", "-n", "10", "--seed-base", "4"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= COMPARE_KEYS
    assert out["a"]["label"] == "vars.build=dsb-wfi" and out["b"]["trial"] == "t2"
    assert main(["compare", "--config", str(sim_config), "--trials", "t1", "t2", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["p_value"] == pytest.approx(out["p_value"])
    assert main(["compare", "--config", str(sim_config), "--trials", "t1", "t2"]) == 0
    text = capsys.readouterr().out
    assert "Fisher exact two-sided p = " in text and "difference B - A" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sim"], "one profile needs variants"),
        (["sim", "sim", "sim"], "needs two profiles"),
        (["sim", "--a", "cpu=max"], "needs -n N"),
        (["sim", "sim", "-n", "2"], "the same profile with the same settings"),
        (["--trials", "t1", "b2"], "is a boot, not a trial"),
        (["--trials", "t1", "t99"], "no trial t1 in the store"),
        (["--trials", "zz", "t1"], "not a store id"),
    ],
)
def test_compare_bad_input(
    sim_config: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    from bootlab.store.db import open_store

    open_store().close()  # an empty store (a missing one is test_report's)
    assert message in refused(["compare", "--config", str(sim_config), *argv], capsys)
