"""`bootlab bisect` and `trial --bisect-exit` over real git repositories and real builds, with simulated boots
that read the image they boot (so each commit's build decides its boots, as redox-sim does; no QEMU here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from bisect_support import REGRESSION, ImageProject
from test_trial_support import refused

from bootlab.cli.main import main
from bootlab.lab.bisect import symptom
from bootlab.lab.simulate import sim_verdict
from bootlab.store.db import Store
from bootlab.verdict import Verdict
from gitrepo import SIM_BUILD, commits, git, snapshot
from prereq import need_module


@pytest.fixture
def env(image_project: ImageProject) -> tuple[Path, Path, list[str]]:
    config, repo = image_project()
    return config, repo, commits(repo)


def bisect(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["bisect", "--config", str(config), "-q", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_it_names_the_regression_and_leaves_the_repository_alone(
    env: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, repo, line = env
    (repo / "kernel.conf").write_text("my uncommitted work\n")  # not refused: bootlab never touches the tree
    before = snapshot(repo)
    code, r = bisect(capsys, config, "sim", "--good", "HEAD~11", "--bad", "main", "-j", "2", "--seed-base", "7")
    assert code == 0
    assert r["decision"] == "found" and r["culprit"]["commit"] == line[6]
    assert r["culprit"]["subject"] == "commit 7: icache-fix" and r["culprit"]["author"].startswith("Ada Tester")
    assert r["posterior"] >= 0.95 and r["boots"] <= 40
    assert r["symptom_rate_old"] < 0.15 and r["symptom_rate_new"] > 0.4
    assert snapshot(repo) == before
    tested = {c["commit"]: c for c in r["commits"]}
    assert all(c["symptom"] == 0 for k, c in tested.items() if line.index(k) < 6)  # isb-barriers never crashes
    assert sum(c["boots"] for c in r["commits"]) == r["boots"]
    # the same seed base replays the same search, boot for boot
    code, again = bisect(capsys, config, "sim", "--good", "HEAD~11", "--bad", "main", "-j", "2", "--seed-base", "7")
    assert [(c["commit"], c["boots"], c["symptom"]) for c in again["commits"]] == [
        (c["commit"], c["boots"], c["symptom"]) for c in r["commits"]
    ]
    # stored: show, history, the trials of the tested commits
    assert main(["show", "s1", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert f"first bad commit: {line[6]}" in text and "commit 7: icache-fix" in text and "commits tested" in text
    assert main(["history", "--config", str(config)]) == 0
    hist = capsys.readouterr().out
    assert "bisect HEAD~11..main: first bad " + line[6][:12] in hist and "(s1)" in hist


def test_fixed_finds_the_commit_that_made_it_pass(
    image_project: ImageProject, capsys: pytest.CaptureFixture[str]
) -> None:
    config, repo = image_project(["icache-fix"] * 4 + ["isb-barriers"] * 5)
    line = commits(repo)
    code, r = bisect(capsys, config, "sim", "--bad", "HEAD~8", "--good", "HEAD", "--fixed", "--seed-base", "3")
    assert code == 0 and r["direction"] == "fix" and r["first"] == "first good commit"
    assert r["culprit"]["commit"] == line[4]


def test_title_ignores_unrelated_failures(
    image_project: ImageProject, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Old commits crash often with another title (an unrelated flake); only the regression's title counts."""
    config, repo = image_project(["dsb-wfi"] * 5 + ["icache-fix"] * 5)
    import bootlab.lab.runner
    from gitrepo import image_outcome

    def outcome_with_titles(profile):  # type: ignore[no-untyped-def]
        fatal, incident = image_outcome(profile)
        verdict = sim_verdict(profile.seed, fatal, incident)
        build = Path(profile.initrd).read_text().strip()
        if fatal and build == "dsb-wfi":
            return verdict.model_copy(update={"title": "redox: unrelated flake in pcid"})
        return verdict

    async def boot(profile, log_path):  # type: ignore[no-untyped-def]
        return outcome_with_titles(profile)

    monkeypatch.setattr(bootlab.lab.runner, "real_boot_fn", lambda host, project_dir=None: boot)
    code, r = bisect(
        capsys, config, "sim", "--good", "HEAD~9", "--bad", "HEAD", "--title", "EXCEPTION", "--seed-base", "2"
    )
    assert code == 0 and r["culprit"]["commit"] == commits(repo)[5]
    ignored = sum(c["ignored"] for c in r["commits"])
    assert ignored > 0  # the flakes happened, and were not taken as the symptom


def test_a_commit_that_does_not_build_is_skipped_and_reported(
    image_project: ImageProject, capsys: pytest.CaptureFixture[str]
) -> None:
    script = 'set -e\ngrep -q broken kernel.conf && { echo "error: broken"; exit 1; }\n' + SIM_BUILD
    builds = ["isb-barriers"] * 4 + ["broken"] + ["icache-fix"] * 4
    config, repo = image_project(builds, script=script)
    line = commits(repo)
    code, r = bisect(
        capsys, config, "sim", "--good", "HEAD~8", "--bad", "HEAD", "--seed-base", "4", "--max-boots", "80"
    )
    # the change is at the broken commit or the one after it; only booting the broken one could tell
    assert code == 1 and r["decision"] == "exhausted"
    assert r["best"]["commit"] in (line[4], line[5])
    assert {x["commit"] for x in r["runners_up"][:2]} | {r["best"]["commit"]} >= {line[4], line[5]}
    skipped = [c for c in r["commits"] if c["skipped"]]
    assert [c["commit"] for c in skipped] == [line[4]] and "the build failed (exit 1)" in skipped[0]["skipped"]
    assert main(["show", r["bisect"], "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "no commit reached 0.95" in text and f"{line[4][:12]}  skipped: build-error" in text


def test_a_commit_without_the_build_command_is_skipped_not_an_abort(
    image_project: ImageProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """The build command (argv ./build.sh) arrives with commit 4, as does the regression: commits 1-3 cannot be
    built, which skips them as any failed build would (in the user's own tree it stays bad input: test_source),
    and the bisect runs to its end instead of stopping at the first of them."""
    builds = ["isb-barriers"] * 3 + ["icache-fix"] * 5
    config, repo = image_project(builds, script="#!/bin/sh\n" + SIM_BUILD, script_from=4)
    config.write_text(config.read_text().replace('["sh", "build.sh"]', '["./build.sh"]'))
    line = commits(repo)
    code, r = bisect(
        capsys, config, "sim", "--good", "HEAD~7", "--bad", "HEAD", "--seed-base", "3", "--max-boots", "40"
    )
    assert code == 1 and r["decision"] == "budget" and r["boots"] == 40  # 2-4 could each be the culprit
    assert r["best"]["commit"] in line[1:4]
    skipped = [c for c in r["commits"] if c["skipped"]]
    assert [c["commit"] for c in skipped] == line[:3]
    assert all("build command './build.sh' not found at this revision" in c["skipped"] for c in skipped)


def test_a_build_program_that_is_not_installed_is_bad_input_not_a_skip_at_every_commit(
    image_project: ImageProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """A program looked up on PATH is missing at every commit alike: one line and exit 2, not a bisect that skips
    every commit and ends exhausted, and not `git bisect run` told to skip each one."""
    config, _ = image_project(["a", "b", "c", "d"])
    config.write_text(config.read_text().replace('["sh", "build.sh"]', '["no-such-build-tool-xyz"]'))
    code = main(["bisect", "sim", "--good", "HEAD~3", "--bad", "HEAD", "-q", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2 and "'no-such-build-tool-xyz' not found" in err and "install it" in err
    assert main(["trial", "sim", "-n", "1", "--rev", "HEAD", "--bisect-exit", "-q", "--config", str(config)]) == 128


def test_git_bisect_run_skips_a_commit_that_has_no_build_script_yet(
    image_project: ImageProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """`git bisect run bootlab trial P --build --bisect-exit` builds in the user's tree at the commit git put there:
    a ./build.sh that commit does not have is that commit's (125: skip), not an abort of the whole run (128)."""
    config, repo = image_project(["a", "b"], script="#!/bin/sh\n" + SIM_BUILD, script_from=2)
    config.write_text(config.read_text().replace('["sh", "build.sh"]', '["./build.sh"]'))
    git(repo, "checkout", "-q", "HEAD~1")  # what git bisect does: the user's tree at an older commit
    base = ["trial", "sim", "-n", "1", "--build", "-q", "--config", str(config)]
    assert main([*base, "--bisect-exit"]) == 125
    assert "--bisect-exit 125 (skip: " in capsys.readouterr().err
    assert main(base) == 2  # without --bisect-exit, the user's own tree: fix the command
    assert "build command './build.sh' not found" in capsys.readouterr().err


def test_interrupted_bisect_resumes_without_repeating_a_boot(
    env: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the 5th boot: the bisect is kept as interrupted (exit 130), the repository is as it was, and
    --resume finishes with new boots only (every (commit, boot index) and seed appears once)."""
    import bootlab.lab.runner
    from bootlab.lab.simulate import sim_boot_fn
    from gitrepo import image_outcome

    config, repo, line = env
    before = snapshot(repo)
    calls = {"n": 0}
    inner = sim_boot_fn(image_outcome)

    async def interrupting(profile, log_path):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: asyncio cancels the running boots
        return await inner(profile, log_path)

    monkeypatch.setattr(bootlab.lab.runner, "real_boot_fn", lambda host, project_dir=None: interrupting)
    code, r = bisect(capsys, config, "sim", "--good", "HEAD~11", "--bad", "main", "-j", "2", "--seed-base", "7")
    assert code == 130 and r["status"] == "interrupted"
    assert snapshot(repo) == before
    first_boots = r["boots"]
    assert 3 <= first_boots < 10
    assert main(["history", "--config", str(config)]) == 0
    assert "[interrupted]" in capsys.readouterr().out
    # make it look SIGKILLed instead (state "running", owner gone): history says so, and it resumes all the same
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    with Store(Path(os.environ["BOOTLAB_STORE"])) as store, store.tx() as db:
        db.execute("UPDATE bisects SET status = 'running', params = json_set(params, '$.pid', ?)", (dead.pid,))
    assert main(["history", "--config", str(config)]) == 0
    assert "[killed]" in capsys.readouterr().out
    monkeypatch.setattr(bootlab.lab.runner, "real_boot_fn", lambda host, project_dir=None: inner)
    code, done = bisect(capsys, config, "--resume", r["bisect"])
    assert code == 0 and done["bisect"] == r["bisect"] and done["culprit"]["commit"] == line[6]
    assert done["posterior"] >= 0.95
    assert snapshot(repo) == before
    with Store(Path(os.environ["BOOTLAB_STORE"])) as store:
        rows = list(store.db.execute("SELECT trial_id, idx, seed FROM boots"))
    assert len(rows) == done["boots"] > first_boots
    assert len({(r["trial_id"], r["idx"]) for r in rows}) == len(rows)
    assert len({r["seed"] for r in rows}) == len(rows)
    assert main(["bisect", "--resume", r["bisect"], "--config", str(config)]) == 2
    assert "has finished; `bootlab show s1` shows its answer" in capsys.readouterr().err


def test_resume_carries_on_in_the_store_that_holds_the_bisect(
    env: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lab of a resumed bisect writes where the bisect was found, not where its recorded project's own
    [store] would point (a store created empty there would not know s1, or would know another s1)."""
    import bootlab.cli.trial
    from bootlab.errors import UsageError

    config, _, _ = env
    assert bisect(capsys, config, "sim", "--good", "HEAD~11", "--bad", "main", "--max-boots", "2")[0] == 1
    opened: list[Path | None] = []

    def make_lab(args, project=None, revision=None, store_root=None):  # type: ignore[no-untyped-def]
        opened.append(store_root)
        raise UsageError("stopped here by the test")

    monkeypatch.setattr(bootlab.cli.trial, "make_lab", make_lab)
    assert main(["bisect", "--resume", "s1", "--config", str(config)]) == 2
    assert opened == [Path(os.environ["BOOTLAB_STORE"])]


def test_resume_takes_a_new_budget_and_batch_size(
    env: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """-j and --max-boots may change on --resume (they change nothing already learnt); the rest is refused
    (test_bad_bisect_input_is_one_line)."""
    import asyncio

    import bootlab.lab.runner
    from bootlab.lab.simulate import sim_boot_fn
    from gitrepo import image_outcome

    config, _, _ = env
    inner = sim_boot_fn(image_outcome)
    seen = {"n": 0, "now": 0, "most": 0}

    async def boot(profile, log_path):  # type: ignore[no-untyped-def]
        seen["n"] += 1
        if seen["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        seen["now"] += 1
        seen["most"] = max(seen["most"], seen["now"])
        try:
            await asyncio.sleep(0.01)
            return await inner(profile, log_path)
        finally:
            seen["now"] -= 1

    monkeypatch.setattr(bootlab.lab.runner, "real_boot_fn", lambda host, project_dir=None: boot)
    code, r = bisect(capsys, config, "sim", "--good", "HEAD~11", "--bad", "main", "-j", "2", "--seed-base", "7")
    assert code == 130 and seen["most"] == 2
    budget = r["boots"] + 3
    seen.update(n=100, most=0)
    code, done = bisect(capsys, config, "--resume", r["bisect"], "-j", "1", "--max-boots", str(budget))
    assert code == 1 and done["decision"] == "budget"
    assert done["boots"] == done["max_boots"] == budget and seen["most"] == 1
    with Store(Path(os.environ["BOOTLAB_STORE"])) as store:
        params = json.loads(store.bisects()[0]["params"])
    assert (params["jobs"], params["max_boots"], params["seed_base"]) == (1, budget, 7)


def test_symptom_rules() -> None:
    crash = sim_verdict(1, True, False)
    clean = sim_verdict(1, False, False)
    with_incident = sim_verdict(1, False, True)
    infra = Verdict(outcome="infra-error", title="bootlab: no socket")
    import re

    assert symptom(crash, strict=False, title=None) is True
    assert symptom(clean, strict=False, title=None) is False
    assert symptom(with_incident, strict=False, title=None) is False
    assert symptom(with_incident, strict=True, title=None) is True
    assert symptom(infra, strict=False, title=None) is None
    assert symptom(crash, strict=False, title=re.compile("EXCEPTION")) is True
    assert symptom(crash, strict=False, title=re.compile("panic")) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sim", "--good", "nope", "--bad", "HEAD"], "--good 'nope': unknown revision"),
        (["sim", "--good", "HEAD~2", "--bad", "v9"], "--bad 'v9': unknown revision"),
        (["sim", "--good", "main", "--bad", "HEAD"], "are the same commit"),
        (["sim", "--good", "HEAD", "--bad", "HEAD~3"], "is not an ancestor of --bad HEAD~3"),
        (["sim", "--good", "HEAD~3", "--bad", "HEAD", "--fixed"], "with --fixed the bad end is the older one"),
        (["sim", "--good", "HEAD~3"], "bisect needs --bad"),
        (["--good", "HEAD~3", "--bad", "HEAD"], "bisect needs PROFILE"),
        (["sim", "--good", "HEAD~3", "--bad", "HEAD", "--title", "(unclosed"], "not a valid regular expression"),
        (["sim", "--good", "HEAD~3", "--bad", "HEAD", "--confidence", "1.5"], "give a probability in [0.5, 1)"),
        (["--resume", "s9"], "no bisect s9"),
        (["--resume", "t1"], "give a bisect id like s4"),
        (["sim", "--resume", "s1"], "carries on with the bisect's own settings"),
        (["--resume", "s1", "--confidence", "0.9", "--strict"], "may change); drop --confidence, --strict"),
        (["--resume", "s1", "--seed-base", "3", "--note", "x"], "drop --seed-base, --note"),
        (["--resume", "s1", "--seed-base", "0"], "drop --seed-base"),  # 0 is given too
        (["--resume", "s1", "--set", "memory=1G", "--fixed"], "drop --fixed, --set/--check"),
    ],
)
def test_bad_bisect_input_is_one_line(
    env: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    from bootlab.store.db import open_store

    config, repo, _ = env
    open_store().close()  # an empty store (a missing one is test_report's)
    before = snapshot(repo)
    assert message in refused(["bisect", *args, "--config", str(config)], capsys)
    assert snapshot(repo) == before


def test_bisect_on_a_cluster_it_cannot_use_stops_before_anything_is_built_or_stored(
    env: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    """--cluster: a bad address is bad input (2); an unreachable scheduler is infra (3), found before the first
    build (the lab asks its scheduler for the batch size first), so there is no bisect to resume and nothing built.
    A subprocess: the cluster client's Dask state stays out of the test process (tests/e2e: a real cluster)."""
    need_module("distributed", "needs Dask: pip install 'bootlab[cluster]' (make setup installs it)")
    config, repo, _ = env
    before = snapshot(repo)
    cmd = [
        sys.executable,
        "-m",
        "bootlab",
        "bisect",
        "sim",
        "--good",
        "HEAD~11",
        "--bad",
        "main",
        "--config",
        str(config),
    ]
    r = subprocess.run([*cmd, "--cluster", "ftp://x:1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bootlab speaks tcp:// and tls://" in r.stderr
    r = subprocess.run([*cmd, "--cluster", "tcp://127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith("bootlab: cannot reach the scheduler at tcp://127.0.0.1:9 (--cluster)")
    assert r.stderr.count("\n") == 1
    assert snapshot(repo) == before and not (tmp_path / "cache" / "builds").exists()
    with Store(tmp_path / "store") as store:
        assert store.bisects() == []


def test_good_on_a_side_branch_is_refused(
    env: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, repo, _ = env
    git(repo, "checkout", "-q", "-b", "side", "HEAD~3")
    (repo / "side.txt").write_text("s")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "side")
    git(repo, "checkout", "-q", "main")
    assert main(["bisect", "sim", "--good", "side", "--bad", "main", "--config", str(config)]) == 2
    assert "--good side is not an ancestor of --bad main" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("rev", "extra", "code", "why"),
    [
        ("HEAD~8", [], 0, "good: no failure in 3 boots"),
        ("HEAD", [], 1, "bad: "),
        ("HEAD", ["--title", "panic"], 0, "good: no failure in 3 boots"),
        ("HEAD", ["--until-confident", "--target", "0.9", "-n", "30"], 1, "bad: target 90% refuted"),
        ("HEAD~8", ["--until-confident", "--target", "0.9", "-n", "5"], 125, "skip: the SPRT is undecided"),
    ],
)
def test_trial_bisect_exit_rule(
    env: tuple[Path, Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    rev: str,
    extra: list[str],
    code: int,
    why: str,
) -> None:
    config, _, _ = env
    argv = ["trial", "sim", "--rev", rev, "-n", "3", "--seed-base", "1", "--bisect-exit", "-q", "--config", str(config)]
    assert main([*argv, *extra]) == code
    assert f"--bisect-exit {code} ({why}" in capsys.readouterr().err


def test_bisect_exit_skips_a_build_error_and_aborts_on_bad_input(
    image_project: ImageProject, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = image_project(["a", "b"], script="exit 1\n")
    base = ["trial", "sim", "-n", "1", "--bisect-exit", "-q", "--config", str(config)]
    assert main([*base, "--build"]) == 125
    assert "--bisect-exit 125 (skip: " in capsys.readouterr().err
    assert main([*base, "--rev", "no-such-rev"]) == 128  # not "bad": git bisect run stops on 128
    err = capsys.readouterr().err
    assert "unknown revision" in err and "--bisect-exit 128 (abort: bad input)" in err
    assert main([*base, "--title", "EXC", "--until-confident", "--target", "0.9"]) == 128
    err = capsys.readouterr().err
    assert "--title cannot go with --until-confident --target" in err and "--bisect-exit 128" in err


@pytest.mark.parametrize("argv", [["-n", "0"], ["-n", "3", "--no-such-option"]])
def test_bisect_exit_aborts_on_options_argparse_refuses(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's own exit code is 2, which `git bisect run` would take for "bad"."""
    assert main(["trial", "x", *argv, "--bisect-exit"]) == 128
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1] == "bootlab: --bisect-exit 128 (abort: bad input)"
    with pytest.raises(SystemExit) as exc:  # without --bisect-exit it stays argparse's 2
        main(["trial", "x", *argv])
    assert exc.value.code == 2


def test_regression_line_is_the_one_the_issue_describes() -> None:
    assert len(REGRESSION) == 12 and REGRESSION.index("icache-fix") == 6
