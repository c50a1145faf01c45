"""The host probe: parsing QEMU's outputs, accelerator rules (HVF tested against what macOS prints)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bootlab import host as hostmod
from bootlab.host import accel_reasons, parse_accel_help, parse_version, probe_firmware, smoke_argv, smoke_failure


def test_parse_version() -> None:
    assert parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)\nCopyright") == "7.2.22"
    assert parse_version("QEMU emulator version 10.1.0\n") == "10.1.0"
    assert parse_version("garbage") == "unknown"


def test_parse_accel_help() -> None:
    # Homebrew QEMU on Apple silicon and Debian's QEMU, as they print it.
    assert parse_accel_help("Accelerators supported in QEMU binary:\ntcg\nhvf\n") == ["tcg", "hvf"]
    assert parse_accel_help("Accelerators supported in QEMU binary:\nkvm\ntcg\n") == ["kvm", "tcg"]


def _sysctl(value: str) -> Any:
    def fake_run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert argv == ["sysctl", "-n", "kern.hv_support"]
        return subprocess.CompletedProcess(argv, 0, stdout=value, stderr="")

    return fake_run


def test_hvf_on_apple_silicon(monkeypatch: pytest.MonkeyPatch) -> None:
    """Untested on real hardware: this is what `sysctl -n kern.hv_support` prints on a Mac with HVF."""
    monkeypatch.setattr(hostmod.subprocess, "run", _sysctl("1\n"))
    usable, why = accel_reasons("aarch64", ["tcg", "hvf"], "darwin", "aarch64")
    assert usable == ["hvf", "tcg"]
    assert why["kvm"] == "not Linux"


def test_hvf_without_hypervisor_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostmod.subprocess, "run", _sysctl("0\n"))
    usable, why = accel_reasons("aarch64", ["tcg", "hvf"], "darwin", "aarch64")
    assert usable == ["tcg"] and "kern.hv_support" in why["hvf"]


def test_hvf_needs_same_arch_and_binary_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostmod.subprocess, "run", _sysctl("1\n"))
    usable, why = accel_reasons("x86_64", ["tcg", "hvf"], "darwin", "aarch64")
    assert usable == ["tcg"] and why["hvf"] == "guest is x86_64, host CPU is aarch64"
    usable, why = accel_reasons("aarch64", ["tcg"], "darwin", "aarch64")
    assert usable == ["tcg"] and why["hvf"] == "qemu-system-aarch64 was built without hvf"


def test_kvm_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostmod, "_kvm_usable", lambda: None)
    assert accel_reasons("x86_64", ["kvm", "tcg"], "linux", "x86_64")[0] == ["kvm", "tcg"]
    usable, why = accel_reasons("aarch64", ["kvm", "tcg"], "linux", "x86_64")
    assert usable == ["tcg"] and why == {"hvf": "not macOS", "kvm": "guest is aarch64, host CPU is x86_64"}
    monkeypatch.setattr(hostmod, "_kvm_usable", lambda: "/dev/kvm does not exist (no KVM in this kernel or VM)")
    assert "does not exist" in accel_reasons("x86_64", ["kvm", "tcg"], "linux", "x86_64")[1]["kvm"]


def test_firmware_search_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "AAVMF_CODE.fd").write_bytes(b"x")
    (tmp_path / "edk2-aarch64-code.fd").write_bytes(b"x")
    monkeypatch.setenv("BOOTLAB_FIRMWARE_PATH", str(tmp_path))
    names, pflash, files = probe_firmware()
    assert names["edk2-aarch64-code.fd"] == str(tmp_path / "edk2-aarch64-code.fd")
    assert pflash["edk2-aarch64-code.fd"] == str(tmp_path / "edk2-aarch64-code.fd")
    assert files["AAVMF_CODE.fd"] == str(tmp_path / "AAVMF_CODE.fd")


def test_smoke_failure_from_nested_kvm_output() -> None:
    """What QEMU 7.2 prints on this project's CI machine: /dev/kvm opens, but a -cpu host vCPU cannot start."""
    output = (
        "(qemu) qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n"
        "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed.\n"
    )
    assert smoke_failure(output, -6) == "QEMU could not start a vCPU with -cpu host (failed to set MSR 0x10a to 0x69)"
    assert smoke_failure("(qemu) quit\n", 0) is None
    assert smoke_failure("", 1) == "QEMU could not start a vCPU with -cpu host (exit status 1)"


def test_smoke_runs_only_for_hardware_accels_that_pass_static_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostmod, "_kvm_usable", lambda: None)
    asked: list[str] = []

    def smoke(accel: str) -> str | None:
        asked.append(accel)
        return "QEMU could not start a vCPU with -cpu host (x)"

    usable, why = accel_reasons("x86_64", ["kvm", "tcg"], "linux", "x86_64", smoke=smoke)
    assert usable == ["tcg"] and asked == ["kvm"]
    # QEMU's words, then why that happens on a host where /dev/kvm opens: a user must learn it is nested KVM
    assert why["kvm"].startswith("QEMU could not start a vCPU with -cpu host (x); ")
    assert "nested KVM (this host is a VM)" in why["kvm"]
    asked.clear()
    accel_reasons("aarch64", ["kvm", "tcg"], "linux", "x86_64", smoke=smoke)
    assert asked == []  # arch mismatch already rules kvm out: no QEMU started


def test_smoke_argv_is_a_paused_host_vcpu() -> None:
    argv = smoke_argv("/usr/bin/qemu-system-aarch64", "aarch64", "hvf")
    assert argv[:5] == ["/usr/bin/qemu-system-aarch64", "-accel", "hvf", "-cpu", "host"]
    assert "-S" in argv and argv[argv.index("-M") + 1] == "virt"
