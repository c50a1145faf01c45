"""The reliability lab on real QEMU with the redox-sim guest (seeded, so deterministic).

redox-sim decides each boot from its seed alone (guests/rootfs/redoxsim/init); bootlab.lab.simulate ports that
decision to Python, so every test here knows before booting how each boot must end, and the seed bases below
were picked to show the pattern with few boots (the whole file budgets ~50 boots, a few minutes on 2 cores).

redox-sim's kernel runs with ``arm64.nopauth``, so plain ``-cpu max`` boots as fast as cortex-a72 under TCG.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bootlab.lab.simulate import redox_sim_outcome
from bootlab.lab.summary import derive_seed
from bootlab.store.db import Store
from prereq import need_guests, requires

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "bootlab.toml"
MAX = "cpu=max"

pytestmark = pytest.mark.e2e
need_guests()


def bootlab(store: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOOTLAB_STORE": str(store)}
    return subprocess.run(
        [sys.executable, "-m", "bootlab", *args, "--config", str(GUESTS)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def predicted_passes(base: int, n: int, salt: str = "", **vm: object) -> int:
    return sum(not redox_sim_outcome(derive_seed(base, i, salt), **vm)[0] for i in range(n))  # type: ignore[arg-type]


def test_dsb_wfi_trial_lands_near_60_percent(tmp_path: Path) -> None:
    # seed base 3: exactly 5 of the first 8 seeds survive the dsb-wfi build's 40% fatal draw
    assert predicted_passes(3, 8, cpu="max", build="dsb-wfi") == 5
    r = bootlab(
        tmp_path,
        "trial",
        "redox-sim",
        "--set",
        MAX,
        "--set",
        "vars.build=dsb-wfi",
        "-n",
        "8",
        "-j",
        "2",
        "--seed-base",
        "3",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["boots"], out["passed"], out["excluded"]) == (8, 5, 0), out["outcomes"]
    lo, hi = out["ci95"]
    assert lo < 0.6 < hi
    assert out["titles"] and all(t["title"].startswith("redox: ") for t in out["titles"])
    assert {"login", "kernel"} <= set(out["stages"])
    # each failure's first seed replays it: that seed's predicted outcome is fatal
    for t in out["titles"]:
        assert redox_sim_outcome(t["first_seed"], cpu="max", build="dsb-wfi")[0]
    store = Store(tmp_path)
    boots = store.boots(1)
    assert len(boots) == 8 and all(store.read_log(b["log_path"]) for b in boots)
    assert all(len(json.loads(b["images"])["kernel"]) == 64 for b in boots)


def test_matrix_reproduces_the_notes_pattern(tmp_path: Path) -> None:
    # isb-barriers build (the profile's default): only smp>1 and highmem=off make `-cpu max` fail.
    # seed base 5: of the first 2 seeds, one survives highmem=off's 50% draw.
    assert predicted_passes(5, 2, cpu="max", highmem="off") == 1
    r = bootlab(
        tmp_path,
        "matrix",
        "redox-sim",
        "--axis",
        "cpu=cortex-a72,max",
        "--axis",
        "smp=1,4",
        "--axis",
        "machine.highmem=on,off",
        "-n",
        "2",
        "--seed-base",
        "5",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    cells = {
        (c["axes"]["cpu"].split(",")[0], c["axes"]["smp"], c["axes"]["machine.highmem"]): c
        for c in json.loads(r.stdout)["cells"]
    }
    assert len(cells) == 8
    for (cpu, smp, highmem), cell in cells.items():
        assert cell["excluded"] == 0, cell["outcomes"]
        if cpu == "cortex-a72":
            assert cell["mark"] == "pass", (cpu, smp, highmem, cell["outcomes"])
        elif smp == "4":
            assert cell["mark"] == "fail", (cpu, smp, highmem, cell["outcomes"])
    assert cells[("max", "1", "off")]["mark"] == "flaky"
    assert cells[("max", "1", "on")]["mark"] == "pass"


def test_compare_dsb_wfi_vs_isb_barriers_is_significant(tmp_path: Path) -> None:
    # seed base 16: arm A (salt "a") gets 2 of 8 under dsb-wfi; isb-barriers never fails under max
    assert predicted_passes(16, 8, "a", cpu="max", build="dsb-wfi") == 2
    r = bootlab(
        tmp_path,
        "compare",
        "redox-sim",
        "--set",
        MAX,
        "--a",
        "vars.build=dsb-wfi",
        "--b",
        "vars.build=isb-barriers",
        "-n",
        "8",
        "-j",
        "2",
        "--seed-base",
        "16",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["a"]["passed"], out["b"]["passed"]) == (2, 8)
    assert out["significant"] and out["p_value"] < 0.01
    assert out["sentence"].startswith("vars.build=isb-barriers passes more often than vars.build=dsb-wfi (p = ")
    lo, hi = out["difference_ci95"]
    assert 0 < lo < out["difference"] < hi
    # the timing of real boots: every boot reached the bootloader, each arm's median is a real time
    first = out["timing"]["stages"][0]
    assert (first["stage"], first["n_a"], first["n_b"]) == ("bootloader", 8, 8) and 0 < first["a_p50"] < 120
    # and the report of these real boots: the six crashes of A in detail, each with its log around the fatal line
    r = bootlab(tmp_path, "report", out["comparison"], "-o", str(tmp_path / "c.html"))
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "c.html").read_text()
    assert page.count('<section class="failure"') == 6 and page.count('<svg class="plot"') == 5
    assert page.count("<mark id=") == 6 and "qemu-system-aarch64 -M virt" in page


def test_until_confident_stops_early_on_a_clear_case(tmp_path: Path) -> None:
    # the icache-fix build fails 80% of boots: "at least 90%" is refuted within a handful of boots
    r = bootlab(
        tmp_path,
        "trial",
        "redox-sim",
        "--set",
        MAX,
        "--set",
        "vars.build=icache-fix",
        "-n",
        "40",
        "-j",
        "2",
        "--seed-base",
        "3",
        "--until-confident",
        "--target",
        "0.9",
        "--json",
    )
    assert r.returncode == 1, r.stderr  # the target was refuted
    out = json.loads(r.stdout)
    seq = out["sequential"]
    assert seq["decision"] == "refuted" and out["stopped_early"]
    # two boots run at once: the one still running at the decision is stopped, or counted if it just finished
    assert seq["decided_at"] == 5 and out["boots"] in (5, 6)
    assert seq["fixed_n"] > 100 and seq["saved"] == seq["fixed_n"] - out["boots"]


def _children(pid: int) -> set[int]:
    """Direct children of ``pid`` (by parent pid from /proc, not by name)."""
    kids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.add(int(entry.name))
    return kids


@requires(Path("/proc").is_dir(), "needs /proc to find the trial's QEMU children")
def test_ctrl_c_stops_vms_keeps_boots_marks_interrupted(tmp_path: Path) -> None:
    env = {**os.environ, "BOOTLAB_STORE": str(tmp_path)}
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bootlab",
            "trial",
            "redox-sim",
            "--config",
            str(GUESTS),
            "-n",
            "50",
            "-j",
            "2",
            "--seed-base",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert p.stderr is not None
    line = p.stderr.readline()
    while line and not line.startswith("  boot "):
        line = p.stderr.readline()
    assert line, "the trial never finished a boot"
    deadline = time.monotonic() + 30
    qemus = _children(p.pid)
    while len(qemus) < 2 and time.monotonic() < deadline:  # -j 2: wait for the next two boots to be running
        time.sleep(0.05)
        qemus = _children(p.pid)
    assert qemus, "no QEMU running under the trial"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in out
    for pid in qemus:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    store = Store(tmp_path)
    (trial,) = store.trials()
    assert trial["status"] == "interrupted"
    assert 1 <= len(store.boots(trial["id"])) < 50
