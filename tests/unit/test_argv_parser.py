"""The QEMU command-line parser: option syntax, facts, and one-line errors for malformed values."""

from __future__ import annotations

import pytest

from bootlab.errors import UsageError
from bootlab.qemu.argv_parser import parse_argv, parse_size_mb, split_opts

Q = "qemu-system-aarch64"


def test_arch_from_binary_and_prefix_words() -> None:
    assert parse_argv([Q]).arch == "aarch64"
    assert parse_argv(["/opt/homebrew/bin/qemu-system-x86_64"]).arch == "x86_64"
    assert parse_argv(["sudo", "FOO=1", Q, "-m", "1G"]).arch == "aarch64"
    assert parse_argv(["-m", "1G"]).arch is None


@pytest.mark.parametrize(
    ("args", "mtype", "opts"),
    [
        (["-M", "virt,highmem=off"], "virt", {"highmem": "off"}),
        (["-machine", "type=virt,highmem=off"], "virt", {"highmem": "off"}),
        (["-M", "virt", "-machine", "gic-version=3"], "virt", {"gic-version": "3"}),
        (["--machine", "virt-9.2,secure"], "virt-9.2", {"secure": "on"}),
    ],
)
def test_machine(args: list[str], mtype: str, opts: dict[str, str]) -> None:
    facts = parse_argv([Q, *args])
    assert facts.machine_type == mtype
    assert facts.machine_options == opts


@pytest.mark.parametrize(
    ("args", "accel"),
    [
        ([], ["tcg"]),
        (["-accel", "hvf"], ["hvf"]),
        (["-accel", "tcg,thread=multi"], ["tcg"]),
        (["-enable-kvm"], ["kvm"]),
        (["-machine", "virt,accel=kvm:tcg"], ["kvm", "tcg"]),
        (["-accel", "hvf", "-accel", "tcg"], ["hvf", "tcg"]),
    ],
)
def test_accel(args: list[str], accel: list[str]) -> None:
    facts = parse_argv([Q, *args])
    assert facts.accel == accel
    assert facts.accel_first == accel[0]


def test_accel_options_and_cpu_options() -> None:
    facts = parse_argv([Q, "-accel", "tcg,thread=multi", "-cpu", "cortex-a72,pauth=off"])
    assert facts.accel_options == {"tcg": {"thread": "multi"}}
    assert facts.cpu == "cortex-a72"
    assert facts.cpu_options == {"pauth": "off"}


@pytest.mark.parametrize(
    ("value", "cpus"),
    [("4", 4), ("cpus=4,cores=2", 4), ("sockets=2,cores=2,threads=2", 8), ("cores=3", 3)],
)
def test_smp(value: str, cpus: int) -> None:
    assert parse_argv([Q, "-smp", value]).smp == cpus


@pytest.mark.parametrize(
    ("value", "mib"), [("2G", 2048), ("2048", 2048), ("size=2G", 2048), ("512M", 512), ("1.5G", 1536), ("3g", 3072)]
)
def test_memory(value: str, mib: int) -> None:
    assert parse_argv([Q, "-m", value]).memory_mb == mib


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-smp", "abc"], "-smp abc"),
        (["-smp", "0"], "-smp 0"),
        (["-m", "lots"], "-m lots"),
        (["-drive", "file=x.img,snapshot=maybe"], "snapshot=maybe"),
        (["-m"], "-m: missing its value"),
        (["-accel", ",thread=multi"], "-accel"),
    ],
)
def test_malformed_values_are_one_line_usage_errors(args: list[str], needle: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_argv([Q, *args])
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_escaped_commas() -> None:
    assert split_opts("file=a,,b.img,format=raw") == {"file": "a,b.img", "format": "raw"}
    facts = parse_argv([Q, "-drive", "file=my,,disk.img,format=raw,if=virtio"])
    assert facts.drives[0].file == "my,disk.img"
    assert facts.drives[0].interface == "virtio"
    assert facts.drives[0].device == "virtio-blk"


def test_pflash_is_firmware_not_a_drive() -> None:
    facts = parse_argv([Q, "-drive", "if=pflash,format=raw,readonly=on,file=code.fd", "-bios", "edk2-aarch64-code.fd"])
    assert facts.drives == []
    assert [(f.kind, f.file, f.readonly) for f in facts.firmware] == [
        ("pflash", "code.fd", True),
        ("bios", "edk2-aarch64-code.fd", None),
    ]


def test_if_none_drive_joined_with_its_device() -> None:
    facts = parse_argv(
        [
            Q,
            "-drive", "file=pure-rust.img,format=raw,id=disk0,if=none",
            "-device", "virtio-blk-pci,drive=disk0",
            "-drive", "file=b.img,format=raw,if=none,id=d,snapshot=on",
            "-device", "nvme,drive=d,serial=abc",
        ]
    )  # fmt: skip
    a, b = facts.drives
    assert (a.file, a.interface, a.device, a.snapshot) == ("pure-rust.img", "none", "virtio-blk-pci", False)
    assert (b.file, b.device, b.snapshot) == ("b.img", "nvme", True)


def test_global_snapshot_applies_to_every_drive() -> None:
    facts = parse_argv([Q, "-snapshot", "-drive", "file=a.img,format=raw", "-hda", "b.img"])
    assert facts.snapshot is True
    assert [d.snapshot for d in facts.drives] == [True, True]


def test_blockdev_protocol_and_format_nodes_are_one_disk() -> None:
    facts = parse_argv(
        [
            Q,
            "-blockdev", "driver=file,node-name=f0,filename=disk.img",
            "-blockdev", "driver=raw,node-name=d0,file=f0",
            "-device", "virtio-blk-pci,drive=d0",
        ]
    )  # fmt: skip
    assert len(facts.drives) == 1
    assert (facts.drives[0].file, facts.drives[0].format, facts.drives[0].device) == (
        "disk.img",
        "raw",
        "virtio-blk-pci",
    )


def test_positional_image_and_legacy_options() -> None:
    facts = parse_argv(["qemu-system-x86_64", "disk.img", "-cdrom", "x.iso"])
    assert [(d.file, d.interface, d.readonly) for d in facts.drives] == [
        ("disk.img", "ide", False),
        ("x.iso", "ide", True),
    ]


def test_boot_payload_console_network_shares() -> None:
    facts = parse_argv(
        [
            Q, "-kernel", "Image", "-initrd", "initrd.img", "-append", "console=ttyAMA0 root=/dev/vda",
            "-nographic", "-serial", "mon:stdio", "-netdev", "user,id=n0,hostfwd=tcp::2222-:22",
            "-nic", "none", "-fsdev", "local,id=fs0,path=/tmp,security_model=none",
            "-device", "virtio-9p-pci,fsdev=fs0,mount_tag=host", "-virtfs", "local,path=/srv,mount_tag=srv",
        ]
    )  # fmt: skip
    assert (facts.kernel, facts.initrd, facts.append) == ("Image", "initrd.img", "console=ttyAMA0 root=/dev/vda")
    assert facts.nographic and facts.serial == ["mon:stdio"]
    assert [n["type"] for n in facts.netdevs] == ["user", "none"]
    assert len(facts.shares) == 3


def test_unknown_options_are_kept_not_errors() -> None:
    facts = parse_argv([Q, "-frobnicate", "x=1", "-zap", "-m", "1G", "-S"])
    assert facts.unknown == [("frobnicate", "x=1"), ("zap", None)]
    assert facts.memory_mb == 1024


def test_size_parser_default_unit_is_mib() -> None:
    assert parse_size_mb("1024", what="-m") == 1024
    assert parse_size_mb("1T", what="-m") == 1024 * 1024


def test_as_dict_view() -> None:
    view = parse_argv([Q, "-M", "virt,highmem=off", "-smp", "2"]).as_dict()
    assert view["machine"] == {"type": "virt", "highmem": "off"}
    assert view["smp"] == 2
    assert view["accel"] == ["tcg"]
