"""The VM supervisor without QEMU: a boot that cannot start is the VM's verdict, published at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bootlab.profile.model import Profile
from bootlab.vm import manager, registry
from bootlab.vm.supervisor import Supervisor


@pytest.fixture(autouse=True)
def vm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "vms"
    monkeypatch.setenv("BOOTLAB_VM_HOME", str(home))
    return home


def make_vm(name: str, tmp_path: Path, pack: list[str]) -> registry.VmDir:
    vm = registry.VmDir.of(name)
    registry.make_private_dir(vm.path)
    vm.write("vm.json", {"name": name, "profile": "t", "project_root": str(tmp_path), "forwards": [], "mounts": []})
    profile = Profile.model_validate(
        {"name": "t", "arch": "aarch64", "machine": "virt", "kernel": "/nonexistent", "pack": pack}
    )
    vm.write("profile.json", profile.model_dump(mode="json"))
    return vm


def test_unknown_pack_is_the_vms_infra_error(tmp_path: Path) -> None:
    vm = make_vm("badpack", tmp_path, ["nope"])
    sup = Supervisor(vm)  # constructing it must not load packs (nor die on them)
    assert asyncio.run(sup.run()) == 0
    state = vm.read("state.json")
    assert state["state"] == "stopped"
    assert state["verdict"]["outcome"] == "infra-error"
    assert "unknown pack 'nope'" in state["verdict"]["title"]
    assert "unknown pack 'nope'" in state["note"]
    assert vm.read("verdicts.json")[-1]["outcome"] == "infra-error"
    assert not vm.supervisor_file.exists()
    assert sup.run_dir is not None and not sup.run_dir.exists()


def test_unknown_pack_is_reported_without_waiting_for_the_start_timeout(tmp_path: Path) -> None:
    vm = make_vm("badpack2", tmp_path, ["nope"])
    t0 = time.monotonic()
    manager.spawn(vm)  # a real detached supervisor process
    result = manager.wait_settled(vm, timeout=10)
    assert time.monotonic() - t0 < manager.START_TIMEOUT / 2
    assert result["state"] == "stopped"
    verdict = result.get("verdict") or vm.read("state.json")["verdict"]
    assert verdict["outcome"] == "infra-error" and "unknown pack 'nope'" in verdict["title"]
    assert "Traceback" not in vm.supervisor_out.read_text()
