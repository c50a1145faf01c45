"""Checks after boot on real QEMU: `bootlab boot`/`trial` with `--check` and `--check-script` on linux-arm64 and
redox-sim, through the CLI as a user runs them, with a private store.

Eleven boots in all (~1 minute on a quiet 2-core machine): passing checks with a 4 kB script (then `show` and the
JUnit export of that boot), failing ones (exit 3, a timeout after which the guest still answers, output without
its word), a kernel panic triggered by a check (ended, and held by --hold-on-crash), the same set on redox-sim,
and a 6-boot trial whose check fails by the boot's seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from procs import alive, wait_dead

from bootlab.lab.stats import wilson
from bootlab.lab.summary import derive_seed
from prereq import need_guests

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "bootlab.toml"

pytestmark = pytest.mark.e2e
need_guests()

FAILING = [
    "--check", "up=uname -s",
    "--check", "three=echo three; exit 3",
    "--check", "slow=sleep 600", "--set", "checks.slow.timeout=2",
    "--check", "after=echo still usable",
    "--check", "word=echo hello world", "--set", "checks.word.expect=planet",
]  # fmt: skip


def bootlab(store: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOOTLAB_STORE": str(store), "BOOTLAB_VM_HOME": str(store / "vms")}
    return subprocess.run(
        [sys.executable, "-m", "bootlab", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def boot(store: Path, profile: str, *args: str) -> tuple[int, dict[str, Any], str]:
    r = bootlab(store, "boot", profile, "--config", str(GUESTS), "--json", *args)
    assert r.stdout, r.stderr
    return r.returncode, json.loads(r.stdout), r.stderr


def statuses(verdict: dict[str, Any]) -> dict[str, tuple[str, int | None]]:
    return {c["name"]: (c["status"], c["exit_code"]) for c in verdict["checks"]}


def script_4k(path: Path) -> Path:
    """A check script longer than any command line (busybox ash edits at most ~1 KB per line)."""
    lines = ["#!/bin/sh", "# sums 0..149 one line at a time, and says where it ran", "n=0"]
    lines += [f"n=$((n + {i}))  # step {i:03d} of the sum, padded to make the script long" for i in range(150)]
    lines += ['echo "sum=$n ran=$0"', '[ "$n" -eq 11175 ] || exit 9']
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 4096
    return path


def test_linux_checks_that_pass_with_a_4k_script_then_show_and_junit(tmp_path: Path) -> None:
    script = script_4k(tmp_path / "sum-check.sh")
    code, v, err = boot(
        tmp_path,
        "linux-arm64",
        "--check", "kernel=uname -r",
        "--check", "word=cat /proc/version", "--set", "checks.word.expect=Debian",
        "--check-script", str(script),
    )  # fmt: skip
    assert (code, v["outcome"], v["title"]) == (0, "pass", None), err
    assert statuses(v) == {"kernel": ("pass", 0), "word": ("pass", 0), "sum-check": ("pass", 0)}
    by = {c["name"]: c for c in v["checks"]}
    assert by["kernel"]["output"].startswith("6.1.0-")
    assert by["sum-check"]["output"].startswith("sum=11175 ran=/tmp/bootlab.")  # sent over, run as `sh FILE`
    assert by["sum-check"]["command"] == f"sh {script}"
    assert v["stage"] == "login" and v["duration_s"] > by["sum-check"]["t"]
    assert "check sum-check: pass" in err  # the live timeline

    ref = next(line.split()[3] for line in err.splitlines() if "stored as" in line)
    shown = bootlab(tmp_path, "show", ref, "--config", str(GUESTS))
    assert "check kernel: pass" in shown.stdout and "check sum-check: pass" in shown.stdout
    junit = bootlab(tmp_path, "export", ref, "--format", "junit", "--config", str(GUESTS)).stdout
    assert junit.count("<testcase ") == 4 and f'classname="bootlab.linux-arm64.{ref}" name="check word"' in junit


def test_linux_failing_checks_make_the_boot_check_failed_and_a_timeout_leaves_it_usable(tmp_path: Path) -> None:
    code, v, err = boot(tmp_path, "linux-arm64", "--no-store", *FAILING)
    assert (code, v["outcome"], v["title"]) == (1, "check-failed", "check three failed (exit 3)"), err
    assert statuses(v) == {
        "up": ("pass", 0),
        "three": ("fail", 3),
        "slow": ("timeout", None),
        "after": ("pass", 0),  # Ctrl-C and a resync after the timeout: the guest's shell still answers
        "word": ("fail", 0),
    }
    by = {c["name"]: c for c in v["checks"]}
    assert by["three"]["output"] == "three\n" and by["after"]["output"] == "still usable\n"
    assert by["word"]["reason"] == "output lacks 'planet'"
    assert 2 <= by["slow"]["duration_s"] < 15
    assert "check three: FAILED, exit 3" in err  # the live timeline


@pytest.mark.parametrize("hold", [False, True], ids=["ended", "held"])
def test_linux_a_panic_during_a_check_is_a_crash(tmp_path: Path, hold: bool) -> None:
    """Held (``--hold-on-crash``: the boot runs in a one-shot VM supervisor) or not, the checks run and the panic
    one of them triggers is the boot's crash; held, it stays as the named VM until deleted."""
    code, v, err = boot(
        tmp_path,
        "linux-arm64",
        "--no-store",
        "--check", "first=true",
        "--check", "panic=echo c > /proc/sysrq-trigger; sleep 600",
        "--check", "never=true",
        *(("--hold-on-crash", "--name", "chk") if hold else ()),
    )  # fmt: skip
    assert (code, v["outcome"], v["title"]) == (1, "crash", "linux: kernel panic: sysrq triggered crash"), err
    assert "Kernel panic - not syncing: sysrq triggered crash" in v["fatal_line"]
    assert [(c["name"], c["status"]) for c in v["checks"]] == [
        ("first", "pass"),
        ("panic", "crash"),
        ("never", "skipped"),
    ]
    assert v["registers"]  # taken as at any crash
    panic = v["checks"][1]
    assert v["fatal_t"] >= panic["t"] and v["duration_s"] - v["fatal_t"] < 5
    if hold:
        assert v["held"]["vm"] == "chk"
        (row,) = json.loads(bootlab(tmp_path, "vm", "list", "--json").stdout)
        assert (row["state"], row["title"]) == ("held", v["title"])
        pids = [int(row["pid"]), int(row["qemu_pid"])]
        assert all(alive(p) for p in pids)
        assert bootlab(tmp_path, "vm", "delete", "chk").returncode == 0
        assert all(wait_dead(p) for p in pids)


def test_redox_sim_checks_pass_fail_time_out_and_run_a_4k_script(tmp_path: Path) -> None:
    """redox-sim logs in as root with a password at a Redox prompt; its shell reads the tty without line editing."""
    script = script_4k(tmp_path / "sum.sh")
    code, v, err = boot(tmp_path, "redox-sim", "--no-store", *FAILING, "--check-script", str(script))
    assert (code, v["outcome"], v["title"]) == (1, "check-failed", "check three failed (exit 3)"), err
    assert statuses(v) == {
        "up": ("pass", 0),
        "three": ("fail", 3),
        "slow": ("timeout", None),
        "after": ("pass", 0),
        "word": ("fail", 0),
        "sum": ("pass", 0),
    }
    assert v["checks"][-1]["output"].startswith("sum=11175 ")
    assert [s["name"] for s in v["stages"]][-1] == "login"


def test_a_trial_with_a_check_that_fails_by_the_boots_seed(tmp_path: Path) -> None:
    """`{seed}` is filled in the check's command for each boot, so which boots fail is known before booting."""
    n = 6
    base = next(b for b in range(1, 100) if sum(derive_seed(b, i) % 3 == 0 for i in range(n)) == 2)
    failing = [derive_seed(base, i) for i in range(n) if derive_seed(base, i) % 3 == 0]
    r = bootlab(
        tmp_path,
        "trial", "linux-arm64", "--config", str(GUESTS), "-n", str(n), "-j", "2", "--seed-base", str(base),
        "--check", "up=true", "--check", "flaky=test $(( {seed} % 3 )) -ne 0", "--json", "-q",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    assert (t["boots"], t["passed"], t["outcomes"]) == (n, n - 2, {"pass": n - 2, "check-failed": 2})
    assert t["rate"] == pytest.approx((n - 2) / n) and t["ci95"] == pytest.approx(list(wilson(n - 2, n)))
    title = t["titles"][0]
    assert (title["title"], title["count"], title["first_seed"]) == ("check flaky failed (exit 1)", 2, failing[0])
    checks = {c["name"]: c for c in t["checks"]}
    assert (checks["up"]["ran"], checks["up"]["passed"]) == (n, n)
    assert (checks["flaky"]["ran"], checks["flaky"]["passed"], checks["flaky"]["failed"]) == (n, n - 2, 2)
    assert any(s.startswith("checks.flaky=") for s in t["sets"])  # stored with the trial: its replay has it
