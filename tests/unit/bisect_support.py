"""Shared set-up for the build, revision and bisect unit tests (no tests here): a git repository whose commits
build different images, a project whose profile boots them, and simulated boots that read the image they are
given (so a commit's build decides its boots, exactly as redox-sim would, without QEMU)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bootlab.host import Host
from bootlab.lab.simulate import sim_boot_fn
from gitrepo import SIM_BUILD, image_outcome, make_repo

#: The ``image_project`` fixture (conftest): ``image_project(builds, script=..., script_from=...)`` ->
#: (bootlab.toml, repository).
ImageProject = Callable[..., tuple[Path, Path]]

#: 12 commits: the regression (icache-fix: 80% of boots crash under -cpu max) comes with commit 7
REGRESSION = ["isb-barriers"] * 6 + ["icache-fix"] * 6

PROJECT = """
[profiles.sim]
arch = "aarch64"
machine = "virt"
accel = ["tcg"]
cpu = "max"
memory = "512M"
kernel = "vmlinuz"
initrd = "repo/out/initrd"
append = "redoxsim.seed={seed}"
pack = "redox"
build = { command = ["sh", "build.sh"], dir = "repo", outputs = ["out/initrd"] }

[profiles.nobuild]
extends = "sim"
build = { command = "true", dir = "repo", outputs = ["out/initrd"] }
"""


def make_bisect_project(
    root: Path, builds: list[str] = REGRESSION, *, script: str = SIM_BUILD, script_from: int = 1
) -> tuple[Path, Path]:
    """(bootlab.toml, repository) under ``root``; the kernel lives outside the repository."""
    repo = make_repo(root / "repo", builds, script=script, script_from=script_from)
    (root / "vmlinuz").write_bytes(b"not a kernel")
    (root / "bootlab.toml").write_text(PROJECT)
    return root / "bootlab.toml", repo


def use_image_boots(monkeypatch: pytest.MonkeyPatch, host: Host, root: Path) -> None:
    """CLI commands boot simulated guests that read their image; store, cache and logs under ``root``."""
    import bootlab.host
    import bootlab.lab.runner

    monkeypatch.setenv("BOOTLAB_STORE", str(root / "store"))
    monkeypatch.setenv("BOOTLAB_CACHE", str(root / "cache"))
    monkeypatch.setattr(bootlab.host, "probe", lambda: host)
    monkeypatch.setattr(bootlab.lab.runner, "real_boot_fn", lambda host, project_dir=None: sim_boot_fn(image_outcome))
