"""Shared fixtures: a fixed fake host (for golden argv files) and helpers to run the CLI in-process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bootlab.host import Host, QemuBinary

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite tests/syzkaller/linux-titles.toml from the current linux pack (its tests then skip); "
        "review the diff before committing",
    )


@pytest.fixture(scope="session", autouse=True)
def private_user_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never write into the user's store, logs or VM registry: point them all at a temporary tree.

    Set in os.environ (not monkeypatch) so subprocesses (`python -m bootlab ...`) inherit it. The cache dir is
    kept: it only holds the host probe's per-binary facts.
    """
    root = tmp_path_factory.mktemp("userdirs")
    saved = {k: os.environ.get(k) for k in ("BOOTLAB_STORE", "BOOTLAB_VM_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME")}
    os.environ.update(
        BOOTLAB_STORE=str(root / "store"),
        BOOTLAB_VM_HOME=str(root / "vms"),
        XDG_STATE_HOME=str(root / "state"),
        XDG_DATA_HOME=str(root / "data"),
    )
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def fake_host() -> Host:
    """A host with every binary and firmware at fixed paths, as a Linux x86_64 box with KVM would look."""
    return make_fake_host()


def make_fake_host() -> Host:
    """:func:`fake_host` for fixtures of a wider scope."""
    host = Host(os="linux", arch="x86_64")
    for arch in ("aarch64", "x86_64"):
        host.qemu[arch] = QemuBinary(arch, f"/usr/bin/qemu-system-{arch}", "7.2.22", ["kvm", "tcg"])
    host.accelerators = {"aarch64": ["tcg"], "x86_64": ["kvm", "tcg"]}
    host.unavailable = {
        "aarch64": {"hvf": "not macOS", "kvm": "guest is aarch64, host CPU is x86_64"},
        "x86_64": {"hvf": "not macOS"},
    }
    host.firmware = {
        "edk2-aarch64-code.fd": "/fw/QEMU_EFI.fd",
        "edk2-x86_64-code.fd": "/fw/OVMF_CODE.fd",
        "edk2-arm-vars.fd": "/fw/AAVMF_VARS.fd",
    }
    host.pflash = {"edk2-aarch64-code.fd": "/fw/AAVMF_CODE.fd", "edk2-arm-vars.fd": "/fw/AAVMF_VARS.fd"}
    return host


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory as the current directory; tests write bootlab.toml into it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sim_config(tmp_path: Path, fake_host: Host, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab tests' simulated project (tests/unit/test_trial_support.py) in ``tmp_path``: its bootlab.toml, with
    CLI commands booting simulated guests on the fake host into ``tmp_path/store``."""
    from test_trial_support import make_project, use_simulated_boots  # tests/unit: on sys.path once collected

    config = make_project(tmp_path)
    use_simulated_boots(monkeypatch, fake_host, tmp_path / "store")
    return config


@pytest.fixture
def image_project(tmp_path: Path, fake_host: Host, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[Path, Path]]:
    """``image_project(builds, script=..., script_from=...)`` -> (bootlab.toml, repository) in ``tmp_path``: a
    project whose profile builds the images of a git repository of ``builds`` (tests/unit/bisect_support.py), with
    CLI commands booting simulated guests that read their image on the fake host (store and cache under
    ``tmp_path``)."""
    from bisect_support import REGRESSION, make_bisect_project, use_image_boots

    from gitrepo import SIM_BUILD

    def make(builds: list[str] = REGRESSION, *, script: str = SIM_BUILD, script_from: int = 1) -> tuple[Path, Path]:
        config, repo = make_bisect_project(tmp_path, builds, script=script, script_from=script_from)
        use_image_boots(monkeypatch, fake_host, tmp_path)
        return config, repo

    return make
