"""Matrices: --axis parsing, the product's order, lint-refused cells, marks, and the notes' pattern on
simulated redox-sim boots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_trial_support import make_lab, refused

from bootlab.cli.main import main
from bootlab.errors import UsageError
from bootlab.host import Host
from bootlab.lab.lab import matrix_cells, parse_axis
from bootlab.lab.results import to_json
from bootlab.lab.summary import mark


def test_parse_axis_forms() -> None:
    assert parse_axis("smp=1,4") == ("smp", [("1", "smp=1"), ("4", "smp=4")])
    key, values = parse_axis('cpu=["cortex-a72", "max,pauth-impdef=on"]')
    assert key == "cpu" and values[1] == ("max,pauth-impdef=on", 'cpu="max,pauth-impdef=on"')
    assert parse_axis("machine.highmem=on,off")[0] == "machine.highmem"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpu", "expected KEY=V1,V2"),
        ("=a,b", "expected KEY=V1,V2"),
        ("cpu=", "expected KEY=V1,V2"),
        ("cpu=a,,b", "empty value"),
        ("cpu=a,a", "listed twice"),
        ("a..b=1", "malformed key"),
        ("cpu=[1, ", "not valid TOML"),
    ],
)
def test_bad_axis(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_axis(text)


def test_cells_are_the_product_first_axis_slowest() -> None:
    axes, cells = matrix_cells("p", ["vars.build=x"], ["cpu=a,b", "smp=1,4"])
    assert axes == {"cpu": ["a", "b"], "smp": ["1", "4"]}
    assert [c.axes for c in cells] == [
        {"cpu": "a", "smp": "1"},
        {"cpu": "a", "smp": "4"},
        {"cpu": "b", "smp": "1"},
        {"cpu": "b", "smp": "4"},
    ]
    assert cells[1].sets == ["vars.build=x", "cpu=a", "smp=4"]
    with pytest.raises(UsageError, match="given twice"):
        matrix_cells("p", [], ["cpu=a", "cpu=b"])
    with pytest.raises(UsageError, match="at least one --axis"):
        matrix_cells("p", [], [])


def test_marks() -> None:
    assert mark({"boots": 4, "passed": 4}) == "pass"
    assert mark({"boots": 4, "passed": 1}) == "flaky"
    assert mark({"boots": 4, "passed": 0}) == "fail"
    assert mark({"boots": 0, "passed": 0}) == "none"
    assert mark({"refused": ["x"], "boots": 0, "passed": 0}) == "refused"


def test_matrix_reproduces_the_notes_pattern(tmp_path: Path, fake_host: Host) -> None:
    lab = make_lab(tmp_path, fake_host)
    m = to_json(
        lab.matrix(
            "sim",
            [],
            ["cpu=cortex-a72,max", "smp=1,4", "machine.highmem=on,off"],
            n=20,
            seed_base=11,
        )
    )
    by = {(c["axes"]["cpu"], c["axes"]["smp"], c["axes"]["machine.highmem"]): c for c in m["cells"]}
    assert len(by) == 8
    for key, cell in by.items():
        if key[0] == "cortex-a72":
            assert cell["mark"] == "pass"
        elif key[1] == "4":
            assert cell["mark"] == "fail"
    assert by[("max", "1", "off")]["mark"] == "flaky"
    assert by[("max", "1", "on")]["mark"] == "pass"  # the isb-barriers build
    # every cell booted the same seeds
    stored = [lab.store.boots(int(c["trial"][1:])) for c in m["cells"]] if lab.store else []
    assert len({tuple(sorted(b["seed"] for b in boots)) for boots in stored}) == 1


def test_refused_cells_are_shown_not_run(sim_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "matrix",
        "sim",
        "--config",
        str(sim_config),
        "--axis",
        "cpu=cortex-a72,host",
        "-n",
        "3",
        "--seed-base",
        "1",
    ]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["matrix"] == "m1"
    refused = [c for c in out["cells"] if c["refused"]]
    assert len(refused) == 1 and refused[0]["axes"] == {"cpu": "host"} and "cpu-host-tcg" in refused[0]["refused"][0]
    ran = [c for c in out["cells"] if not c["refused"]]
    assert ran[0]["boots"] == 3 and ran[0]["mark"] == "pass"
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "refused by lint" in text and "✅" in text and "🚫" in text


def test_matrix_bad_axis_exit_2(sim_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "expected KEY=V1,V2" in refused(
        ["matrix", "sim", "--config", str(sim_config), "--axis", "cpu", "-n", "2"], capsys
    )
    assert not (tmp_path / "store").exists()  # nothing was started
