"""Shared set-up for the lab's unit tests (no tests here): a project with a redox-sim-like profile whose boots are
simulated by bootlab.lab.simulate, a fixed host, and a store in a temporary directory (never the user's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootlab.host import Host
from bootlab.lab.lab import Lab
from bootlab.lab.simulate import sim_boot_fn
from bootlab.profile.loader import load_project
from bootlab.store.db import Store

PROJECT = """
[profiles.sim]
arch = "aarch64"
machine = "virt"
accel = ["tcg"]
cpu = "cortex-a72"
smp = 1
memory = "512M"
kernel = "vmlinuz"
append = "redoxsim.seed={seed} redoxsim.build={build}"
pack = "redox"
vars = { build = "isb-barriers" }
"""


def make_project(root: Path) -> Path:
    (root / "vmlinuz").write_bytes(b"not a kernel")
    (root / "bootlab.toml").write_text(PROJECT)
    return root / "bootlab.toml"


def make_lab(root: Path, host: Host, *, delay: float = 0.0) -> Lab:
    config = make_project(root)
    return Lab(load_project(config), host, Store(root / "store"), boot_fn=sim_boot_fn(delay=delay))


def use_simulated_boots(monkeypatch: pytest.MonkeyPatch, host: Host, store: Path) -> None:
    """Make the CLI commands boot simulated guests on ``host`` into the store at ``store``."""
    import bootlab.host
    import bootlab.lab.runner

    monkeypatch.setenv("BOOTLAB_STORE", str(store))
    monkeypatch.setattr(bootlab.host, "probe", lambda: host)
    monkeypatch.setattr(bootlab.lab.runner, "real_boot_fn", lambda host, project_dir=None: sim_boot_fn())


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run a command that must be refused as bad input: exit 2 (argparse's own exits included), one line on stderr
    and no traceback. That line."""
    from bootlab.cli.main import main

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's checks of option values exit from the parser
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, (code, err)
    return err
