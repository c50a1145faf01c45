"""history, show, note and export over a store filled by simulated trials: shapes and bad input."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bootlab.cli.main import main


@pytest.fixture
def filled(sim_config: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    common = ["--config", str(sim_config), "--seed-base", "9", "--json"]
    assert main(["trial", "sim", "--set", "cpu=max", "--set", "vars.build=dsb-wfi", "-n", "8", *common]) == 0
    assert main(["trial", "sim", "-n", "3", *common]) == 0
    capsys.readouterr()
    return sim_config


def test_history_newest_first(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--config", str(filled), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["trial"] for r in rows] == ["t2", "t1"]
    assert set(rows[0]) >= {"trial", "started", "profile", "rate", "ci95", "note", "status"}
    assert main(["note", "t1", "before the ISB fix", "--config", str(filled)]) == 0
    capsys.readouterr()
    assert main(["history", "sim", "--config", str(filled)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "t2"
    assert "# before the ISB fix" in lines[1] and "[" in lines[1] and "%" in lines[1]


def test_show_trial_and_boot(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "t1", "--config", str(filled), "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    assert t["trial"] == "t1" and len(t["boot_list"]) == 8
    assert main(["show", t["boot_list"][0]["boot"], "--config", str(filled), "--json"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert set(b) >= {"boot", "seed", "verdict", "argv", "images", "host", "resolved_profile"}
    assert main(["show", b["boot"], "--config", str(filled)]) == 0
    text = capsys.readouterr().out
    assert "--set cpu=max --set vars.build=dsb-wfi --seed" in text


def test_export_formats(filled: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["export", "t1", "--format", "json", "--config", str(filled)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trial"]["trial"] == "t1" and len(data["boots"]) == 8
    assert main(["export", "t1", "--format", "csv", "--config", str(filled)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 8 and {"boot", "seed", "outcome", "title"} <= set(rows[0])
    out = tmp_path / "junit.xml"
    assert main(["export", "t1", "--format", "junit", "-o", str(out), "--config", str(filled)]) == 0
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    failures = [c for c in cases if c.find("failure") is not None]
    assert len(cases) == 8 and int(suite.get("failures", "-1")) == len(failures)
    replay = "replay: bootlab boot sim --set cpu=max --set vars.build=dsb-wfi --seed "
    assert failures and all(replay in (c.find("failure").text or "") for c in failures)  # type: ignore[union-attr]
    seed = (failures[0].find("failure").text or "").split(replay)[1].split()[0]  # type: ignore[union-attr]
    assert failures[0].get("name", "").startswith("boot ") and f"seed {seed} " in failures[0].get("name", "")
    assert data["trial"]["boots"] - data["trial"]["passed"] == len(failures)


def test_junit_replay_of_a_single_boot_has_its_trials_sets(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "t1", "--config", str(filled), "--json"]) == 0
    boot = next(b for b in json.loads(capsys.readouterr().out)["boot_list"] if b["outcome"] != "pass")
    assert main(["export", boot["boot"], "--format", "junit", "--config", str(filled)]) == 0
    failure = ET.fromstring(capsys.readouterr().out).find("testsuite/testcase/failure")
    assert failure is not None
    assert f"replay: bootlab boot sim --set cpu=max --set vars.build=dsb-wfi --seed {boot['seed']}" in (
        failure.text or ""
    )
    assert main(["export", boot["boot"], "--format", "json", "--config", str(filled)]) == 0
    assert json.loads(capsys.readouterr().out)["boots"][0]["sets"] == ["cpu=max", "vars.build=dsb-wfi"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "t1", "--format", "xml"], "unknown format"),
        (["export", "t42"], "no trial t42"),
        (["export", "m1"], "cannot be exported"),
        (["show", "t1", "--log"], "logs belong to boots"),
        (["show", "nope"], "not a store id"),
        (["note", "t1", "  "], "the text is empty"),
        (["note", "b999", "x"], "no boot b999"),
        (["history", "--limit", "-1"], "--limit -1"),
    ],
)
def test_store_commands_bad_input(
    filled: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([*argv, "--config", str(filled)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_junit_of_a_strict_trial_fails_a_pass_with_incidents() -> None:
    """`trial --strict` counted the pass with an incident as a failure; its JUnit export says the same."""
    from bootlab.cli.export import to_junit

    incident = {"kind": "warning", "title": "linux: WARNING in foo_probe", "process": None, "line": "WARNING", "t": 1.0}
    boots = [
        {
            "boot": f"b{i}",
            "trial": "t1",
            "idx": i,
            "profile": "sim",
            "seed": i,
            "sets": [],
            "outcome": "pass",
            "title": None,
            "verdict": {"outcome": "pass", "stage": "login", "incidents": [incident] if i == 0 else []},
        }
        for i in range(2)
    ]
    for strict, failed in ((True, 1), (False, 0)):
        trial = {"trial": "t1", "profile": "sim", "strict": strict, "sets": []}
        suite = ET.fromstring(to_junit(trial, boots)).find("testsuite")
        assert suite is not None and suite.get("failures") == str(failed)
        assert len([c for c in suite.findall("testcase") if c.find("failure") is not None]) == failed
