"""Parse a raw QEMU command line into :class:`Facts`, the neutral input of ``bootlab lint``.

Lint rules never look at argv directly: they look at facts (arch, accelerators, cpu, smp, memory, machine
options, firmware, drives, ...). Both ``bootlab lint PROFILE`` (argv from the builder) and ``bootlab lint
-- qemu-system-...`` (a command line the user pasted from their run script) go through :func:`parse_argv`,
so one rule set serves both.

The parser follows QEMU's own option syntax (``key=value,key=value`` with ``,,`` for a literal comma, an
implied first key such as ``-M virt`` meaning ``type=virt``, bare ``flag`` meaning ``flag=on``). It is
deliberately forgiving: an option it does not know is kept in :attr:`Facts.unknown` and never an error,
because QEMU grows options faster than bootlab. A value it *does* know and cannot read (``-smp abc``, ``-m
lots``) is a :class:`~bootlab.errors.UsageError` with one line, mirroring QEMU's own refusal.

The parser never touches the filesystem or runs QEMU; facts that need the host are added by the caller.

:class:`FirmwareFact` and :class:`DriveFact` are what a command line *does* (any ``-drive`` QEMU accepts, with
its interface, id, device and raw options); the profile's :class:`~bootlab.profile.model.Firmware` and
:class:`~bootlab.profile.model.Drive` are what a user *asks for* (the few shapes bootlab builds). The builder
turns the second into argv; this parser turns any argv into the first.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from bootlab.errors import UsageError
from bootlab.qemu.size import size_bytes

__all__ = [
    "DriveFact", "Facts", "FirmwareFact", "parse_argv", "parse_bool", "parse_size_mb", "smp_count", "split_opts",
    "split_opts_list",
]  # fmt: skip

# QEMU options that take no argument. Anything else that QEMU knows takes exactly one argument; an option
# we do not know at all takes the next token as its argument unless that token starts with "-".
_FLAGS = frozenset(
    {
        "snapshot", "nographic", "enable-kvm", "S", "s", "no-reboot", "no-shutdown", "no-user-config",
        "nodefaults", "full-screen", "daemonize", "no-acpi", "no-hpet", "usb", "win2k-hack",
        "only-migratable", "alt-grab", "ctrl-grab", "preconfig", "no-fd-bootchk", "no-quit",
        "enable-sync-profile", "version", "h", "help", "portrait", "old-param", "no-graphic",
        "semihosting", "mem-prealloc", "nouserconfig", "no-frame", "sdl", "curses",
    }
)  # fmt: skip

# Options with an argument that the parser reads (the rest are recorded in ``Facts.options`` only).
_WITH_ARG = frozenset(
    {
        "M", "machine", "accel", "cpu", "smp", "m", "bios", "pflash", "drive", "blockdev", "device", "kernel",
        "initrd", "append", "dtb", "serial", "netdev", "nic", "net", "fsdev", "virtfs", "chardev", "display",
        "monitor", "qmp", "hda", "hdb", "hdc", "hdd", "cdrom", "fda", "fdb", "sd", "mtdblock", "boot", "name",
        "vga", "object", "global", "L", "D", "d", "trace", "rtc", "icount", "mon", "incoming", "pidfile", "k",
        "numa", "audiodev", "vnc", "spice", "parallel", "add-fd", "smbios", "fw_cfg", "plugin", "msg",
        "overcommit", "action", "run-with", "sandbox", "uuid", "watchdog-action", "loadvm", "option-rom",
        "iscsi", "usbdevice", "gdb", "semihosting-config", "tpmdev", "mem-path", "seed",
        "compat", "readconfig",
    }
)  # fmt: skip

_TRUE = frozenset({"on", "yes", "true", "y"})
_FALSE = frozenset({"off", "no", "false", "n"})

# The `-drive if=` that a positional disk (`qemu-system-x86_64 disk.img`) or -hda/-cdrom stands for.
_LEGACY_DRIVES = {"hda": "ide", "hdb": "ide", "hdc": "ide", "hdd": "ide", "cdrom": "ide", "fda": "floppy",
                  "fdb": "floppy", "sd": "sd", "mtdblock": "mtd"}  # fmt: skip


_BINARY_RE = re.compile(r"^qemu-system-([A-Za-z0-9_]+?)(?:\.exe)?$")
# Leading words a pasted command line may carry before the binary (`sudo`, `exec`, `VAR=value`).
_PREFIX_WORDS = frozenset({"sudo", "exec", "env", "nice", "time", "nohup", "command"})
_ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass
class FirmwareFact:
    """One firmware image: ``-bios FILE`` or a ``-drive if=pflash`` (code or vars)."""

    kind: str  # "bios" or "pflash"
    file: str | None
    readonly: bool | None = None
    format: str | None = None
    unit: int | None = None


@dataclass
class DriveFact:
    """One guest disk, whichever way it was attached (``-drive``, ``-hda``, ``-blockdev``, a positional
    image).

    ``interface`` is the ``if=`` value (``virtio``, ``none``, ``ide``...); ``device`` is the model of the
    ``-device ...,drive=ID`` that attaches an ``if=none`` drive (``virtio-blk-pci``, ``nvme``), if any.
    ``snapshot`` is the effective value (the drive's own ``snapshot=`` or the global ``-snapshot``).
    ``persistent`` is not in argv: profile-level facts fill it in (``persistent = true`` in the profile).
    """

    file: str | None
    interface: str | None = None
    format: str | None = None
    snapshot: bool = False
    readonly: bool = False
    id: str | None = None
    media: str | None = None
    device: str | None = None
    persistent: bool | None = None
    options: dict[str, str] = field(default_factory=dict)

    def as_fact(self) -> dict[str, Any]:
        """The drive as rules see it (``drive.file``, ``drive.if``, ...)."""
        return {
            "file": self.file,
            "if": self.interface,
            "format": self.format,
            "snapshot": self.snapshot,
            "readonly": self.readonly,
            "id": self.id,
            "media": self.media,
            "device": self.device,
            "persistent": self.persistent,
        }


@dataclass
class Facts:
    """What a QEMU command line asks for, in terms lint rules can test.

    ``accel`` lists accelerators in the order given (QEMU tries them in order); it is ``["tcg"]`` when none is
    given, which is QEMU's default. ``smp`` is the effective CPU count (``cpus=`` or the product of the
    topology). ``memory_mb`` is in MiB (QEMU's default unit for ``-m``).
    """

    binary: str | None = None
    arch: str | None = None
    accel: list[str] = field(default_factory=list)
    accel_options: dict[str, dict[str, str]] = field(default_factory=dict)
    cpu: str | None = None
    cpu_options: dict[str, str] = field(default_factory=dict)
    smp: int | None = None
    smp_options: dict[str, int] = field(default_factory=dict)
    memory_mb: int | None = None
    machine_type: str | None = None
    machine_options: dict[str, str] = field(default_factory=dict)
    firmware: list[FirmwareFact] = field(default_factory=list)
    drives: list[DriveFact] = field(default_factory=list)
    devices: list[dict[str, str]] = field(default_factory=list)
    kernel: str | None = None
    initrd: str | None = None
    append: str | None = None
    dtb: str | None = None
    snapshot: bool = False
    nographic: bool = False
    serial: list[str] = field(default_factory=list)
    netdevs: list[dict[str, str]] = field(default_factory=list)
    shares: list[dict[str, str]] = field(default_factory=list)
    options: list[tuple[str, str | None]] = field(default_factory=list)
    unknown: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def accel_first(self) -> str:
        """The accelerator QEMU tries first, i.e. the one in use whenever it is available."""
        return self.accel[0] if self.accel else "tcg"

    def as_dict(self) -> dict[str, Any]:
        """The flat view rules match against (``machine.type``, ``machine.highmem``, ``firmware``...)."""
        machine: dict[str, Any] = dict(self.machine_options)
        machine["type"] = self.machine_type
        return {
            "binary": self.binary,
            "arch": self.arch,
            "accel": list(self.accel),
            "accel_first": self.accel_first,
            "cpu": self.cpu,
            "cpu_options": dict(self.cpu_options),
            "smp": self.smp,
            "memory_mb": self.memory_mb,
            "machine": machine,
            "firmware": [fw.file for fw in self.firmware if fw.file],
            "bios": next((fw.file for fw in self.firmware if fw.kind == "bios"), None),
            "pflash": [fw.file for fw in self.firmware if fw.kind == "pflash" and fw.file],
            "drives": [d.as_fact() for d in self.drives],
            "devices": [d.get("driver") for d in self.devices],
            "kernel": self.kernel,
            "initrd": self.initrd,
            "append": self.append,
            "dtb": self.dtb,
            "snapshot": self.snapshot,
            "nographic": self.nographic,
            "serial": list(self.serial),
            "netdevs": [n.get("type") for n in self.netdevs],
            "shares": [s.get("mount_tag") for s in self.shares],
        }


def split_opts_list(value: str, implied: str | None = None) -> list[tuple[str, str]]:
    """Split a QEMU ``key=value,key=value`` string into ordered pairs, keeping repeated keys.

    ``,,`` is a literal comma, as in QEMU's QemuOpts. The first element may omit its key when the option has an
    implied one (``-M virt`` is ``type=virt``); a bare ``flag`` elsewhere means ``flag=on``, as QEMU reads it.
    Repeated keys matter for a few options (``-netdev user,hostfwd=...,hostfwd=...``).
    """
    parts: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == ",":
            if i + 1 < len(value) and value[i + 1] == ",":
                buf.append(",")
                i += 2
                continue
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    out: list[tuple[str, str]] = []
    for index, part in enumerate(parts):
        if part == "":
            continue
        key, eq, val = part.partition("=")
        if eq:
            out.append((key, val))
        elif index == 0 and implied is not None:
            out.append((implied, part))
        else:
            out.append((part, "on"))
    return out


def split_opts(value: str, implied: str | None = None) -> dict[str, str]:
    """:func:`split_opts_list` as a dict: later duplicates win, as in QEMU."""
    return dict(split_opts_list(value, implied))


def parse_bool(value: str, *, what: str) -> bool:
    """Read a QEMU boolean (on/off, yes/no, true/false); anything else is a one-line usage error."""
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise UsageError(f"{what}={value}: expected on or off")


def parse_size_mb(value: str, *, what: str) -> int:
    """Read a QEMU ``-m`` size (``2G``, ``2048``, ``1.5G``, ``512M``) into MiB; a bare number means MiB."""
    try:
        return int(size_bytes(value)) // (1 << 20)
    except ValueError:
        raise UsageError(f"{what} {value}: expected a size such as 2G, 512M or 2048 (MiB)") from None


def _parse_int(value: str, *, what: str) -> int:
    try:
        number = int(value.strip(), 0)
    except ValueError:
        raise UsageError(f"{what}: expected a whole number, got {value!r}") from None
    if number < 0:
        raise UsageError(f"{what}: expected a non-negative number, got {value}")
    return number


def smp_count(numbers: dict[str, int], *, what: str) -> int:
    """The vCPU count of ``-smp`` options: ``cpus=``, else the product of the topology (QEMU's rule)."""
    if "cpus" in numbers:
        cpus = numbers["cpus"]
    else:
        cpus = 1
        for key in ("sockets", "dies", "clusters", "cores", "threads"):
            cpus *= numbers.get(key, 1)
    if cpus == 0 and "maxcpus" in numbers:
        cpus = numbers["maxcpus"]
    if cpus < 1:
        raise UsageError(f"{what}: expected at least one CPU")
    return cpus


def _arch_from_binary(binary: str) -> str | None:
    match = _BINARY_RE.match(os.path.basename(binary))
    return match.group(1) if match else None


def _strip_prefix(argv: list[str]) -> tuple[str | None, list[str]]:
    """Drop `sudo`/`exec`/`VAR=x` words, then return (binary, options) if the first word is not an option."""
    index = 0
    while index < len(argv) and (argv[index] in _PREFIX_WORDS or _ENV_ASSIGN.match(argv[index])):
        index += 1
    rest = argv[index:]
    if rest and not rest[0].startswith("-"):
        return rest[0], rest[1:]
    return None, rest


class _Builder:
    """Accumulates facts option by option; drives and devices are joined at the end (order-independent)."""

    def __init__(self) -> None:
        self.facts = Facts()
        self.machine_accel: list[str] = []
        self.explicit_accel: list[str] = []
        self.block_devices: dict[str, str] = {}  # drive id / node-name -> device model

    def option(self, name: str, value: str | None) -> None:
        f = self.facts
        f.options.append((name, value))
        handler = getattr(self, "_opt_" + name.replace("-", "_"), None)
        if handler is not None:
            handler(value)
        elif name in _LEGACY_DRIVES and value is not None:
            self._legacy_drive(name, value)
        elif name not in _FLAGS and name not in _WITH_ARG:
            f.unknown.append((name, value))

    # --- machine, accelerators, cpu -------------------------------------------------------------------------
    def _opt_M(self, value: str | None) -> None:
        opts = split_opts(value or "", "type")
        if "type" in opts:
            self.facts.machine_type = opts.pop("type")
        if "accel" in opts:
            self.machine_accel.extend(a for a in opts.pop("accel").split(":") if a)
        self.facts.machine_options.update(opts)

    _opt_machine = _opt_M

    def _opt_accel(self, value: str | None) -> None:
        opts = split_opts(value or "", "accel")
        name = opts.pop("accel", "")
        if not name:
            raise UsageError(f"-accel {value}: expected an accelerator name such as hvf, kvm or tcg")
        self.explicit_accel.append(name)
        self.facts.accel_options.setdefault(name, {}).update(opts)

    def _opt_enable_kvm(self, value: str | None) -> None:
        self.explicit_accel.append("kvm")

    def _opt_cpu(self, value: str | None) -> None:
        opts = split_opts(value or "", "model")
        self.facts.cpu = opts.pop("model", None)
        self.facts.cpu_options = opts

    def _opt_smp(self, value: str | None) -> None:
        opts = split_opts(value or "", "cpus")
        numbers = {key: _parse_int(val, what=f"-smp {value} ({key})") for key, val in opts.items()}
        # QEMU merges repeated -smp options (later keys win), so `-smp 4 -smp cores=4` is one topology.
        self.facts.smp_options = {**self.facts.smp_options, **numbers}
        self.facts.smp = smp_count(self.facts.smp_options, what=f"-smp {value}")

    def _opt_m(self, value: str | None) -> None:
        opts = split_opts(value or "", "size")
        if "size" not in opts:
            return  # `-m maxmem=...` alone: QEMU keeps its default size
        self.facts.memory_mb = parse_size_mb(opts["size"], what="-m")

    # --- firmware and boot payload --------------------------------------------------------------------------
    def _opt_bios(self, value: str | None) -> None:
        self.facts.firmware.append(FirmwareFact(kind="bios", file=value))

    def _opt_pflash(self, value: str | None) -> None:
        self.facts.firmware.append(FirmwareFact(kind="pflash", file=value))

    def _opt_kernel(self, value: str | None) -> None:
        self.facts.kernel = value

    def _opt_initrd(self, value: str | None) -> None:
        self.facts.initrd = value

    def _opt_append(self, value: str | None) -> None:
        self.facts.append = value

    def _opt_dtb(self, value: str | None) -> None:
        self.facts.dtb = value

    # --- disks ----------------------------------------------------------------------------------------------
    def _opt_snapshot(self, value: str | None) -> None:
        self.facts.snapshot = True

    def _opt_drive(self, value: str | None) -> None:
        opts = split_opts(value or "")
        interface = opts.get("if")
        readonly = parse_bool(opts["readonly"], what="-drive readonly") if "readonly" in opts else False
        if interface == "pflash":
            unit = _parse_int(opts["unit"], what="-drive unit") if "unit" in opts else None
            self.facts.firmware.append(
                FirmwareFact(
                    kind="pflash",
                    file=opts.get("file"),
                    readonly=readonly,
                    format=opts.get("format"),
                    unit=unit,
                )
            )
            return
        snapshot = parse_bool(opts["snapshot"], what="-drive snapshot") if "snapshot" in opts else False
        self.facts.drives.append(
            DriveFact(
                file=opts.get("file"),
                interface=interface,
                format=opts.get("format"),
                snapshot=snapshot,
                readonly=readonly or opts.get("media") == "cdrom",
                id=opts.get("id"),
                media=opts.get("media"),
                options=opts,
            )
        )

    def _opt_blockdev(self, value: str | None) -> None:
        if value is not None and value.lstrip().startswith("{"):
            return  # JSON syntax: kept in options, not interpreted
        opts = split_opts(value or "")
        file = opts.get("filename") or opts.get("file.filename") or opts.get("file")
        readonly = parse_bool(opts["read-only"], what="-blockdev read-only") if "read-only" in opts else False
        self.facts.drives.append(
            DriveFact(
                file=file,
                interface="none",
                format=opts.get("driver"),
                readonly=readonly,
                id=opts.get("node-name"),
                options={"blockdev": "on", **opts},
            )
        )

    def _legacy_drive(self, name: str, value: str) -> None:
        cdrom = name == "cdrom"
        self.facts.drives.append(
            DriveFact(file=value, interface=_LEGACY_DRIVES[name], readonly=cdrom, media="cdrom" if cdrom else None)
        )

    def _opt_device(self, value: str | None) -> None:
        opts = split_opts(value or "", "driver")
        self.facts.devices.append(opts)
        if "drive" in opts and "driver" in opts:
            self.block_devices[opts["drive"]] = opts["driver"]
        if opts.get("driver", "").startswith("virtio-9p"):
            self.facts.shares.append(opts)

    # --- console, network, shares ---------------------------------------------------------------------------
    def _opt_nographic(self, value: str | None) -> None:
        self.facts.nographic = True

    def _opt_serial(self, value: str | None) -> None:
        self.facts.serial.append(value or "")

    def _opt_netdev(self, value: str | None) -> None:
        self.facts.netdevs.append(split_opts(value or "", "type"))

    _opt_nic = _opt_netdev

    def _opt_fsdev(self, value: str | None) -> None:
        self.facts.shares.append(split_opts(value or "", "fsdriver"))

    _opt_virtfs = _opt_fsdev

    def _join_blockdevs(self) -> None:
        """`-blockdev driver=raw,file=NODE` names a protocol node (`driver=file,filename=x.img`): one disk."""
        nodes = {d.id: d for d in self.facts.drives if d.options.get("blockdev") and d.id}
        used: set[str] = set()
        for drive in self.facts.drives:
            child = nodes.get(drive.options.get("file", "")) if drive.options.get("blockdev") else None
            if child is not None and child is not drive:
                drive.file = child.file
                drive.readonly = drive.readonly or child.readonly
                used.add(str(id(child)))
        self.facts.drives = [d for d in self.facts.drives if str(id(d)) not in used]

    def finish(self) -> Facts:
        f = self.facts
        self._join_blockdevs()
        f.accel = self.explicit_accel + [a for a in self.machine_accel if a not in self.explicit_accel]
        if not f.accel:
            f.accel = ["tcg"]
        for drive in f.drives:
            if f.snapshot:
                drive.snapshot = True
            if drive.id is not None and drive.id in self.block_devices:
                drive.device = self.block_devices[drive.id]
            elif drive.interface == "virtio":
                drive.device = "virtio-blk"
        return f


def parse_argv(argv: list[str]) -> Facts:
    """Turn a QEMU command line (binary first, or just options) into :class:`Facts`.

    The arch comes from the binary name (``qemu-system-aarch64`` -> ``aarch64``); without a binary it is
    unknown (``None``). Unknown options are kept in ``Facts.unknown``; malformed values of known options raise
    :class:`~bootlab.errors.UsageError`.
    """
    binary, rest = _strip_prefix(list(argv))
    builder = _Builder()
    builder.facts.binary = binary
    builder.facts.arch = _arch_from_binary(binary) if binary else None
    i = 0
    while i < len(rest):
        token = rest[i]
        i += 1
        if not token.startswith("-") or token == "-":
            builder.option("hda", token)  # QEMU: a bare file name is the first IDE disk
            continue
        name = token.lstrip("-")
        if name in _FLAGS:
            builder.option(name, None)
            continue
        if name in _WITH_ARG:
            if i >= len(rest):
                raise UsageError(f"{token}: missing its value")
            builder.option(name, rest[i])
            i += 1
            continue
        # Unknown option: take the next token as its value unless it is itself an option.
        if i < len(rest) and not rest[i].startswith("-"):
            builder.option(name, rest[i])
            i += 1
        else:
            builder.option(name, None)
    return builder.finish()
