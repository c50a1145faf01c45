"""The exactness check: same machine, option by option, and every difference named (it must be able to fail)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from bootlab.qemu.equivalence import Comparison, compare

BASE = "qemu-system-aarch64 -M virt -accel tcg -cpu cortex-a72 -smp 1 -m 2G"


def cmp(source: str, profile: str, usable: tuple[str, ...] = ("tcg",)) -> Comparison:
    return compare(
        shlex.split(source), shlex.split(profile), source_base=Path("/src"), profile_base=Path("/prof"),
        usable=list(usable), firmware=lambda name, pflash: {"edk2-aarch64-code.fd": "/fw/QEMU_EFI.fd"}.get(name),
    )  # fmt: skip


def statuses(c: Comparison) -> list[tuple[str, str]]:
    return [(r.status, r.source) for r in c.rows if r.status != "same"]


def test_identical_is_exact_and_all_same() -> None:
    c = cmp(BASE + " -nographic", BASE + " -nographic")
    assert c.exact and [r.status for r in c.rows] == ["same"] * 6 + ["replaced"]


@pytest.mark.parametrize(
    ("source", "profile", "note"),
    [
        ("-machine virt", "-M virt", ""),
        ("-m 2048", "-m 2G", "2048 MiB either way"),
        ("-drive file=d.img,if=virtio,format=raw,snapshot=on",
         "-drive file=/src/d.img,format=raw,if=none,id=disk0,snapshot=on -device virtio-blk-pci,drive=disk0",
         "the same disk (if=virtio is virtio-blk-pci)"),
        ("-bios edk2-aarch64-code.fd", "-bios /fw/QEMU_EFI.fd", "the same firmware file"),
        ("-kernel ../k/Image", "-kernel /k/Image", "the same file"),
        ("-accel hvf -accel tcg", "-accel tcg", "QEMU takes the first that works: tcg here"),
    ],
)  # fmt: skip
def test_equal_in_meaning(source: str, profile: str, note: str) -> None:
    strip = BASE.replace(" -M virt", "").replace(" -m 2G", "").replace(" -accel tcg", "")
    c = cmp(f"{strip} {source}", f"{strip} {profile}")
    assert c.exact, statuses(c)
    row = next(r for r in c.rows if r.source == source)
    assert (row.status, row.note) == ("equal", note)


@pytest.mark.parametrize(
    ("source", "profile", "why"),
    [
        ("-cpu cortex-a72", "-cpu max", "another cpu"),
        ("-accel hvf", "-accel tcg", "another accelerator"),
        ("-smp 4", "-smp 1", "another CPU count or topology"),
        ("-drive file=d.img,format=raw,if=none,id=a,snapshot=on -device virtio-blk-pci,drive=a",
         "-drive file=/src/d.img,format=raw,if=none,id=disk0 -device virtio-blk-pci,drive=disk0",
         "the profile writes this image"),
        ("-drive file=d.img,format=raw,if=none,id=a -device nvme,drive=a,serial=X",
         "-drive file=/src/d.img,format=raw,if=none,id=disk0 -device nvme,drive=disk0,serial=disk0",
         "another serial number"),
        ("-drive file=d.img,format=raw,if=none,id=a,cache=none -device virtio-blk-pci,drive=a",
         "-drive file=/src/d.img,format=raw,if=none,id=disk0 -device virtio-blk-pci,drive=disk0", "other options"),
        ("-device qemu-xhci", "", "not in the profile"),
        ("-append console=ttyAMA0", "-append console=ttyS0", "another kernel command line"),
        ("-netdev user,id=n,hostfwd=tcp::2222-:22 -device virtio-net-pci,netdev=n",
         "-netdev user,id=net0,hostfwd=tcp:127.0.0.1:2223-:22 -device virtio-net-pci,netdev=net0",
         "another network or other forwards"),
    ],
)  # fmt: skip
def test_differences_are_found(source: str, profile: str, why: str) -> None:
    kernel = " -kernel /k" if "-append" in source else ""
    c = cmp(f"{BASE}{kernel} {source}", f"{BASE}{kernel} {profile}")
    assert not c.exact
    assert [r.note for r in c.rows if r.status == "differs"] == [why]


def test_replaced_on_purpose() -> None:
    c = cmp(
        BASE + " -drive file=d.img,format=raw,if=none,id=a -device virtio-blk-pci,drive=a"
        " -netdev user,id=n,hostfwd=tcp::2222-:22 -device virtio-net-pci,netdev=n"
        " -drive if=pflash,format=raw,unit=0,file=/fw/c.fd -drive if=pflash,format=raw,unit=1,file=/fw/v.fd"
        " -serial mon:stdio -display none",
        BASE + " -drive file=/src/d.img,format=raw,if=none,id=disk0,snapshot=on -device virtio-blk-pci,drive=disk0"
        " -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=net0"
        " -drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/c.fd"
        " -drive if=pflash,format=raw,unit=1,snapshot=on,file=/fw/v.fd -nographic",
    )
    assert c.exact
    notes = {r.note for r in c.rows if r.status == "replaced"}
    assert notes == {
        "bootlab runs this image on a snapshot (profile not persistent)",
        "bootlab binds forwarded ports to 127.0.0.1 only",
        "bootlab runs firmware code read-only",
        "bootlab runs firmware the vars store on a snapshot (your file is never written)",
        "console and monitor plumbing: bootlab brings its own",
    }


def test_device_order_is_reported() -> None:
    c = cmp(
        BASE + " -device qemu-xhci -drive file=d.img,format=raw,if=none,id=a,snapshot=on -device nvme,drive=a,serial=s",
        BASE + " -drive file=/src/d.img,format=raw,if=none,id=disk0,snapshot=on -device nvme,drive=disk0,serial=s"
        " -device qemu-xhci",
    )
    assert c.exact
    assert "source: qemu-xhci, nvme; profile: nvme, qemu-xhci" in c.order
    assert cmp(BASE + " -device qemu-xhci", BASE + " -device qemu-xhci").order == ""


def test_defaults_count_as_given() -> None:
    c = cmp("qemu-system-x86_64", "qemu-system-x86_64 -M pc -accel tcg -cpu qemu64 -smp 1 -m 128M")
    assert c.exact and all(r.status == "equal" for r in c.rows[1:])
    c = cmp("qemu-system-x86_64", "qemu-system-x86_64 -M pc -accel tcg -cpu qemu64 -smp 1 -m 1G")
    assert [r.profile for r in c.rows if r.status == "differs"] == ["-m 1G"]
