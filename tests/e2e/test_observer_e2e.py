"""The observer on real QEMU with the test guests (guests/build.sh): every failure mode gives its verdict.

Each test boots a real guest. The guests are built by ``bash guests/build.sh`` (writes guests/bootlab.toml);
without them these tests skip, saying how to build them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bootlab.lab.boot import BootOptions, boot
from bootlab.verdict import Verdict
from prereq import need_guests

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "bootlab.toml"

pytestmark = pytest.mark.e2e
need_guests()


def run(profile: str, *sets: str, tmp: Path, **opts: object) -> Verdict:
    from bootlab.profile.loader import load_project, resolve_profile

    prof = resolve_profile(profile, project=load_project(GUESTS), sets=list(sets))
    return boot(prof, options=BootOptions(log_path=tmp / f"{profile}.log", **opts))  # type: ignore[arg-type]


def stage_t(v: Verdict, name: str) -> float:
    t = next(s.t for s in v.stages if s.name == name)
    assert t is not None
    return t


# ---------------------------------------------------------------- linux-arm64 modes


def test_linux_login_passes_with_stage_times(tmp_path: Path) -> None:
    v = run("linux-arm64", tmp=tmp_path)
    assert v.outcome == "pass", v.title
    assert [s.name for s in v.stages] == ["kernel", "userspace", "login"]
    assert 0 < stage_t(v, "kernel") < stage_t(v, "userspace") < stage_t(v, "login")
    assert v.accel == "tcg" and v.argv[0].startswith("qemu-system-aarch64")
    log = Path(v.log or "")
    assert log.read_bytes().startswith(b"[    0.000000] Booting Linux")  # from the first byte
    # the side index maps every read to its arrival time, so any line's time is known
    index = [line.split() for line in log.with_suffix(".times").read_text().splitlines()]
    assert int(index[0][0]) == 0 and sorted(float(t) for _, t in index) == [float(t) for _, t in index]


def test_linux_panic_is_a_crash_with_title_registers_and_fast_verdict(tmp_path: Path) -> None:
    v = run("linux-arm64", "vars.mode=panic", tmp=tmp_path)
    assert v.outcome == "crash"
    assert v.title == "linux: kernel panic: sysrq triggered crash"
    assert v.stage == "userspace"
    assert v.fatal_line and "Kernel panic - not syncing: sysrq triggered crash" in v.fatal_line
    assert v.registers and v.registers[0].pc and v.registers[0].sp and "PC=" in v.registers[0].raw
    assert v.fatal_t is not None and v.duration_s is not None
    assert v.duration_s - v.fatal_t < 1.0  # grace 0.3 s + registers + quit; bench/crash-latency measures it


def test_linux_init_exit(tmp_path: Path) -> None:
    v = run("linux-arm64", "vars.mode=init-exit", tmp=tmp_path)
    assert (v.outcome, v.title, v.stage) == ("crash", "linux: kernel panic: Attempted to kill init!", "userspace")


def test_linux_hang_is_named_by_its_stage(tmp_path: Path) -> None:
    v = run("linux-arm64", "vars.mode=hang", "quiet_timeout=4", tmp=tmp_path)
    assert (v.outcome, v.stage, v.title) == ("hang", "userspace", "hang after userspace")
    assert v.registers  # registers are taken on hangs too
    assert v.duration_s is not None and v.duration_s < 15


def test_linux_flood_is_a_hang_without_progress_and_memory_stays_flat(tmp_path: Path) -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    v = run("linux-arm64", "vars.mode=flood", "quiet_timeout=4", tmp=tmp_path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert (v.outcome, v.stage) == ("hang", "userspace")
    assert Path(v.log or "").stat().st_size > 200_000  # it really flooded
    assert grown_kib < 50_000


def test_linux_slow_still_passes(tmp_path: Path) -> None:
    v = run("linux-arm64", "vars.mode=slow", tmp=tmp_path)
    assert v.outcome == "pass"
    assert stage_t(v, "login") - stage_t(v, "userspace") > 10  # three 4 s pauses


def test_linux_timeout(tmp_path: Path) -> None:
    v = run("linux-arm64", "vars.mode=hang", "timeout=3", tmp=tmp_path)
    assert v.outcome == "timeout"


def test_uefi_countdown_interaction_makes_login_faster(tmp_path: Path) -> None:
    fast = run("linux-arm64-uefi", tmp=tmp_path)
    slow = run("linux-arm64-uefi", tmp=tmp_path, interact=False)
    assert fast.outcome == "pass" and slow.outcome == "pass"
    # the 5 s startup.nsh countdown is skipped: the kernel starts seconds earlier (measured from the firmware
    # banner so that a busy host slowing both boots does not hide it)
    gain = (stage_t(slow, "kernel") - stage_t(slow, "firmware")) - (stage_t(fast, "kernel") - stage_t(fast, "firmware"))
    assert gain > 2.5


def test_qemu_refusing_its_arguments_is_qemu_error(tmp_path: Path) -> None:
    v = run("linux-arm64", "machine=no-such-machine", tmp=tmp_path)
    assert v.outcome == "qemu-error"
    assert v.title == "qemu: unsupported machine type"
    assert v.exit_code() == 3


# ---------------------------------------------------------------- redox-sim faults

REDOX = [
    ("", "pass", None, "login"),
    ("lacks-grant", "crash", r"redox: Lacks grant in (\[bootstrap\]|init)", "userspace"),
    ("kernel-panic", "crash", r"redox: kernel panic at src/context/memory\.rs:LINE", "userspace"),
    ("el1-exception", "crash", r"redox: kernel exception at EL1", "userspace"),
    ("init-died", "crash", r"redox: Lacks grant in init", "disk"),
    ("pcid-panic", "pass", None, "login"),
    ("hang", "hang", r"hang after disk", "disk"),
]


@pytest.mark.parametrize(("fault", "outcome", "title", "stage"), REDOX, ids=[r[0] or "none" for r in REDOX])
def test_redox_sim_faults(fault: str, outcome: str, title: str | None, stage: str, tmp_path: Path) -> None:
    import re

    v = run("redox-sim", f"vars.fault={fault}", "quiet_timeout=12", "seed=7", tmp=tmp_path)
    assert v.outcome == outcome, (v.title, v.fatal_line)
    assert v.stage == stage
    if title is None:
        assert v.title is None
    else:
        assert v.title is not None and re.fullmatch(title, v.title)
    if fault == "pcid-panic":
        assert [i.kind for i in v.incidents] == ["rust-panic", "exit-failure"]


def test_redox_sim_reaches_login_only_with_the_interactions(tmp_path: Path) -> None:
    answered = run("redox-sim", "quiet_timeout=12", tmp=tmp_path)
    assert answered.outcome == "pass"
    unanswered = run("redox-sim", "quiet_timeout=12", tmp=tmp_path, interact=False)
    assert (unanswered.outcome, unanswered.stage) == ("hang", "menu")


def test_redox_sim_logs_in_when_asked_for_a_shell(tmp_path: Path) -> None:
    v = run("redox-sim", "quiet_timeout=10", tmp=tmp_path, wait_for_shell=True)
    assert v.outcome == "pass"
    assert b"Welcome to Redox OS!" in Path(v.log or "").read_bytes()


# ---------------------------------------------------------------- the CLI


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootlab", "boot", *args, "--config", str(GUESTS), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_boot_exit_codes_and_json(tmp_path: Path) -> None:
    ok = cli("linux-arm64", "--log", str(tmp_path / "a.log"))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["outcome"] == "pass"
    crash = cli("linux-arm64", "--set", "vars.mode=panic", "--log", str(tmp_path / "b.log"))
    assert crash.returncode == 1
    assert json.loads(crash.stdout)["title"] == "linux: kernel panic: sysrq triggered crash"
    bad = cli("linux-arm64", "--set", "machine=no-such-machine", "--force", "--log", str(tmp_path / "c.log"))
    assert bad.returncode == 3
    usage = cli("no-such-profile")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1
