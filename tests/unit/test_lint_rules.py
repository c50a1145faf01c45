"""Every shipped lint rule fires on a small command line that has the problem, and stays quiet on one without.

Each case is (rule id, argv after the binary, context). The last test checks that every rule in
``src/bootlab/lint/rules`` has both kinds of case, so a new rule cannot ship untested.
"""

from __future__ import annotations

from typing import Any

import pytest

from bootlab.lint import check_argv, load_rules

A64 = "qemu-system-aarch64"
GOOD_A64 = ["-M", "virt", "-cpu", "cortex-a72", "-bios", "edk2-aarch64-code.fd"]
MAC: dict[str, Any] = {"host_os": "darwin", "host_arch": "arm64"}
LINUX_ARM: dict[str, Any] = {"host_os": "linux", "host_arch": "aarch64"}
LINUX_X86: dict[str, Any] = {"host_os": "linux", "host_arch": "x86_64"}
REDOX = {"pack": ["redox"]}
PROFILE: dict[str, Any] = {"profile_facts": {"profile": "p"}}  # bootlab builds (and would boot) this argv
HVF = ["-M", "virt", "-accel", "hvf", "-cpu", "host", "-bios", "edk2-aarch64-code.fd"]
DISK_OK = ["-drive", "file=d.img,format=raw,if=none,id=d0,snapshot=on", "-device", "virtio-blk-pci,drive=d0"]

Case = tuple[str, list[str], dict[str, Any]]

FIRES: list[Case] = [
    ("hvf-smp", [*HVF, "-smp", "4"], {**MAC, "profile_facts": REDOX}),
    ("hvf-smp-unknown-guest", [*HVF, "-smp", "2"], MAC),
    ("hvf-highmem-off", ["-M", "virt,highmem=off", "-accel", "hvf", "-cpu", "host", "-bios", "f.fd"], MAC),
    ("hvf-cpu", ["-M", "virt", "-accel", "hvf", "-cpu", "cortex-a72", "-bios", "f.fd"], MAC),
    ("hvf-cpu", ["-M", "virt", "-accel", "hvf", "-bios", "f.fd"], MAC),
    ("hvf-redox-kernel-fixes", HVF, {**MAC, "profile_facts": REDOX}),
    ("hvf-not-macos", HVF, LINUX_ARM),
    ("kvm-not-linux", ["-M", "virt", "-enable-kvm", "-cpu", "host", "-bios", "f.fd"], MAC),
    ("accel-arch-mismatch", ["-M", "virt", "-accel", "kvm", "-cpu", "host", "-bios", "f.fd"], LINUX_X86),
    ("cpu-host-tcg", ["-M", "virt", "-cpu", "host", "-bios", "f.fd"], {}),
    ("tcg-cpu-fallback", ["-M", "virt", "-cpu", "max", "-bios", "f.fd"], {}),
    ("virt-default-cpu", ["-M", "virt", "-bios", "f.fd"], {}),
    ("virt-highmem-ram", ["-M", "virt,highmem=off", "-cpu", "cortex-a72", "-m", "4G", "-bios", "f.fd"], {}),
    ("virt-highmem-ram", ["-machine", "type=virt,highmem=no", "-cpu", "max", "-m", "3073", "-bios", "f"], {}),
    ("virt-gicv2-smp", ["-M", "virt,gic-version=2", "-enable-kvm", "-cpu", "host", "-smp", "16", "-bios", "f"], {}),
    ("virt-default-gic-smp", [*GOOD_A64, "-smp", "9"], {}),
    ("drive-no-snapshot", [*GOOD_A64, "-drive", "file=d.img,format=raw,if=none,id=d0"], PROFILE),
    ("drive-no-snapshot", [*GOOD_A64, "-hda", "d.img"], PROFILE),
    ("drive-writes-image", [*GOOD_A64, "-drive", "file=d.img,format=raw,if=none,id=d0"], {}),
    ("drive-writes-image", [*GOOD_A64, "-hda", "d.img"], {}),
    ("virtio-drive-qemu10", [*GOOD_A64, "-drive", "file=d.img,format=raw,if=virtio,snapshot=on"],
     {"qemu_version": (10, 0, 2)}),
    ("virtio-drive-qemu10", [*GOOD_A64, "-drive", "file=d.img,format=raw,if=virtio,snapshot=on"], {}),
    ("drive-format-probed", [*GOOD_A64, "-snapshot", "-drive", "file=d.img,if=none,id=d0"], {}),
    ("firmware-missing", GOOD_A64, {"profile_facts": {"firmware_missing": "edk2-aarch64-code.fd"}}),
    ("virt-nothing-to-boot", ["-M", "virt", "-cpu", "cortex-a72"], {}),
]  # fmt: skip

QUIET: list[Case] = [
    ("hvf-smp", [*HVF, "-smp", "1"], {**MAC, "profile_facts": REDOX}),
    ("hvf-smp", [*HVF, "-smp", "4"], {**MAC, "profile_facts": {"pack": ["linux"]}}),
    ("hvf-smp", [*GOOD_A64, "-smp", "4"], {"profile_facts": REDOX}),
    ("hvf-smp-unknown-guest", [*HVF, "-smp", "2"], {**MAC, "profile_facts": REDOX}),
    ("hvf-highmem-off", ["-M", "virt,highmem=off", "-cpu", "cortex-a72", "-bios", "f.fd"], {}),
    ("hvf-highmem-off", ["-M", "virt,highmem=on", "-accel", "hvf", "-cpu", "host", "-bios", "f.fd"], MAC),
    ("hvf-cpu", HVF, MAC),
    ("hvf-cpu", ["-M", "virt", "-accel", "hvf", "-cpu", "max", "-bios", "f.fd"], MAC),
    ("hvf-redox-kernel-fixes", GOOD_A64, {"profile_facts": REDOX}),
    ("hvf-not-macos", HVF, MAC),
    ("hvf-not-macos", HVF, {}),
    ("kvm-not-linux", ["-M", "virt", "-enable-kvm", "-cpu", "host", "-bios", "f.fd"], LINUX_ARM),
    ("accel-arch-mismatch", ["-M", "virt", "-accel", "kvm", "-cpu", "host", "-bios", "f.fd"], LINUX_ARM),
    ("accel-arch-mismatch", [*GOOD_A64, "-accel", "tcg"], LINUX_X86),
    ("cpu-host-tcg", ["-M", "virt", "-accel", "kvm", "-cpu", "host", "-bios", "f.fd"], LINUX_ARM),
    ("tcg-cpu-fallback", GOOD_A64, {}),
    ("tcg-cpu-fallback", ["-M", "virt", "-cpu", "max", "-bios", "f.fd"], {"profile_facts": {"pack": ["linux"]}}),
    ("tcg-cpu-fallback", ["-M", "virt", "-accel", "kvm", "-cpu", "max", "-bios", "f.fd"], LINUX_ARM),
    ("virt-default-cpu", GOOD_A64, {}),
    ("virt-highmem-ram", ["-M", "virt,highmem=off", "-cpu", "cortex-a72", "-m", "3G", "-bios", "f.fd"], {}),
    ("virt-highmem-ram", [*GOOD_A64, "-m", "8G"], {}),
    ("virt-gicv2-smp", ["-M", "virt,gic-version=3", "-cpu", "max", "-smp", "16", "-bios", "f"], {}),
    ("virt-gicv2-smp", ["-M", "virt,gic-version=2", "-cpu", "max", "-smp", "8", "-bios", "f"], {}),
    ("virt-default-gic-smp", [*GOOD_A64, "-smp", "8"], {}),
    ("virt-default-gic-smp", ["-M", "virt,gic-version=max", "-cpu", "max", "-smp", "16", "-bios", "f"], {}),
    ("drive-no-snapshot", [*GOOD_A64, *DISK_OK], PROFILE),
    ("drive-no-snapshot", [*GOOD_A64, "-snapshot", "-drive", "file=d.img,format=raw"], PROFILE),
    ("drive-no-snapshot", [*GOOD_A64, "-drive", "file=d.img,format=raw,readonly=on"], PROFILE),
    ("drive-no-snapshot", [*GOOD_A64, "-drive", "file=d.img,format=raw,if=none,id=d0"], {}),  # pasted: a warning
    ("drive-writes-image", [*GOOD_A64, *DISK_OK], {}),
    ("drive-writes-image", [*GOOD_A64, "-drive", "file=d.img,format=raw,if=none,id=d0"], PROFILE),
    ("drive-no-snapshot", [*GOOD_A64, "-drive", "file=d.img,format=raw,if=none,id=d0"],
     {"profile_facts": {"drives": [{"file": "d.img", "persistent": True}]}}),
    ("virtio-drive-qemu10", [*GOOD_A64, "-drive", "file=d.img,format=raw,if=virtio,snapshot=on"],
     {"qemu_version": (9, 2, 0)}),
    ("virtio-drive-qemu10", [*GOOD_A64, *DISK_OK], {"qemu_version": (10, 1, 0)}),
    ("drive-format-probed", [*GOOD_A64, *DISK_OK], {}),
    ("firmware-missing", GOOD_A64, {}),
    ("virt-nothing-to-boot", GOOD_A64, {}),
    ("virt-nothing-to-boot", ["-M", "virt", "-cpu", "cortex-a72", "-kernel", "Image"], {}),
    ("virt-nothing-to-boot", ["-M", "virt", "-cpu", "max", "-drive", "if=pflash,format=raw,file=c.fd"], {}),
]  # fmt: skip


def _ids(case: Case) -> str:
    return f"{case[0]}:{' '.join(case[1])}"


@pytest.mark.parametrize("case", FIRES, ids=_ids)
def test_rule_fires(case: Case) -> None:
    rule_id, args, context = case
    findings = check_argv([A64, *args], **context)
    assert rule_id in [f.id for f in findings]


@pytest.mark.parametrize("case", QUIET, ids=_ids)
def test_rule_stays_quiet(case: Case) -> None:
    rule_id, args, context = case
    findings = check_argv([A64, *args], **context)
    assert rule_id not in [f.id for f in findings]


def test_every_rule_has_both_cases_and_a_reference() -> None:
    ids = {rule.id for rule in load_rules()}
    assert ids == {c[0] for c in FIRES}
    assert ids == {c[0] for c in QUIET}
    assert all(rule.reference.strip() for rule in load_rules())


def test_users_known_good_fallback_is_clean() -> None:
    """The user's run-backup.sh configuration (TCG, cortex-a72, if=none + virtio-blk-pci) lints clean."""
    argv = [A64, *GOOD_A64, "-m", "2G", *DISK_OK, "-nographic"]
    assert check_argv(argv, qemu_version=(10, 0, 0), **LINUX_X86, profile_facts=REDOX) == []


def test_users_hvf_line_from_the_notes() -> None:
    """The HVF line from the notes: fine on a Mac, except that it writes the image (no snapshot). Pasted, that is
    a warning saying the risk (a run script writes its image on purpose); bootlab never boots it that way."""
    argv = [
        A64, "-M", "virt", "-accel", "hvf", "-cpu", "host", "-m", "2G", "-bios", "tools/firmware/edk2-aarch64-code.fd",
        "-drive", "file=pure-rust.img,format=raw,id=disk0,if=none", "-device", "virtio-blk-pci,drive=disk0",
        "-nographic",
    ]  # fmt: skip
    findings = check_argv(argv, qemu_version=(10, 0, 0), **MAC, profile_facts=REDOX)
    assert [(f.id, f.severity) for f in findings] == [
        ("drive-writes-image", "warning"),
        ("hvf-redox-kernel-fixes", "info"),
    ]
    assert "pure-rust.img" in findings[0].message


def test_messages_name_the_facts() -> None:
    findings = check_argv([A64, *HVF, "-smp", "4"], **MAC, profile_facts=REDOX)
    smp = next(f for f in findings if f.id == "hvf-smp")
    assert smp.severity == "error"
    assert smp.message.startswith("-smp 4 under HVF")
    assert "user-qemu-notes.md" in smp.reference
