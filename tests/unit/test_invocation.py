"""The QEMU argv builder: golden files for every preset, accelerator choice, drives, shares, forwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bootlab.errors import InfraError, UsageError
from bootlab.host import Host
from bootlab.profile.loader import preset_names, resolve_profile
from bootlab.qemu.invocation import build_invocation
from bootlab.qemu.runtime import RuntimeDir

GOLDEN = Path(__file__).parent / "golden" / "argv"
IMAGE_SETS = ["vars.image=/images/disk.img", "vars.kernel=/images/vmlinuz"]


def _golden(name: str, text: str) -> None:
    """Compare with the golden file; with BOOTLAB_UPDATE_GOLDEN=1 rewrite it instead, and skip: a comparison
    with what was just written would pass by construction (review the rewritten files with git diff)."""
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("BOOTLAB_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        pytest.skip(f"rewrote {path.name}: review the diff (nothing was compared)")
    assert path.exists(), f"no golden file {path}; run with BOOTLAB_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()


@pytest.mark.parametrize("preset", preset_names())
def test_preset_golden(preset: str, fake_host: Host, project: Path) -> None:
    prof = resolve_profile(preset, sets=IMAGE_SETS, seed=0)
    inv = build_invocation(prof, fake_host)
    _golden(preset, inv.accel_reason + "\n" + "\n".join(inv.argv) + "\n")


def test_user_fallback_is_reproduced_exactly(fake_host: Host, project: Path) -> None:
    """redox-aarch64-tcg is the user's run-backup.sh: -M virt -cpu cortex-a72 -m 2G, edk2 bios, if=none disk."""
    inv = build_invocation(resolve_profile("redox-aarch64-tcg", sets=IMAGE_SETS, seed=0), fake_host)
    assert inv.argv == [
        "qemu-system-aarch64", "-M", "virt", "-accel", "tcg", "-cpu", "cortex-a72", "-smp", "1", "-m", "2G",
        "-bios", "/fw/QEMU_EFI.fd",
        "-drive", "file=/images/disk.img,format=raw,if=none,id=disk0,snapshot=on",
        "-device", "virtio-blk-pci,drive=disk0", "-nographic",
    ]  # fmt: skip


def test_redox_aarch64_prefers_hvf_then_kvm_then_tcg(fake_host: Host, project: Path) -> None:
    prof = resolve_profile("redox-aarch64", sets=IMAGE_SETS, seed=0)
    inv = build_invocation(prof, fake_host)
    assert inv.accel == "tcg" and "cortex-a72" in inv.argv
    assert inv.accel_reason == (
        "accel: tcg (hvf unavailable: not macOS; kvm unavailable: guest is aarch64, host CPU is x86_64)"
    )
    mac = Host(os="darwin", arch="aarch64", qemu=fake_host.qemu, firmware=fake_host.firmware)
    mac.accelerators = {"aarch64": ["hvf", "tcg"]}
    inv = build_invocation(prof, mac)
    assert inv.argv[inv.argv.index("-accel") + 1] == "hvf"
    assert inv.argv[inv.argv.index("-cpu") + 1] == "host"
    assert inv.accel_reason == "accel: hvf"
    arm_linux = Host(os="linux", arch="aarch64", qemu=fake_host.qemu, firmware=fake_host.firmware)
    arm_linux.accelerators = {"aarch64": ["kvm", "tcg"]}
    arm_linux.unavailable = {"aarch64": {"hvf": "not macOS"}}
    inv = build_invocation(prof, arm_linux)
    assert (inv.accel, inv.accel_reason) == ("kvm", "accel: kvm (hvf unavailable: not macOS)")


def test_no_usable_accel_is_explained(fake_host: Host, project: Path) -> None:
    prof = resolve_profile("redox-aarch64", sets=[*IMAGE_SETS, "accel=hvf"], seed=0)
    with pytest.raises(UsageError, match=r"no usable accelerator.*hvf unavailable: not macOS.*--set accel=tcg"):
        build_invocation(prof, fake_host)


def test_cpu_table_without_entry_for_chosen_accel(fake_host: Host, project: Path) -> None:
    prof = resolve_profile("redox-aarch64", sets=[*IMAGE_SETS, "cpu={hvf='host'}"], seed=0)
    with pytest.raises(UsageError, match="cpu has no entry for accel tcg"):
        build_invocation(prof, fake_host)


def test_socket_console_and_devices(fake_host: Host, project: Path, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (project / "bootlab.toml").write_text(
        f"""
[profiles.p]
extends = "linux-aarch64"
kernel = "/k"
drives = [{{ file = "/d,1.img", interface = "nvme" }}, {{ file = "/p.img", persistent = true }}]
shares = {{ "{share}" = "hostshare" }}
forwards = ["2222:22", "8080:80"]
firmware = {{ code = "edk2-aarch64-code.fd", vars = "edk2-arm-vars.fd" }}
"""
    )
    with RuntimeDir() as rt:
        inv = build_invocation(resolve_profile("p", seed=0), fake_host, rt)
        argv = inv.argv
        assert f"socket,id=serial0,path={rt.serial},server=on,wait=on" in argv
        assert argv.index("-qmp") < argv.index("-chardev"), "QMP must exist before QEMU blocks on the serial socket"
        assert oct(rt.path.stat().st_mode & 0o777) == "0o700"
    assert "-nographic" not in argv
    assert "file=/d,,1.img,format=raw,if=none,id=disk0,snapshot=on" in argv
    assert "nvme,drive=disk0,serial=disk0" in argv
    assert "file=/p.img,format=raw,if=none,id=disk1" in argv  # persistent: no snapshot
    assert f"local,id=fsdev0,path={share},security_model=none" in argv
    assert "virtio-9p-pci,fsdev=fsdev0,mount_tag=hostshare" in argv
    assert "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:8080-:80" in argv
    assert "if=pflash,format=raw,unit=0,readonly=on,file=/fw/AAVMF_CODE.fd" in argv
    assert "if=pflash,format=raw,unit=1,snapshot=on,file=/fw/AAVMF_VARS.fd" in argv
    assert [p.id for p in inv.problems] == ["kernel-missing", "drive-missing", "drive-missing"]


def test_missing_firmware_is_a_problem_with_install_hint(fake_host: Host, project: Path) -> None:
    fake_host.firmware.clear()
    inv = build_invocation(resolve_profile("redox-aarch64-tcg", sets=IMAGE_SETS, seed=0), fake_host)
    with pytest.raises(UsageError, match=r"edk2-aarch64-code.fd` not found on this host; apt install qemu-efi"):
        inv.require_runnable()


def test_missing_qemu_binary(fake_host: Host, project: Path) -> None:
    del fake_host.qemu["x86_64"]
    with pytest.raises(InfraError, match=r"qemu-system-x86_64 not found on PATH; install it: sudo apt install"):
        build_invocation(resolve_profile("redox-x86_64", sets=IMAGE_SETS, seed=0), fake_host)


def test_network_false_and_default(fake_host: Host, project: Path) -> None:
    prof = resolve_profile("linux-aarch64", sets=[*IMAGE_SETS, "network=false"], seed=0)
    assert build_invocation(prof, fake_host).argv[-3:] == ["-nic", "none", "-nographic"]
    prof = resolve_profile("linux-aarch64", sets=IMAGE_SETS, seed=0)
    assert "-nic" not in build_invocation(prof, fake_host).argv  # QEMU's default NIC, as a plain command line
