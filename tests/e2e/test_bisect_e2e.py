"""Bisect on real QEMU: a git repository of 12 commits whose build bakes a different redox-sim build into the
initramfs (commits 1-6 isb-barriers, which never crashes under -cpu max; commits 7-12 icache-fix, 80% of boots
crash), so commit 7 is the regression.

Every boot is seeded, and bootlab.lab.simulate ports redox-sim's decision to Python: the test knows how each
boot must end, and runs the same bisect on simulated boots to know what the real one must answer, boot for boot.
Budget: about 32 real boots (22 for the bisect, 8 for git bisect run, a couple cancelled by the Ctrl-C; -j 2),
about two minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bootlab.host import Host
from bootlab.lab.lab import Lab
from bootlab.lab.simulate import redox_sim_outcome, sim_boot_fn
from bootlab.lab.summary import derive_seed
from bootlab.profile.loader import load_project
from bootlab.store.db import Store
from gitrepo import REDOX_BUILD, commits, git, image_outcome, make_repo, snapshot
from prereq import need, need_guests

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "guests" / "out" / "linux-arm64"
BUILDS = ["isb-barriers"] * 6 + ["icache-fix"] * 6

pytestmark = pytest.mark.e2e
need_guests()
need((LINUX / "initrd.cpio.gz").is_file(), "test guests not built: run `bash guests/build.sh`")
need(shutil.which("cpio") is not None, "the test repository's build needs cpio (make setup installs it)")

PROJECT = """
[profiles.sim]
arch = "aarch64"
machine = "virt"
accel = ["tcg"]
cpu = "max"
smp = 1
memory = "512M"
kernel = "{kernel}"
initrd = "repo/out/initrd.cpio.gz"
append = "console=ttyAMA0 quiet loglevel=0 panic=-1 arm64.nopauth rdinit=/redoxsim/init redoxsim.seed={{seed}}"
pack = "redox"
timeout = 120
quiet_timeout = 30
vars = {{ user = "root", password = "password" }}

[profiles.sim.build]
command = ["sh", "build.sh"]
dir = "repo"
outputs = ["out/initrd.cpio.gz"]
env = {{ BASE_INITRD = "{initrd}" }}
"""


def make_project(root: Path) -> tuple[Path, Path]:
    repo = make_repo(root / "repo", BUILDS, script=REDOX_BUILD)
    config = root / "bootlab.toml"
    config.write_text(PROJECT.format(kernel=LINUX / "vmlinuz", initrd=LINUX / "initrd.cpio.gz"))
    return config, repo


def env_for(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "BOOTLAB_STORE": str(root / "store"),
        "BOOTLAB_CACHE": str(root / "cache"),
        "XDG_STATE_HOME": str(root / "state"),
    }


def bootlab(root: Path, config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bootlab", *args, "--config", str(config)],
        env=env_for(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lines_of(stream: object) -> queue.Queue[str]:
    q: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:  # type: ignore[attr-defined]
            q.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return q


def test_bisect_names_the_regression_and_resumes_after_ctrl_c(
    tmp_path: Path, fake_host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, repo = make_project(tmp_path)
    line = commits(repo)
    before = snapshot(repo)
    args = ["bisect", "sim", "--good", "HEAD~11", "--bad", "main", "-j", "2", "--seed-base", "7", "--json"]
    proc = bootlab(tmp_path, config, *args)
    err = lines_of(proc.stderr)
    seen: list[str] = []
    while True:  # Ctrl-C once the first batch is in and the second one is booting
        try:
            text = err.get(timeout=1)
        except queue.Empty:
            assert proc.poll() is None, "bisect ended before its first batch:\n" + "".join(seen)
            continue
        seen.append(text)
        if re.search(r": \d of \d showed the symptom", text):
            break
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    assert proc.wait(timeout=120) == 130, "".join(seen)
    first = json.loads(out)
    assert first["status"] == "interrupted" and first["boots"] >= 2
    assert snapshot(repo) == before  # bootlab's checkout is gone, the user's tree untouched
    assert list((tmp_path / "cache" / "checkouts").iterdir()) == []

    # what the resumed bisect must do: the same resume on a copy of the store, with simulated boots
    shutil.copytree(tmp_path / "store", tmp_path / "predicted-store")
    monkeypatch.setenv("BOOTLAB_CACHE", str(tmp_path / "predicted-cache"))
    with Store(tmp_path / "predicted-store") as store:
        lab = Lab(load_project(config), fake_host, store, boot_fn=sim_boot_fn(image_outcome))
        predicted = lab.resume_bisect(int(first["bisect"][1:]))
    assert predicted["culprit"]["commit"] == line[6]

    proc = bootlab(tmp_path, config, "bisect", "--resume", first["bisect"], "--json")
    out, errors = proc.communicate(timeout=1200)
    assert proc.returncode == 0, errors
    done = json.loads(out)
    assert done["culprit"]["commit"] == line[6] and done["culprit"]["subject"] == "commit 7: icache-fix"
    assert done["posterior"] >= 0.95
    assert [(c["commit"], c["boots"], c["symptom"], c["clean"]) for c in done["commits"]] == [
        (c["commit"], c["boots"], c["symptom"], c["clean"]) for c in predicted["commits"]
    ]
    assert done["boots"] == predicted["boots"]
    assert snapshot(repo) == before

    # every real boot booted its commit's own build: its outcome is the one redox-sim's port predicts
    with Store(tmp_path / "store") as store:
        rows = list(
            store.db.execute(
                "SELECT b.idx, b.seed, b.outcome, b.rev_commit, t.id FROM boots b JOIN trials t ON b.trial_id = t.id"
            )
        )
    assert len(rows) == done["boots"]
    assert len({(r["id"], r["idx"]) for r in rows}) == len(rows)  # no boot repeated
    for r in rows:
        build = BUILDS[line.index(r["rev_commit"])]
        fatal, _ = redox_sim_outcome(r["seed"], cpu="max", build=build)
        assert r["outcome"] == ("crash" if fatal else "pass"), (r["rev_commit"][:12], build, r["seed"])


def test_git_bisect_run_with_bisect_exit_ends_on_the_same_commit(tmp_path: Path) -> None:
    config, repo = make_project(tmp_path)
    line = commits(repo)
    # seed base 1: boots 0 and 1 of a trial both crash on icache-fix, so "bad if any boot failed" holds with -n 2
    assert all(redox_sim_outcome(derive_seed(1, i), cpu="max", build="icache-fix")[0] for i in range(2))
    git(repo, "bisect", "start", "main", "HEAD~11")
    cmd = [sys.executable, "-m", "bootlab", "trial", "sim", "--build", "--bisect-exit", "-n", "2", "-j", "2"]
    cmd += ["--seed-base", "1", "-q", "--config", str(config)]
    run = subprocess.run(
        ["git", "bisect", "run", *cmd],
        cwd=repo,
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    git(repo, "bisect", "reset")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{line[6]} is the first bad commit" in run.stdout
    assert "--bisect-exit 1 (bad: " in run.stderr and "--bisect-exit 0 (good: no failure in 2 boots)" in run.stderr
