"""`bootlab classify`: the CLI over saved logs, exit codes and one-JSON-per-line output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootlab.cli.main import main

GOLDEN = Path(__file__).resolve().parents[1] / "packs"
PASS = GOLDEN / "redox" / "guest-redox-sim-none.log"
CRASH = GOLDEN / "redox" / "sample-github-redox-os-redox-issue-823.log"


def test_single_file_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", str(CRASH), "--pack", "redox", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "crash"
    assert data["title"] == "redox: kernel protection fault"
    assert "duration_s" not in data  # meaningless offline


def test_many_files_one_json_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", str(PASS), str(CRASH), "--pack", "redox", "--json"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(x)["file"] for x in lines] == [str(PASS), str(CRASH)]
    assert [json.loads(x)["outcome"] for x in lines] == ["pass", "crash"]


def test_pass_exits_zero_and_prints_incidents(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", str(PASS), "--pack", "redox"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pass (stage login)")
    assert "incident [process-exception] redox: UNHANDLED EXCEPTION in nulld" in out


def test_missing_log_is_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["classify", str(tmp_path / "nope.log"), "--pack", "redox"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_unknown_pack_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", str(PASS), "--pack", "nope"]) == 2
    assert "unknown pack 'nope'" in capsys.readouterr().err


def test_directory_is_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["classify", str(tmp_path), "--pack", "redox"]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_hundreds_of_logs_in_one_call(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    logs = []
    for i in range(300):
        p = tmp_path / f"{i}.log"
        p.write_bytes(PASS.read_bytes() if i % 2 else CRASH.read_bytes())
        logs.append(str(p))
    assert main(["classify", *logs, "--pack", "redox", "--json"]) == 1
    outcomes = [json.loads(x)["outcome"] for x in capsys.readouterr().out.splitlines()]
    assert outcomes.count("pass") == 150 and outcomes.count("crash") == 150


def test_a_panic_after_a_report_is_shown_as_its_death(capsys: pytest.CaptureFixture[str]) -> None:
    log = GOLDEN / "linux" / "synth-refcount-panic-on-warn-x86.log"
    assert main(["classify", str(log), "--pack", "linux"]) == 1
    out = capsys.readouterr().out
    assert "linux: WARNING: refcount bug in foo_session_get" in out
    assert "died of: linux: kernel panic: panic_on_warn set" in out
    assert main(["classify", str(log), "--pack", "linux", "--json"]) == 1
    death = json.loads(capsys.readouterr().out)["death"]
    assert death["title"] == "linux: kernel panic: panic_on_warn set"
    assert "Kernel panic - not syncing" in death["line"]


def test_a_refused_login_is_login_failed_as_the_live_boot_and_packs_check_say(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The recorded Debian boot with a wrong password: `classify` (which types nothing and is given no password)
    agrees with the live boot's verdict and with `packs check --set vars.password=...`, instead of calling the
    log a pass titled "login failed"."""
    log = GOLDEN / "linux" / "guest-debian-amd64-wrong-password.log"
    assert main(["classify", str(log), "--pack", "linux", "--json"]) == 1
    v = json.loads(capsys.readouterr().out)
    assert (v["outcome"], v["title"], v["fatal_line"]) == ("login-failed", "login failed", "Login incorrect")
    pack = Path(__file__).resolve().parents[2] / "src" / "bootlab" / "packs" / "linux.toml"
    assert main(["packs", "check", str(pack), str(log), "--set", "vars.password=wrong", "--json"]) == 1
    checked = json.loads(capsys.readouterr().out)
    assert checked["logs"][0]["outcome"] == "login-failed"


REPLAY = Path(__file__).resolve().parents[1] / "replay"


@pytest.mark.parametrize(
    ("log", "pack"),
    [("linux-arm64-checks", "linux"), ("linux-arm64-shell", "linux"), ("redox-sim-shell", "redox")],
)
def test_a_boot_that_logged_in_classifies_as_its_live_verdict(
    log: str, pack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recorded boots that logged in (one ran checks: commands typed after its shell prompt). The shell prompt only
    existed as a partial line live; read with the log's .times index it counts as it did then, and nobody has to
    tell `classify` that the boot meant to log in."""
    assert main(["classify", str(REPLAY / f"{log}.log"), "--pack", pack, "--json"]) == 0
    v = json.loads(capsys.readouterr().out)
    assert (v["outcome"], v["stage"]) == ("pass", "login")


def test_classify_reads_every_golden_as_its_live_boot_without_being_told() -> None:
    """`classify` is given no credentials; for every recorded golden it concludes what the live boot did (the
    goldens' own test reads them with the credentials they were recorded with)."""
    from test_packs_golden import LOGS, expected, packs_of

    from bootlab.console.classify import classify_file

    for log in LOGS:
        exp = expected(log)
        v = classify_file(log, packs_of(log, exp))
        assert (v.outcome, v.title) == (exp["outcome"], exp.get("title")), log


def test_a_project_pack_beside_no_project_file_is_found_as_a_boot_finds_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without bootlab.toml, classify reads ./packs like a boot and `packs` do (cli.common.project_dir): it used
    to look at the shipped packs only."""
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "mine.toml").write_text(
        'name = "mine"\nextends = "redox"\ndescription = "redox, as I run it"\nreference = "my notes"\n'
    )
    monkeypatch.chdir(tmp_path)
    assert main(["classify", str(PASS), "--pack", "mine"]) == 0
    assert capsys.readouterr().out.startswith("pass (stage login)")
