"""Checks after boot without QEMU: the profile field and its forms, the CLI options and their bad input (one line,
exit 2), running checks through a ShellSession over a real shell in a pty (with the boot loop watching, so a
crash during a check ends them), the trial's per-check numbers, and how show, export and reports list them.

Real boots with checks are in tests/e2e/test_checks_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pty_shell import PtyShell

from bootlab.cli.common import check_option, check_script_option
from bootlab.console.clock import BootClock
from bootlab.console.hub import ConsoleHub
from bootlab.console.loop import BootLoop
from bootlab.console.observer import Observer
from bootlab.console.session import ShellSession, own_lines
from bootlab.console.shell import ExecOutcome
from bootlab.errors import UsageError
from bootlab.lab.checks import ChecksRun, capped, judge, run_checks
from bootlab.lab.summary import BootRecord, summarize
from bootlab.packs.loader import load_packs
from bootlab.profile.loader import load_project, resolve_profile
from bootlab.profile.model import Check, Profile
from bootlab.verdict import CHECK_OUTPUT_CAP, CheckResult, Verdict

LINUX = '[profiles.g]\narch = "aarch64"\nmachine = "virt"\nkernel = "/k"\npack = "linux"\n'


def resolve(project: Path, toml: str, *sets: str) -> Profile:
    (project / "bootlab.toml").write_text(toml)
    return resolve_profile("g", project=load_project(project / "bootlab.toml"), sets=list(sets), seed=7)


def bootlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bootlab", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


# ------------------------------------------------------------------------------------------------ the profile


def test_checks_table_forms_in_order_with_templates(project: Path) -> None:
    p = resolve(
        project,
        LINUX
        + "[profiles.g.checks]\n"
        + 'kernel = "uname -a"\n'
        + 'argv = ["printf", "%s", "a b"]\n'
        + 'seeded = { command = "exit $(( {seed} % 2 ))", timeout = 5, expect = "ok" }\n'
        + 'script = { script = "checks/net.sh" }\n',
    )
    assert [c.name for c in p.checks] == ["kernel", "argv", "seeded", "script"]
    assert p.checks[0] == Check(name="kernel", command="uname -a")
    assert p.checks[1].text() == "printf %s 'a b'"
    assert (p.checks[2].command, p.checks[2].timeout, p.checks[2].expect) == ("exit $(( 7 % 2 ))", 5, "ok")
    assert p.checks[3].script == str(project / "checks" / "net.sh")  # relative to bootlab.toml
    assert p.check_files() == {"check.script": str(project / "checks" / "net.sh")}
    assert p.with_files({"check.script": "/cache/abc"}).checks[3].script == "/cache/abc"


def test_list_form_extends_merge_by_name_and_sets(project: Path) -> None:
    toml = (
        LINUX
        + '[[profiles.g.checks]]\nname = "a"\ncommand = "true"\n'
        + '[[profiles.g.checks]]\nname = "b"\ncommand = "false"\n'
        + '[profiles.h]\nextends = "g"\nchecks = { b = "true", c = "echo c" }\n'
    )
    (project / "bootlab.toml").write_text(toml)
    proj = load_project(project / "bootlab.toml")
    h = resolve_profile("h", project=proj)
    assert [(c.name, c.command) for c in h.checks] == [("a", "true"), ("b", "true"), ("c", "echo c")]
    tuned = resolve_profile("g", project=proj, sets=["checks.b.timeout=3", check_option("d=echo d")])
    assert [(c.name, c.timeout) for c in tuned.checks] == [("a", 60), ("b", 3), ("d", 60)]
    assert resolve_profile("g", project=proj, sets=["checks={}"]).checks == []  # drop them all


def test_set_tunes_a_check_written_in_short_form(project: Path) -> None:
    # `kernel = "uname -a"` and `argv = [...]` are a check's command: `--set checks.NAME.timeout=S` (and .expect)
    # tunes them as it tunes a table (it said "`checks.kernel` is not a table")
    p = resolve(
        project,
        LINUX + '[profiles.g.checks]\nkernel = "uname -a"\nargv = ["printf", "%s", "a b"]\n',
        "checks.kernel.timeout=5",
        "checks.argv.expect=a b",
        check_option("up=true"),
        "checks.up.timeout=7",
    )
    assert [(c.name, c.command, c.timeout, c.expect) for c in p.checks] == [
        ("kernel", "uname -a", 5, None),
        ("argv", ["printf", "%s", "a b"], 60, "a b"),
        ("up", "true", 7, None),
    ]


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ("x = { timeout = 5 }", "check x has no command; give it command ="),
        ('x = { command = "true", script = "s.sh" }', "check x has both a command and a script"),
        ('x = ""', "the check's command is empty"),
        ('x = { command = "true", timout = 5 }', "profiles.g.checks.x.timout: unknown key; check keys are: command"),
        ('x = { command = "true", timeout = 0 }', "profiles.g.checks.x.timeout"),
        ('x = { command = "true", expect = "" }', "`expect` is empty"),
        ('"a.b" = "true"', "check name 'a.b' must be 1-64 letters"),
        ("x = 5", "check x: give a command string"),
    ],
)
def test_bad_checks_in_a_profile_are_one_line(project: Path, table: str, needle: str) -> None:
    with pytest.raises(UsageError) as exc:
        resolve(project, LINUX + "[profiles.g.checks]\n" + table + "\n")
    assert needle in str(exc.value) and "\n" not in str(exc.value)


# ------------------------------------------------------------------------------------------------ the CLI


def test_check_options_become_sets_that_round_trip() -> None:
    import tomllib

    weird = "printf '%s\\n' \"$HOME\" \\ \x7f é {{seed}}"
    text = check_option(f"odd-1={weird}")
    key, _, value = text.partition("=")
    assert key == "checks.odd-1" and tomllib.loads(f"v = {value}")["v"] == {"command": weird}
    script = check_script_option("some dir/net up.sh")
    assert script.startswith("checks.net-up={script = ") and str(Path("some dir").resolve()) in script


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--check", "nocommand"], "expected NAME=COMMAND"),
        (["--check", "net="], "check net has no command after '='"),
        (["--check", "=true"], "expected NAME=COMMAND"),
        (["--check", "a.b=true"], "check name 'a.b' must be"),
        (["--check-script", "."], "check check: cannot read its script"),  # a directory: `.` is named `check`...
    ],
)
def test_bad_check_options_are_one_line_exit_2(project: Path, args: list[str], needle: str) -> None:
    (project / "k").write_bytes(b"kernel")
    (project / "bootlab.toml").write_text(LINUX.replace('"/k"', '"k"'))
    for command in (["boot", "g"], ["trial", "g", "-n", "2"]):
        result = bootlab(*command, *args, cwd=project)
        assert result.returncode == 2, result.stderr
        lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("lint ")]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        if "cannot read" in needle:
            assert "cannot read its script" in lines[0] and "Is a directory" in lines[0]
        else:
            assert needle in lines[0]


def test_a_check_script_that_does_not_exist_is_one_line(project: Path) -> None:
    (project / "k").write_bytes(b"kernel")
    (project / "bootlab.toml").write_text(LINUX.replace('"/k"', '"k"'))
    result = bootlab("boot", "g", "--check-script", "missing.sh", cwd=project)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("bootlab: profile g: check missing: cannot read its")
    assert "No such file or directory" in result.stderr


def test_a_check_too_big_for_the_console_is_one_line_exit_2(project: Path) -> None:
    """More than bootlab stages over a console (MAX_STAGED): refused before the boot, as a script or as a command
    written in the profile (a command line cannot carry a megabyte)."""
    from bootlab.console.shell import MAX_STAGED

    (project / "k").write_bytes(b"kernel")
    (project / "big.sh").write_bytes(b"#" * (MAX_STAGED + 1))
    big_command = "echo " + "x" * MAX_STAGED
    (project / "bootlab.toml").write_text(
        LINUX.replace('"/k"', '"k"') + f'\n[profiles.h]\nextends = "g"\nchecks.big = "{big_command}"\n'
    )
    for args in (["boot", "g", "--check-script", "big.sh"], ["trial", "h", "-n", "2"]):
        result = bootlab(*args, cwd=project)
        assert result.returncode == 2, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert "more than bootlab sends over a console" in last and "Traceback" not in result.stderr, result.stderr
        assert f"{MAX_STAGED + 1 if 'boot' in args else len(big_command)} bytes" in last


def test_checks_on_a_pack_without_a_shell_prompt_are_refused(project: Path) -> None:
    """edk2 alone never reaches a shell: checks there could never run, so the boot is not started."""
    (project / "k").write_bytes(b"kernel")
    (project / "bootlab.toml").write_text(LINUX.replace('"/k"', '"k"').replace('pack = "linux"', 'pack = "edk2"'))
    for command in (
        ["boot", "g"],
        ["matrix", "g", "--axis", "smp=1,2", "-n", "1"],
        ["compare", "g", "--a", "smp=1", "--b", "smp=2", "-n", "1"],
    ):
        result = bootlab(*command, "--check", "up=true", cwd=project)
        assert result.returncode == 2, result.stderr
        lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("lint ")]
        assert len(lines) == 1, result.stderr
        assert "has checks (up), but its packs (edk2) know no shell prompt" in lines[0]


def test_compare_of_stored_trials_refuses_checks(project: Path) -> None:
    result = bootlab("compare", "--trials", "t1", "t2", "--check", "x=true", cwd=project)
    assert result.returncode == 2 and "drop --set/--check" in result.stderr


# ------------------------------------------------------------------------------------------------ judging


def out(output: bytes = b"", code: int = 0, timed_out: bool = False) -> ExecOutcome:
    return ExecOutcome(output, code, 0.5, timed_out)


def test_judge_titles_name_the_check() -> None:
    c = Check(name="net", command="ip link", timeout=5, expect="eth0")
    assert judge(c, out(b"1: lo\n2: eth0\n")) == ("pass", None, None)
    assert judge(c, out(b"eth0", 3)) == ("fail", "exit 3", "check net failed (exit 3)")
    assert judge(c, out(b"1: lo\n")) == ("fail", "output lacks 'eth0'", "check net failed (output lacks 'eth0')")
    status, reason, title = judge(c, out(b"", 124, True))
    assert (status, title) == ("timeout", "check net timed out after 5s") and "Ctrl-C" in (reason or "")


def test_output_is_capped_with_the_cut_said() -> None:
    assert capped(b"short \xff") == "short \ufffd"
    big = b"H" * 5000 + b"M" * 50_000 + b"T" * 5000
    text = capped(big)
    assert text.startswith("H" * 2048) and text.endswith("T" * 5000)
    assert f"[... {len(big) - CHECK_OUTPUT_CAP} bytes cut by bootlab ...]" in text


# ------------------------------------------------------------------------------------------------ over a real shell


def test_echo_of_typed_text_is_not_read_as_a_failure() -> None:
    """busybox wraps a long typed line at 80 columns: its pieces carry no marker but are still ours."""

    class Source:
        def __init__(self) -> None:
            self.written = b""

        def now(self) -> float:
            return 0.0

        async def write(self, data: bytes) -> None:
            self.written += data

    hub = ConsoleHub(Source())  # type: ignore[arg-type]
    asyncio.run(hub.write(b"printf '%s%s\\n' __BL B1; grep 'Kernel panic - not syncing' /var/log/x\n"))
    ours = own_lines(hub)
    assert ours(b"/ # printf '%s%s\\n' __BL B1; grep 'Ker\r\r")
    assert ours(b"nel panic - not syncing' /var/log/x\r")
    assert not ours(b"[   12.5] Kernel panic - not syncing: Fatal exception\r")
    assert not ours(b"\r")


def run_session(
    checks: dict[str, object], tmp: Path, *, make_tmp: bool = True, preflight: bool = False
) -> tuple[ChecksRun, str, list[tuple[str, str]]]:
    """Run ``checks`` (a profile's checks table) through a ShellSession over a real sh in a pty, with the boot
    loop watching it with the linux pack; (the run, how the watch ended, the check events). With ``preflight``
    the scripts are read as the preflight reads them, then their files are deleted before the checks run."""
    from bootlab.lab.preflight import require_checks_sendable

    profile = Profile.model_validate(
        {"name": "p", "arch": "aarch64", "machine": "virt", "pack": ["linux"], "checks": checks}
    )
    if preflight:
        profile = require_checks_sendable(profile)
        for check in profile.checks:
            Path(check.script or "/nonexistent").unlink(missing_ok=True)
    events: list[tuple[str, str]] = []
    if make_tmp:
        tmp.mkdir(exist_ok=True)

    async def go() -> tuple[ChecksRun, str]:
        console = PtyShell(env={"TMPDIR": str(tmp)})
        hub = ConsoleHub(console)  # type: ignore[arg-type]
        hub.start()
        obs = Observer(load_packs(["linux"]), variables={})
        clock = BootClock(timeout=300, quiet_timeout=60, start=console.now(), grace=0.3, max_grace=2.0)
        loop = BootLoop(hub.tap(), obs, clock, skip_line=own_lines(hub))
        session = ShellSession(hub, loop)
        try:
            run = await asyncio.wait_for(
                run_checks(session, profile, lambda kind, text, _t: events.append((kind, text))), 120
            )
            ending = await asyncio.wait_for(session.ending(), 10) if session.watch.done() else "running"
            return run, ending
        finally:
            await session.stop()
            await hub.close()  # closes the console too

    run, ending = asyncio.run(go())
    return run, ending, events


def test_checks_run_in_order_and_the_first_failure_titles_the_boot(tmp_path: Path) -> None:
    (tmp_path / "s.sh").write_text("echo from script $0; exit 0\n")
    run, ending, events = run_session(
        {
            "ok": "echo fine",
            "three": "echo out; exit 3",
            "slow": {"command": "sleep 600", "timeout": 2},
            "after": ["echo", "still", "usable"],
            "word": {"command": "echo hello world", "expect": "planet"},
            "grep": "echo 'Kernel panic - not syncing: not really' | grep -c panic",
            "script": {"script": str(tmp_path / "s.sh")},
        },
        tmp_path / "tmp",
    )
    assert ending == "running"  # the echo of a command naming a panic is not a crash
    by = {r.name: r for r in run.results}
    assert [r.name for r in run.results] == ["ok", "three", "slow", "after", "word", "grep", "script"]
    assert (by["ok"].status, by["ok"].exit_code, by["ok"].output) == ("pass", 0, "fine\n")
    assert (by["three"].status, by["three"].exit_code, by["three"].reason) == ("fail", 3, "exit 3")
    assert (by["slow"].status, by["slow"].exit_code) == ("timeout", None)
    assert (by["after"].status, by["after"].output) == ("pass", "still usable\n")  # the shell came back
    assert (by["word"].status, by["word"].reason) == ("fail", "output lacks 'planet'")
    assert (by["grep"].status, by["grep"].output) == ("pass", "1\n")
    assert by["script"].status == "pass" and by["script"].command.startswith("sh /")
    assert run.title == "check three failed (exit 3)"
    assert all(r.t is not None and r.duration_s is not None for r in run.results)
    assert [k for k, _ in events] == ["check"] * 7
    assert re.fullmatch(r"three: FAILED, exit 3 \([0-9.]+s\)", events[1][1])  # its duration: 0.4s, 0.41s, 0.413s


def test_a_crash_during_a_check_ends_the_checks(tmp_path: Path) -> None:
    """The guest prints a kernel panic on its console (here: to the tty) while a check runs: the loop sees it,
    the running check is abandoned and marked, the rest are not run."""
    run, ending, _ = run_session(
        {
            "first": "true",
            "boom": "echo 'Kernel panic - not syncing: sysrq triggered crash' >/dev/tty; sleep 600",
            "never": "true",
        },
        tmp_path,
    )
    assert ending == "crash"
    assert [(r.name, r.status) for r in run.results] == [("first", "pass"), ("boom", "crash"), ("never", "skipped")]
    assert run.interrupted_by == "boom" and run.title is None
    assert run.results[2].reason == "the guest crashed during check boom"


def test_a_shell_that_does_not_answer_fails_the_check_and_skips_the_rest(tmp_path: Path) -> None:
    run, _, _ = run_session({"a": "true", "b": "true"}, tmp_path / "missing", make_tmp=False)  # staging fails
    assert [(r.name, r.status) for r in run.results] == [("a", "fail"), ("b", "skipped")]
    assert run.title == "check a could not run (shell error)"
    assert run.results[1].reason == "the guest's shell failed at check a"
    assert "could not write a file in its $TMPDIR" in (run.results[0].reason or "")


# a shell that is not a POSIX sh (as Redox's ion is not): it reads each line and answers it in its own way
FOREIGN_SHELL = r"""
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # the tty drops the line being typed; nothing to print
sys.stdout.write("/ # "); sys.stdout.flush()
for line in sys.stdin:
    if line.split():
        sys.stdout.write(f"foreign: no such command: {line.split()[0]}\n")
    sys.stdout.write("/ # "); sys.stdout.flush()
"""


def test_a_guest_without_a_posix_sh_is_an_infra_error_not_a_failed_check(tmp_path: Path) -> None:
    """bootlab cannot run checks in a shell that answers its framing without the marker: that boot says so as an
    infra-error (left out of rates, exit 3, as `vm exec` there is), with what the guest answered; it used to be
    `check-failed`, counted as the guest failing."""
    from vm_support import FakeMachine

    from bootlab.lab.boot import BootOptions, checked_verdict

    script = tmp_path / "foreign"
    script.write_text(f"#!{sys.executable}\n{FOREIGN_SHELL}")
    script.chmod(0o755)
    profile = Profile.model_validate(
        {"name": "p", "arch": "aarch64", "machine": "virt", "pack": ["linux"], "checks": {"a": "true", "b": "true"}}
    )

    async def go() -> Verdict:
        console = PtyShell(shell=str(script), prompt="/ # ")
        hub = ConsoleHub(console)  # type: ignore[arg-type]
        hub.start()
        obs = Observer(load_packs(["linux"]), variables={})
        clock = BootClock(timeout=300, quiet_timeout=60, start=console.now(), grace=0.3, max_grace=2.0)
        loop = BootLoop(hub.tap(), obs, clock, skip_line=own_lines(hub))
        try:
            base = Verdict(outcome="infra-error", seed=0, log=str(tmp_path / "log"))
            machine = FakeMachine()
            return await asyncio.wait_for(
                checked_verdict(machine, loop, hub, base, profile, BootOptions()),
                60,  # type: ignore[arg-type]
            )
        finally:
            await loop.stop_drain()
            await hub.close()

    v = asyncio.run(go())
    assert v.outcome == "infra-error"
    assert v.title is not None and v.title.startswith("checks need a POSIX sh: the guest answered '")
    assert "foreign: no such command: printf / / #" in v.title
    assert [(r.name, r.status) for r in v.checks] == [("a", "skipped"), ("b", "skipped")]
    assert "POSIX sh" in (v.checks[0].reason or "") and v.checks[1].reason == "the guest has no POSIX sh"


def test_a_check_script_deleted_after_the_preflight_still_runs_as_read(tmp_path: Path) -> None:
    """The preflight reads each script once and the boots send that text (they used to read the file at every
    boot: a script removed during a trial made its later boots check-failed)."""
    (tmp_path / "s.sh").write_text("echo read at the preflight\n")
    run, _, _ = run_session({"s": {"script": str(tmp_path / "s.sh")}}, tmp_path / "tmp", preflight=True)
    assert not (tmp_path / "s.sh").exists()
    assert [(r.name, r.status, r.output) for r in run.results] == [("s", "pass", "read at the preflight\n")]


def test_a_check_script_gone_where_the_boot_reads_it_is_an_infra_error_not_a_failed_check(tmp_path: Path) -> None:
    """Where no preflight read it (a held boot's supervisor, a cluster worker) and the file has gone: the host's
    doing, so the boot is an infra-error (cannot_run); the other checks still run."""
    run, _, events = run_session({"s": {"script": str(tmp_path / "gone.sh")}, "after": "true"}, tmp_path / "tmp")
    assert [(r.name, r.status) for r in run.results] == [("s", "skipped"), ("after", "pass")]
    assert run.cannot_run == "check s could not run (its script could not be read)" and run.title is None
    assert events[0] == ("check", "s: not run, its script could not be read")


def test_every_boot_of_a_trial_sends_the_scripts_its_preflight_read(tmp_path: Path) -> None:
    """Each boot of a trial is resolved again ({seed}, {boot}) and carries the text read at the preflight: the
    script deleted during the first boot is still what the later ones send."""
    from bootlab.lab.lab import ArmSpec, Lab
    from conftest import make_fake_host

    (tmp_path / "k").write_bytes(b"kernel")
    (tmp_path / "s.sh").write_text("echo hi\n")
    (tmp_path / "bootlab.toml").write_text(LINUX.replace('"/k"', '"k"') + 'checks.s = { script = "s.sh" }\n')
    sent: list[bytes] = []

    async def boot_fn(profile: Profile, log: Path) -> Verdict:
        sent.append(profile.checks[0].script_bytes())
        (tmp_path / "s.sh").unlink(missing_ok=True)  # the user removes it during the trial
        log.write_text("bootlab login: \n")
        return verdict("pass", ("s", "pass"))

    lab = Lab(load_project(tmp_path / "bootlab.toml"), make_fake_host(), None, boot_fn=boot_fn)
    result = lab.trial(ArmSpec("g", []), n=3, seed_base=1, jobs=1)
    assert result.summary.outcomes == {"pass": 3}
    assert sent == [b"echo hi\n"] * 3


# ------------------------------------------------------------------------------------------------ trials, show, export


def verdict(outcome: str, *checks: tuple[str, str]) -> Verdict:
    results = [
        CheckResult(
            name=n,
            command="c",
            status=s,
            exit_code=3 if s == "fail" else 0,
            duration_s=0.5,
            output="x\n",
            reason="exit 3" if s == "fail" else None,
            output_bytes=2,
        )
        for n, s in checks
    ]
    title = next((f"check {n} failed (exit 3)" for n, s in checks if s == "fail"), None)
    return Verdict(outcome=outcome, title=title, checks=results)  # type: ignore[arg-type]


def test_trial_counts_check_failed_boots_and_each_check() -> None:
    records = [
        BootRecord(0, 10, verdict("pass", ("up", "pass"), ("flaky", "pass"))),
        BootRecord(1, 11, verdict("check-failed", ("up", "pass"), ("flaky", "fail"))),
        BootRecord(2, 12, verdict("check-failed", ("up", "pass"), ("flaky", "fail"))),
        BootRecord(3, 13, verdict("crash", ("up", "crash"), ("flaky", "skipped"))),
        BootRecord(4, 14, Verdict(outcome="hang")),  # never ready: its checks never ran
        BootRecord(5, 15, verdict("infra-error")),
    ]
    s = summarize(records)
    assert (s.boots, s.passed, s.excluded) == (5, 1, 1)
    assert s.outcomes["check-failed"] == 2
    assert (s.titles[0].title, s.titles[0].count, s.titles[0].first_seed) == ("check flaky failed (exit 3)", 2, 11)
    stats = {c.name: c for c in s.checks}
    assert (stats["up"].ran, stats["up"].passed, stats["up"].failed) == (4, 3, 0)
    assert (stats["flaky"].ran, stats["flaky"].passed, stats["flaky"].failed, stats["flaky"].p50_s) == (3, 1, 2, 0.5)


def test_junit_has_one_testcase_per_check_under_its_boot() -> None:
    import xml.etree.ElementTree as ET

    from bootlab.cli.export import to_csv, to_junit

    v = verdict("check-failed", ("up", "pass"), ("flaky", "fail")).model_dump(mode="json")
    v["checks"].append({**v["checks"][0], "name": "late", "status": "skipped", "reason": "shell gone"})
    v["checks"][1]["output"] = "bad \x01 byte\n"
    boot = {"boot": "b7", "trial": "t1", "idx": 0, "profile": "g", "seed": 1, "outcome": "check-failed",
            "title": v["title"], "verdict": v, "sets": []}  # fmt: skip
    root = ET.fromstring(to_junit(None, [boot]))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases[1:]] == [
        ("bootlab.g.b7", "check up"),
        ("bootlab.g.b7", "check flaky"),
        ("bootlab.g.b7", "check late"),
    ]
    failure = cases[2].find("failure")
    assert failure is not None and failure.get("message") == "check flaky: exit 3"
    assert cases[2].findtext("system-out") == "bad ? byte\n"
    assert cases[3].find("skipped") is not None
    assert cases[0].find("failure").get("message") == "check flaky failed (exit 3)"  # type: ignore[union-attr]
    assert "up=pass; flaky=fail; late=skipped" in to_csv(None, [boot])
    assert cases[0].get("classname") == "bootlab.g" and all(c.get("time") for c in cases)
    # the boot's own case: a failure when the guest failed, an error when QEMU or bootlab did (Tally's judgement)
    infra = {**boot, "boot": "b8", "outcome": "infra-error", "title": "no socket"}
    infra["verdict"] = {**v, "outcome": "infra-error", "checks": [], "duration_s": 1.5}
    suite = ET.fromstring(to_junit(None, [boot, infra])).find("testsuite")
    assert suite is not None and (suite.get("failures"), suite.get("errors")) == ("2", "1")
    last = suite.findall("testcase")[-1]
    assert last.get("time") == "1.500" and last.find("error") is not None and last.find("failure") is None


def test_text_lines_say_why_and_show_the_output_tail() -> None:
    from bootlab.report.text import check_lines

    v = verdict("check-failed", ("up", "pass"), ("flaky", "fail")).model_dump(mode="json")
    v["checks"][1]["reason"] = "exit 3"
    assert check_lines(v["checks"]) == [
        "check up: pass (0.5s)",
        "check flaky: FAIL, exit 3 (0.5s): c",
        "  | x",
    ]


def test_json_of_a_boot_with_checks() -> None:
    data = json.loads(verdict("pass", ("up", "pass")).model_dump_json())
    assert set(data["checks"][0]) == {
        "name", "command", "status", "exit_code", "duration_s", "t", "expect", "reason", "output", "output_bytes",
        "output_cap",
    }  # fmt: skip


def test_reports_list_each_boots_checks(tmp_path: Path) -> None:
    """The trial page has the per-check table, each failed boot its checks with their output, a boot's page too."""
    from bootlab.lab.lab import ArmSpec, Lab
    from bootlab.report import pages, plots, render
    from bootlab.store.db import Ref, Store
    from conftest import make_fake_host

    (tmp_path / "k").write_bytes(b"kernel")
    (tmp_path / "bootlab.toml").write_text(LINUX.replace('"/k"', '"k"'))

    async def boot_fn(profile: Profile, log: Path) -> Verdict:
        log.write_text("bootlab login: \n")
        ok = profile.boot % 2 == 0
        return verdict("pass" if ok else "check-failed", ("up", "pass"), ("flaky", "pass" if ok else "fail"))

    store = Store(tmp_path / "store")
    lab = Lab(load_project(tmp_path / "bootlab.toml"), make_fake_host(), store, boot_fn=boot_fn)
    result = lab.trial(ArmSpec("g", []), n=4, seed_base=1, jobs=1)
    assert result.summary.outcomes == {"pass": 2, "check-failed": 2}
    trial_id = int((result.trial or "t0")[1:])
    page = pages.load(store, Ref("trial", trial_id))
    html = render.html(page, plots.figures(page), store=store.root)
    assert '<h2 id="checks">Checks</h2>' in html and "<td>flaky</td>" in html
    assert html.count("output of flaky: 2 bytes") == 2  # under each failed boot, its checks and their output
    assert "| flaky | 4 | 2 | 2 | 0 |" in render.markdown(page)
    failed = next(b for b in store.boots(trial_id) if b["outcome"] == "check-failed")
    boot_page = pages.load(store, Ref("boot", int(failed["id"])))
    boot_html = render.html(boot_page, plots.figures(boot_page), store=store.root)
    assert '<h2 id="checks">Checks</h2>' in boot_html and '<b class="pill check-failed">' in boot_html
    store.close()


def test_a_cluster_worker_gets_the_check_scripts(tmp_path: Path) -> None:
    """Scripts are read where the boot runs: a cluster sends them like kernels, and the worker's copy is used."""
    from bootlab.cluster.files import Hasher, boot_files

    script = tmp_path / "net.sh"
    script.write_text("ip link\n")
    profile = Profile.model_validate(
        {
            "name": "p",
            "arch": "aarch64",
            "machine": "virt",
            "pack": ["linux"],
            "checks": {"net": {"script": str(script)}},
        }
    )
    refs = boot_files(profile, Hasher())
    assert [(r.role, r.path) for r in refs] == [("check.net", str(script))]
    assert profile.with_files({"check.net": "/worker/cache/abc/net.sh"}).checks[0].script == "/worker/cache/abc/net.sh"
