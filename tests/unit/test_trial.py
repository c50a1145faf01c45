"""Trials on simulated boots: counting, seeds, strictness, exclusion of infra errors, early stop, interrupts, the
--json shape, and bad input (one line, exit 2)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_trial_support import make_lab, make_project, refused

from bootlab.cli.main import main
from bootlab.errors import UsageError
from bootlab.host import Host
from bootlab.lab.lab import ArmSpec
from bootlab.lab.results import to_json
from bootlab.lab.simulate import bernoulli_boot_fn, redox_sim_outcome
from bootlab.lab.stats import Sprt
from bootlab.lab.summary import BootRecord, Stopper, derive_seed, summarize
from bootlab.profile.model import Profile
from bootlab.store.db import Store
from bootlab.verdict import Incident, StageTime, Verdict

JSON_KEYS = {
    "trial",
    "profile",
    "boots",
    "passed",
    "rate",
    "ci95",
    "outcomes",
    "titles",
    "incidents",
    "stages",
    "excluded",
    "stopped_early",
}
MAX_DSB = ["cpu=max", "vars.build=dsb-wfi"]


def rec(
    idx: int, outcome: str, title: str | None = None, incidents: int = 0, stages: dict[str, float] | None = None
) -> BootRecord:
    v = Verdict(
        outcome=outcome,  # type: ignore[arg-type]
        title=title,
        seed=1000 + idx,
        incidents=[Incident(kind="daemon", title="redox: pcid died", process="pcid", line="x", t=1.0)] * incidents,
        stages=[StageTime(name=k, t=t) for k, t in (stages or {}).items()],
    )
    return BootRecord(idx, 1000 + idx, v, f"b{idx + 1}")


def test_summary_counts_titles_incidents_and_stages() -> None:
    records = [
        rec(0, "pass", stages={"kernel": 1.0, "login": 2.0}),
        rec(1, "crash", "redox: Lacks grant in init", stages={"kernel": 1.2}),
        rec(2, "crash", "redox: Lacks grant in init", incidents=1),
        rec(3, "hang", None, stages={"kernel": 3.0}),
        rec(4, "pass", incidents=2, stages={"kernel": 1.1, "login": 2.2}),
        rec(5, "qemu-error", "qemu: bad option"),
    ]
    s = to_json(summarize(records))
    assert (s["boots"], s["passed"], s["excluded"]) == (5, 2, 1)
    assert s["rate"] == pytest.approx(0.4)
    assert s["outcomes"] == {"pass": 2, "crash": 2, "hang": 1, "qemu-error": 1}
    assert s["titles"][0] == {"title": "redox: Lacks grant in init", "count": 2, "first_seed": 1001, "first_boot": "b2"}
    assert s["titles"][1]["title"] == "hang after start"
    assert s["incidents"] == [{"title": "redox: pcid died", "count": 3, "first_seed": 1002, "first_boot": "b3"}]
    assert list(s["stages"]) == ["kernel", "login"]
    assert s["stages"]["kernel"]["max"] == 3.0 and s["stages"]["kernel"]["p50"] == pytest.approx(1.15)
    assert s["warning"] is None


def test_strict_counts_incidents_as_failures() -> None:
    records = [rec(0, "pass"), rec(1, "pass", incidents=1)]
    assert to_json(summarize(records))["passed"] == 2
    strict = to_json(summarize(records, strict=True))
    assert strict["passed"] == 1 and strict["titles"][0]["title"] == "incidents (strict)"


def test_infra_errors_are_excluded_and_said_loudly_when_they_dominate() -> None:
    records = [rec(0, "pass"), rec(1, "infra-error", "no socket"), rec(2, "qemu-error", "bad -M")]
    s = to_json(summarize(records))
    assert s["boots"] == 1 and s["excluded"] == 2 and s["rate"] == 1.0
    assert "host or the profile is the problem" in s["warning"]


def test_excluded_warning_boundary_is_as_many_excluded_as_counted() -> None:
    """The warning fires when the excluded boots are at least as many as the counted ones, not only more."""
    equal = [rec(0, "pass"), rec(1, "crash", "x"), rec(2, "infra-error", "no socket"), rec(3, "qemu-error", "bad")]
    assert to_json(summarize(equal))["warning"] is not None
    fewer = [rec(0, "pass"), rec(1, "crash", "x"), rec(2, "pass"), rec(3, "qemu-error", "bad"), rec(4, "infra-error")]
    assert to_json(summarize(fewer))["warning"] is None
    assert to_json(summarize([rec(0, "pass")]))["warning"] is None  # nothing excluded


def test_seeds_are_deterministic_and_distinct() -> None:
    seeds = [derive_seed(42, i) for i in range(1000)]
    assert seeds == [derive_seed(42, i) for i in range(1000)]
    assert len(set(seeds)) == 1000
    assert all(0 <= s <= 0xFFFFFFFF for s in seeds)
    assert derive_seed(42, 0, "a") != derive_seed(42, 0, "b")


def test_trial_matches_the_guest_model_and_is_replayable(tmp_path: Path, fake_host: Host) -> None:
    lab = make_lab(tmp_path, fake_host)
    r = to_json(lab.trial(ArmSpec("sim", MAX_DSB), n=30, seed_base=5))
    expected = sum(not redox_sim_outcome(derive_seed(5, i), cpu="max", build="dsb-wfi")[0] for i in range(30))
    assert r["passed"] == expected and r["boots"] == 30
    assert set(r) >= JSON_KEYS
    again = to_json(lab.trial(ArmSpec("sim", MAX_DSB), n=30, seed_base=5))

    def strip(titles: list[dict[str, object]]) -> list[tuple[object, ...]]:
        return [(t["title"], t["count"], t["first_seed"]) for t in titles]

    assert (again["passed"], strip(again["titles"])) == (r["passed"], strip(r["titles"]))
    # every boot is stored with its seed
    store = lab.store
    assert store is not None
    boots = store.boots(int(r["trial"][1:]))
    assert sorted(b["seed"] for b in boots) == sorted(derive_seed(5, i) for i in range(30))
    assert r["titles"][0]["first_boot"].startswith("b")


def test_until_confident_reaches_and_refutes_early(tmp_path: Path, fake_host: Host) -> None:
    lab = make_lab(tmp_path, fake_host)
    lab.boot_fn = bernoulli_boot_fn(1.0)
    r = to_json(lab.trial(ArmSpec("sim"), n=200, seed_base=1, stopper=Stopper(sprt=Sprt(0.9))))
    seq = r["sequential"]
    assert seq["decision"] == "reached" and r["stopped_early"]
    assert seq["decided_at"] == 25  # log(0.9/0.8) per pass, threshold log(19)
    assert seq["fixed_n"] > 100 and seq["saved"] == seq["fixed_n"] - seq["boots_used"]
    lab.boot_fn = bernoulli_boot_fn(0.0)
    r = to_json(lab.trial(ArmSpec("sim"), n=200, seed_base=1, stopper=Stopper(sprt=Sprt(0.9))))
    assert r["sequential"]["decision"] == "refuted" and r["sequential"]["decided_at"] == 5
    lab.boot_fn = bernoulli_boot_fn(0.5)
    r = to_json(lab.trial(ArmSpec("sim"), n=500, seed_base=1, stopper=Stopper(width=0.3)))
    lo, hi = r["ci95"]
    assert r["sequential"]["decision"] == "narrow" and hi - lo < 0.3 and r["boots"] < 60


def test_jobs_run_concurrently(tmp_path: Path, fake_host: Host) -> None:
    """With jobs=4, four boots are in flight at once and never more: counted, not timed."""
    lab = make_lab(tmp_path, fake_host)
    inner = lab.boot_fn
    running, most = 0, 0
    four_in = asyncio.Event()

    async def counted(profile: Profile, log_path: Path) -> Verdict:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == 4:
            four_in.set()
        await asyncio.wait_for(four_in.wait(), 30)  # the first four wait for each other: they overlap for sure
        try:
            return await inner(profile, log_path)
        finally:
            running -= 1

    lab.boot_fn = counted
    r = to_json(lab.trial(ArmSpec("sim"), n=8, jobs=4, seed_base=1))
    assert (r["boots"], most) == (8, 4)


def test_cli_trial_json_and_exit_codes(sim_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["trial", "sim", "--config", str(sim_config), "--set", MAX_DSB[0], "--set", MAX_DSB[1], "--json"]
    assert main([*args, "-n", "12", "--seed-base", "3", "--note", "before the ISB fix"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= JSON_KEYS and out["trial"] == "t1" and out["boots"] == 12
    assert isinstance(out["ci95"], list) and len(out["ci95"]) == 2
    assert set(out["titles"][0]) >= {"title", "count", "first_seed"}
    assert Store(tmp_path / "store").trials()[0]["note"] == "before the ISB fix"
    # --target refuted: exit 1
    code = main([*args, "-n", "40", "--seed-base", "3", "--until-confident", "--target", "0.95"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["sequential"]["decision"] == "refuted" and out["stopped_early"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-n", "0"], "needs at least 1"),
        (["-n", "ten"], "not a whole number"),
        (["-n", "3", "--until-confident"], "needs --target RATE"),
        (["-n", "3", "--target", "0.9"], "only make sense with --until-confident"),
        (["-n", "3", "--until-confident", "--target", "1.5"], "a rate is between 0 and 1"),
        (["-n", "3", "--set", "nonsense"], "expected KEY=VALUE"),
        (["-n", "3", "--set", "cpu=host"], "lint refuses"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    sim_config: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    assert message in refused(["trial", "sim", "--config", str(sim_config), *extra], capsys)


def test_unknown_profile_is_usage_error(tmp_path: Path, fake_host: Host) -> None:
    lab = make_lab(tmp_path, fake_host)
    with pytest.raises(UsageError, match="unknown profile"):
        lab.trial(ArmSpec("nope"), n=2)


INTERRUPTED = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bootlab.host import Host, QemuBinary
    from bootlab.lab.lab import Lab, ArmSpec
    from bootlab.lab.results import to_json
    from bootlab.lab.simulate import sim_boot_fn
    from bootlab.profile.loader import load_project
    from bootlab.report.progress import PlainProgress
    from bootlab.store.db import Store
    root = Path(sys.argv[1])
    host = Host(os="linux", arch="x86_64")
    host.qemu["aarch64"] = QemuBinary("aarch64", "/usr/bin/qemu-system-aarch64", "8.2.0", ["tcg"])
    host.accelerators = {"aarch64": ["tcg"]}
    lab = Lab(load_project(root / "bootlab.toml"), host, Store(root / "store"), boot_fn=sim_boot_fn(delay=0.3))
    r = to_json(lab.trial(ArmSpec("sim"), n=1000, jobs=2, seed_base=1, progress=PlainProgress()))
    print(r["status"], r["boots"], flush=True)
    """
)


def test_ctrl_c_keeps_finished_boots_and_marks_interrupted(tmp_path: Path) -> None:
    make_project(tmp_path)
    p = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert p.stderr is not None
    lines = 0
    seen: list[str] = []
    while lines < 4:
        line = p.stderr.readline()
        if not line:  # the child died before four boots: fail with what it said, do not spin on EOF forever
            p.kill()
            pytest.fail(f"trial exited early ({p.wait()}):\n{''.join(seen)}{p.stderr.read()}")
        seen.append(line)
        if line.startswith("  boot "):
            lines += 1
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    status, boots = out.split()
    assert status == "interrupted" and int(boots) >= 4
    store = Store(tmp_path / "store")
    (trial,) = store.trials()
    assert trial["status"] == "interrupted"
    assert len(store.boots(trial["id"])) == int(boots)


def test_vcpu_budget_keeps_big_boots_alone(tmp_path: Path, fake_host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    lab = make_lab(tmp_path, fake_host)
    running = peak = 0

    async def spy(profile, log_path):  # type: ignore[no-untyped-def]
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return Verdict(outcome="pass", seed=profile.seed)

    lab.boot_fn = spy
    lab.trial(ArmSpec("sim", ["smp=4"]), n=4, seed_base=1)
    assert peak == 1  # 4 vCPUs on 4 cores: one at a time
    peak = 0
    lab.trial(ArmSpec("sim", ["smp=2"]), n=6, seed_base=1)
    assert peak == 2
    peak = 0
    lab.trial(ArmSpec("sim", ["smp=4"]), n=4, jobs=3, seed_base=1)
    assert peak == 3  # an explicit -j is obeyed


def test_profile_without_pack_is_usage_error(tmp_path: Path, fake_host: Host) -> None:
    lab = make_lab(tmp_path, fake_host)
    with pytest.raises(UsageError, match="names no pack"):
        lab.trial(ArmSpec("sim", ["pack=[]"]), n=2)


def test_boot_function_errors_are_infra_errors_not_crashes(tmp_path: Path, fake_host: Host) -> None:
    lab = make_lab(tmp_path, fake_host)

    async def broken(profile, log_path):  # type: ignore[no-untyped-def]
        raise OSError("socket vanished")

    lab.boot_fn = broken
    r = to_json(lab.trial(ArmSpec("sim"), n=3, seed_base=1))
    assert r["excluded"] == 3 and r["boots"] == 0 and r["rate"] is None
    assert r["warning"] and "bootlab: socket vanished" in r["excluded_titles"][0]["title"]


def test_undecided_claims_no_saving() -> None:
    """At the cap without a decision nothing was saved: ``saved`` is None and the text says no boots saved."""
    from bootlab.report.text import trial_lines

    stopper = Stopper(sprt=Sprt(0.9), width=0.1)
    for passes, fails in [(1, 0), (2, 0), (3, 0), (4, 0), (4, 1)]:
        assert not stopper.check(passes, fails)
    seq = stopper.report(5, 5)
    assert seq["decision"] == "undecided" and seq["saved"] is None and seq["fixed_n"] > 100
    r = {"profile": "sim", "boots": 5, "passed": 4, "rate": 0.8, "ci95": [0.38, 0.96], "sequential": seq}
    text = "\n".join(trial_lines(r))
    assert "undecided at the cap after 5 boots" in text
    assert "saved" not in text and str(seq["fixed_n"]) in text
    width_only = Stopper(width=0.1)
    assert not width_only.check(3, 2)
    seq = width_only.report(5, 5)
    assert seq["decision"] == "undecided" and seq["saved"] is None
    assert "saved" not in "\n".join(trial_lines({**r, "sequential": seq}))
    # decided: the saving is reported against the fixed-N test
    decided = Stopper(sprt=Sprt(0.9))
    assert decided.check(0, 5)
    seq = decided.report(5, 200)
    assert seq["decision"] == "refuted" and seq["saved"] == seq["fixed_n"] - 5
    assert f"{seq['saved']} saved" in "\n".join(trial_lines({**r, "sequential": seq}))


def test_target_and_width_label_a_stop_on_width() -> None:
    """With both --target and --width, a stop on width is "narrow", labelled as such and measured against the
    fixed-N plan for that width (not the SPRT's)."""
    from bootlab.lab.stats import width_fixed_n
    from bootlab.report.text import trial_lines

    stopper = Stopper(sprt=Sprt(0.9), width=0.5)
    assert [stopper.check(k, 0) for k in (1, 2, 3, 4)] == [False, False, False, True]
    seq = stopper.report(4, 100)
    seq["decided_at"] = stopper.decided_at
    assert seq["decision"] == "narrow" and seq["width"] == 0.5
    assert seq["fixed_n"] == width_fixed_n(0.5) and seq["saved"] == width_fixed_n(0.5) - 4
    r = {"profile": "sim", "boots": 4, "passed": 4, "rate": 1.0, "ci95": [0.51, 1.0], "sequential": seq}
    text = "\n".join(trial_lines(r))
    assert "interval narrower than 50% after 4 boots" in text and "undecided" not in text
    # and every decision of either method has its own label
    for method_seq in (
        {"method": "sprt", "target": 0.9, "refute_below": 0.8, "width": None, "describe": "SPRT"},
        {"method": "width", "width": 0.2},
    ):
        for decision in ("reached", "refuted", "narrow", "undecided"):
            if method_seq["method"] == "width" and decision in ("reached", "refuted"):
                continue
            s = {**method_seq, "decision": decision, "boots_used": 9, "cap": 9, "fixed_n": 20, "saved": None}
            (line,) = [x for x in trial_lines({**r, "sequential": s}) if x.startswith("until-confident:")]
            assert decision.replace("narrow", "narrower").replace("undecided", "undecided at the cap") in line


@pytest.mark.parametrize("interrupt", [False, True])
def test_runs_without_a_store_leave_no_temp_dirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt: bool
) -> None:
    """The Python API without a store: the boots' raw logs live in a temp dir that goes when the run ends (also
    when it is interrupted), and no record points into it afterwards."""
    import tempfile
    from typing import Any

    from bootlab.lab.runner import Arm, RunResult, run_arms

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seen: list[Path] = []
    tasks: list[asyncio.Task[Any]] = []

    async def boot(profile: Any, log_path: Path) -> Verdict:
        log_path.write_text("console")
        log_path.with_suffix(".times").write_text("0")
        seen.append(log_path)
        if interrupt and len(seen) == 3:
            tasks[0].cancel()  # as the first Ctrl-C does
        await asyncio.sleep(0.01)
        return Verdict(outcome="pass", log=str(log_path))

    def make_profile(idx: int, seed: int) -> Any:
        return object()

    arm = Arm(label="sim", make_profile=make_profile, n=6, cap=6, seed_base=1)

    async def go() -> RunResult:
        tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        return await run_arms([arm], boot, jobs=1)

    result = asyncio.run(go())
    assert result.interrupted is interrupt
    assert len(seen) == (3 if interrupt else 6) and all(p.parent.parent == scratch for p in seen)
    assert list(scratch.iterdir()) == []
    assert arm.records and all(r.verdict.log is None for r in arm.records)


def test_interrupted_undecided_is_not_called_the_cap() -> None:
    """Ctrl-C before a decision: the text says the trial was interrupted, not that the cap was reached."""
    from bootlab.report.text import trial_lines

    stopper = Stopper(sprt=Sprt(0.9))
    assert not stopper.check(3, 0)
    seq = stopper.report(3, 200)
    r = {"profile": "sim", "boots": 3, "passed": 3, "rate": 1.0, "ci95": [0.44, 1.0], "sequential": seq}
    (line,) = [x for x in trial_lines({**r, "status": "interrupted"}) if x.startswith("until-confident:")]
    assert line == "until-confident: undecided (interrupted) after 3 boots"
    (line,) = [x for x in trial_lines({**r, "status": "done"}) if x.startswith("until-confident:")]
    assert line == "until-confident: undecided at the cap after 3 boots"


def test_a_refused_login_is_a_failure_of_its_own_in_a_trial() -> None:
    """login-failed boots count against the rate and group under their title, apart from crashes."""
    records = [rec(0, "pass"), rec(1, "login-failed", "login failed"), rec(2, "crash", "linux: kernel panic: x")]
    s = to_json(summarize(records))
    assert (s["boots"], s["passed"], s["excluded"]) == (3, 1, 0)
    assert s["outcomes"] == {"pass": 1, "login-failed": 1, "crash": 1}
    assert {t["title"] for t in s["titles"]} == {"login failed", "linux: kernel panic: x"}


def test_tally_judges_each_boot_once_for_every_count() -> None:
    """judge: infra errors do not count, strict makes a pass with incidents a failure; Tally adds them up into
    the rate and interval every summary, progress line, history row and export reads."""
    from bootlab.lab.stats import wilson
    from bootlab.lab.summary import Tally, judge, mark

    clean, noisy = rec(0, "pass").verdict, rec(1, "pass", incidents=1).verdict
    crash, infra = rec(2, "crash", "boom").verdict, rec(3, "qemu-error", "bad -M").verdict
    assert [judge(v) for v in (clean, noisy, crash, infra)] == [True, True, False, None]
    assert [judge(v, strict=True) for v in (clean, noisy, crash, infra)] == [True, False, False, None]
    tally = Tally.of([clean, noisy, crash, infra, infra], strict=True)
    assert (tally.passed, tally.failed, tally.excluded, tally.boots) == (1, 2, 2, 3)
    assert tally.rate == 1 / 3 and tally.ci95() == wilson(1, 3)
    assert tally.to_json() == {"passed": 1, "boots": 3, "rate": 1 / 3, "ci95": list(wilson(1, 3))}
    assert Tally().rate is None and Tally().ci95() == (0.0, 1.0)
    assert mark(tally.to_json()) == "flaky" and mark(Tally(2).to_json()) == "pass"
    assert mark(Tally(0, 2).to_json()) == "fail" and mark(Tally().to_json()) == "none"
    s = summarize([rec(i, o) for i, o in enumerate(["pass", "crash", "qemu-error"])])
    assert (s.passed, s.boots, s.excluded, s.rate, s.ci95) == (1, 2, 1, 0.5, wilson(1, 2))


def test_a_run_without_seed_base_draws_one_and_records_it(tmp_path: Path, fake_host: Host) -> None:
    """seed_base_or_random is every run's seed base (trial, matrix, comparison, bisect): the given one, else drawn."""
    from bootlab.lab.summary import seed_base_or_random

    assert seed_base_or_random(0) == 0 and seed_base_or_random(7) == 7
    drawn = {seed_base_or_random(None) for _ in range(4)}
    assert all(0 <= s < 2**32 for s in drawn) and len(drawn) > 1
    result = make_lab(tmp_path, fake_host).trial(ArmSpec("sim"), n=1)
    assert isinstance(result.seed_base, int) and 0 <= result.seed_base < 2**32
