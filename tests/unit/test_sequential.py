"""`compare --until-confident`: the anytime-valid tests (error rates under continuous monitoring, power), and the
comparison that stops on them, in the library and the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from test_trial_support import make_lab, refused

from bootlab.cli.main import main
from bootlab.host import Host
from bootlab.lab.lab import ArmSpec
from bootlab.lab.results import to_json
from bootlab.lab.sequential import PairStopper, confidence_sequence, e_path


def pairs(rng: random.Random, pa: float, pb: float, n: int) -> list[tuple[int, int]]:
    return [(int(rng.random() < pa), int(rng.random() < pb)) for _ in range(n)]


@pytest.mark.parametrize("rate", [0.1, 0.6, 0.95])
def test_equal_arms_rarely_look_different_however_often_one_looks(rate: float) -> None:
    """Looking after every one of 300 blocks (what repeated Fisher tests get wrong), the e-test declares a
    difference between equal arms in at most alpha = 5% of 400 runs."""
    rng = random.Random(int(rate * 100))
    false = sum(any(max(e) >= 40 for e in e_path(pairs(rng, rate, rate, 300))) for _ in range(400))
    assert false / 400 <= 0.05


def test_repeated_fisher_tests_would_have_failed_that() -> None:
    """The reason the e-test exists: peeking at Fisher's p after every block "finds" differences far more often."""
    from bootlab.lab.stats import fisher_p

    rng = random.Random(3)
    false = 0
    for _ in range(40):
        ka = kb = 0
        for i, (xa, xb) in enumerate(pairs(rng, 0.6, 0.6, 120), start=1):
            ka, kb = ka + xa, kb + xb
            if i % 4 == 0 and fisher_p(ka, i, kb, i) < 0.05:
                false += 1
                break
    assert false / 40 > 0.10  # 8 of 40 with this seed


def test_the_notes_60_vs_100_is_settled_in_a_few_dozen_pairs() -> None:
    rng = random.Random(8)
    stops = []
    for _ in range(200):
        path = e_path(pairs(rng, 0.6, 1.0, 200))
        stops.append(next((i + 1 for i, (eb, _) in enumerate(path) if eb >= 40), 999))
    stops.sort()
    assert stops[100] <= 30  # median
    assert stops[190] < 999  # nearly always decided within the cap


def test_direction_errors_are_rare_when_a_is_better() -> None:
    rng = random.Random(9)
    wrong = sum(any(eb >= 40 for eb, _ in e_path(pairs(rng, 0.9, 0.6, 200))) for _ in range(300))
    assert wrong == 0


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (6, 10), (120, 200)])
def test_confidence_sequence_contains_the_estimate_and_shrinks(k: int, n: int) -> None:
    lo, hi = confidence_sequence(k, n, 0.025)
    assert 0 <= lo <= k / n <= hi <= 1
    lo2, hi2 = confidence_sequence(k * 4, n * 4, 0.025)
    assert hi2 - lo2 < hi - lo
    assert confidence_sequence(0, 0, 0.05) == (0.0, 1.0)


def test_confidence_sequence_covers_at_every_n_at_once() -> None:
    rng = random.Random(2)
    misses = 0
    for _ in range(200):
        k = 0
        for n in range(1, 301):
            k += rng.random() < 0.7
            lo, hi = confidence_sequence(k, n, 0.05) if n % 10 == 0 else (0.0, 1.0)
            if not lo <= 0.7 <= hi:
                misses += 1
                break
    assert misses / 200 <= 0.05


def test_compare_until_confident_stops_early_and_says_so(tmp_path: Path, fake_host: Host) -> None:
    lab = make_lab(tmp_path, fake_host)
    a = ArmSpec("sim", ["cpu=max", "vars.build=icache-fix"], label="icache-fix")
    b = ArmSpec("sim", ["cpu=max", "vars.build=isb-barriers"], label="isb-barriers")
    stopper = PairStopper()
    c = to_json(lab.compare(a, b, n=200, jobs=2, seed_base=5, stopper=stopper))
    seq = c["sequential"]
    assert seq["decision"] == "b-better" and seq["e_b_better"] >= 40
    assert c["a"]["boots"] < 60 and c["b"]["boots"] < 60  # far below the cap of 200
    assert abs(c["a"]["boots"] - c["b"]["boots"]) <= 2  # both arms stop together
    assert c["sentence"].startswith("isb-barriers passes more often than icache-fix (anytime-valid e = ")
    assert seq["fixed_n"] is not None and "safe test for two proportions" in seq["describe"]


def test_identical_arms_end_within_the_margin_or_at_the_cap(tmp_path: Path, fake_host: Host) -> None:
    lab = make_lab(tmp_path, fake_host)
    a = ArmSpec("sim", ["vars.build=isb-barriers"], label="A")
    b = ArmSpec("sim", ["vars.build=dsb-wfi"], label="B")  # cortex-a72: both builds always pass
    c = to_json(lab.compare(a, b, n=400, jobs=2, seed_base=1, stopper=PairStopper(margin=0.1)))
    assert c["sequential"]["decision"] == "within-margin"
    assert c["sentence"].startswith("no difference of 10% or more between A and B")
    assert c["a"]["boots"] < 400


def test_cli_compare_until_confident(sim_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", "sim", "--config", str(sim_config), "--set", "cpu=max", "--a", "vars.build=icache-fix"]
    argv += ["--b", "vars.build=isb-barriers", "-n", "100", "--until-confident", "--seed-base", "3"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "until-confident: B passes more often than A after " in text
    assert "e-values: B better " in text
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sequential"]["decision"] == "b-better"


def test_cli_matrix_until_confident_decides_each_cell(sim_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "matrix",
        "sim",
        "--config",
        str(sim_config),
        "--axis",
        "cpu=cortex-a72,max",
        "--set",
        "vars.build=icache-fix",
    ]
    assert main([*argv, "-n", "60", "--until-confident", "--target", "0.9", "--seed-base", "2", "--json"]) == 0
    cells = {c["axes"]["cpu"]: c for c in json.loads(capsys.readouterr().out)["cells"]}
    assert cells["cortex-a72"]["sequential"]["decision"] == "reached"
    assert cells["max"]["sequential"]["decision"] == "refuted"
    assert cells["max"]["boots"] < 10 and cells["cortex-a72"]["boots"] < 60
    assert main([*argv, "-n", "60", "--until-confident", "--target", "0.9", "--seed-base", "2"]) == 0
    assert "target 90% refuted" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "sim", "--a", "cpu=max", "--b", "cpu=cortex-a72", "-n", "5", "--margin", "0.1"], "--margin only"),
        (["compare", "--trials", "t1", "t2", "--until-confident"], "drop --until-confident"),
        (["compare", "sim", "--rev", "HEAD", "--a-rev", "HEAD", "-n", "3"], "either --rev REV or --a-rev"),
        (["matrix", "sim", "--axis", "cpu=max,cortex-a72", "-n", "3", "--target", "0.9"], "--until-confident"),
        (["matrix", "sim", "--axis", "cpu=max", "-n", "3", "--until-confident"], "needs --target RATE"),
    ],
)
def test_bad_sequential_options(
    sim_config: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert message in refused([*argv, "--config", str(sim_config)], capsys)
