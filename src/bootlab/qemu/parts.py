"""A QEMU command line as the parts of the machine it builds, each with the options that make it.

`bootlab lint` reads a command line as facts (:mod:`bootlab.qemu.argv_parser`). `bootlab profiles import` and its
exactness check need more: *which* options make each part (a disk is a ``-drive`` and the ``-device`` that
attaches it; a 9p share is a ``-fsdev`` and its ``virtio-9p`` device; user networking is a ``-netdev`` and its
NIC), what each part means whatever its spelling (ids, key order, ``-machine`` or ``-M``, relative or absolute
paths), and which options are console plumbing that bootlab replaces on purpose. Tokenising and validating the
command line stay :func:`~bootlab.qemu.argv_parser.parse_argv`'s job: this module only groups its options.
"""

from __future__ import annotations

import os
import shlex
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from bootlab.qemu.argv_parser import Facts, parse_argv, parse_bool, parse_size_mb, split_opts, split_opts_list

__all__ = ["Anatomy", "Option", "Part", "dissect", "option_table", "rewrite_paths"]


@cache
def option_table() -> dict[str, Any]:
    """``data/qemu_options.toml``: path-valued options, console plumbing, what a profile drive reproduces."""
    return tomllib.loads((resources.files("bootlab.data") / "qemu_options.toml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Option:
    """One option of the command line as parse_argv tokenised it (``name`` without dashes)."""

    index: int
    name: str
    value: str | None

    @property
    def words(self) -> list[str]:
        return [f"-{self.name}"] + ([] if self.value is None else [self.value])

    @property
    def text(self) -> str:
        return shlex.join(self.words)


@dataclass
class Part:
    """One part of the machine (``kind``: machine, accel, cpu, smp, memory, bios, pflash, kernel, initrd, append,
    dtb, disk, share, net, nic-none, snapshot, device, console, other) and the options that make it."""

    kind: str
    options: list[Option]
    value: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(o.text for o in self.options)

    @property
    def first(self) -> int:
        return min(o.index for o in self.options) if self.options else -1


@dataclass
class Anatomy:
    """A command line taken apart. ``base`` is the directory its relative paths are relative to."""

    binary: str | None
    arch: str | None
    facts: Facts
    parts: list[Part]
    base: Path

    def of(self, kind: str) -> list[Part]:
        return [p for p in self.parts if p.kind == kind]

    def one(self, kind: str) -> Part | None:
        found = self.of(kind)
        return found[0] if found else None

    def options_named(self, name: str) -> list[Option]:
        """Every option called ``name`` (``-L``), whatever part it went to."""
        return [o for p in self.parts for o in p.options if o.name == name and o.value is not None]


def resolve(value: str, base: Path) -> str:
    """An absolute spelling of a path as QEMU, started in ``base``, would open it (lexically; no symlinks)."""
    return os.path.normpath(os.path.join(base, os.path.expanduser(value)))


def _segments(value: str) -> list[str]:
    """The raw ``key=value`` segments of a QEMU option value (``,,`` kept escaped)."""
    out: list[str] = []
    buf = ""
    i = 0
    while i < len(value):
        if value[i] == ",":
            if value[i + 1 : i + 2] == ",":
                buf += ",,"
                i += 2
                continue
            out.append(buf)
            buf = ""
        else:
            buf += value[i]
        i += 1
    out.append(buf)
    return out


def rewrite_paths(name: str, value: str | None, fn: Any) -> str | None:
    """``value`` of option ``-name`` with each file path it holds replaced by ``fn(path)``, the rest untouched.

    Used to absolutise the paths of options kept verbatim in ``extra_args`` (which bootlab never rewrites), and to
    compare options by the files they name rather than by spelling.
    """
    if value is None:
        return None
    table = option_table()
    if name in table["path_options"]:
        return str(fn(value)) if value and not value.startswith(("/dev/fd", "fd:")) else value
    keys = table["path_keys"].get(name)
    if not keys:
        return value
    segments = _segments(value)
    for i, seg in enumerate(segments):
        key, eq, val = seg.partition("=")
        if eq and key in keys and val:
            segments[i] = f"{key}={str(fn(val.replace(',,', ','))).replace(',', ',,')}"
    return ",".join(segments)


def _chardev_ref(name: str, value: str) -> str | None:
    """The chardev id a plumbing option names (`-serial chardev:ID`, `-mon chardev=ID`), if any."""
    if name in ("serial", "monitor", "qmp", "qmp-pretty") and value.startswith("chardev:"):
        return value.split(":", 1)[1]
    if name == "mon":
        return split_opts(value, "chardev").get("chardev")
    return None


def _flag(opts: dict[str, str], key: str, what: str) -> bool:
    return parse_bool(opts[key], what=what) if key in opts else False


class _Dissector:
    def __init__(self, options: list[Option], facts: Facts, base: Path) -> None:
        self.options = options
        self.facts = facts
        self.base = base
        self.parts: list[Part] = []
        self.drive_ids: dict[str, Part] = {}
        self.fsdev_ids: dict[str, Part] = {}
        self.netdev_ids: dict[str, Part] = {}
        self.pflash_units: set[int] = set()

    def add(self, kind: str, option: Option, **value: Any) -> Part:
        part = Part(kind, [option], value)
        self.parts.append(part)
        return part

    def path(self, value: str) -> str:
        return resolve(value, self.base)

    def run(self) -> list[Part]:
        table = option_table()
        plumbing_ids = {
            ref for o in self.options if o.value is not None and (ref := _chardev_ref(o.name, o.value)) is not None
        }
        # Options QEMU merges into one setting, whichever number of times they are given.
        merged: dict[str, Part] = {}
        kinds = {"M": "machine", "machine": "machine", "accel": "accel", "enable-kvm": "accel", "cpu": "cpu",
                 "smp": "smp", "m": "memory"}  # fmt: skip
        devices: list[Option] = []
        for o in self.options:
            name, value = o.name, o.value or ""
            if name in kinds:
                kind = kinds[name]
                if kind in merged:
                    merged[kind].options.append(o)
                else:
                    merged[kind] = self.add(kind, o)
            elif name == "bios":
                self.add("bios", o, file=value, path=self.path(value) if "/" in value else value)
            elif name == "pflash":
                self._pflash(o, {"file": value})
            elif name in ("kernel", "initrd", "dtb"):
                self.add(name, o, file=value, path=self.path(value))
            elif name == "append":
                self.add("append", o, text=value)
            elif name == "drive":
                opts = split_opts(value)
                if opts.get("if") == "pflash":
                    self._pflash(o, opts)
                else:
                    self._drive(o, opts)
            elif name == "blockdev":
                self._blockdev(o, value)
            elif name in ("hda", "hdb", "hdc", "hdd", "cdrom", "fda", "fdb", "sd", "mtdblock"):
                self.add("disk", o, file=value, path=self.path(value), legacy=name, format=None,
                         interface=None, model=None, readonly=name == "cdrom", snapshot=False,
                         drive_other={}, device_other={}, serial=None)  # fmt: skip
            elif name == "snapshot":
                self.add("snapshot", o)
            elif name in ("fsdev", "virtfs"):
                self._fsdev(o, value)
            elif name == "netdev":
                opts_list = split_opts_list(value, "type")
                part = self.add("net", o, **_net_value(opts_list))
                netdev_id = dict(opts_list).get("id")
                if netdev_id:
                    self.netdev_ids[netdev_id] = part
            elif name in ("nic", "net") and value.split(",", 1)[0] == "none":
                self.add("nic-none", o)
            elif name == "nic":
                opts_list = split_opts_list(value, "type")
                net = _net_value(opts_list)
                net["model"] = dict(opts_list).get("model")
                self.add("net", o, **net)
            elif name == "device":
                devices.append(o)
            elif name in table["plumbing"] or (
                name == "chardev" and split_opts(value, "backend").get("id") in plumbing_ids
            ):
                self.add("console", o)
            else:
                self.add("other", o, name=name, value=o.value)
        for o in devices:
            self._device(o)
        self._fold_scalars(merged)
        if self.facts.snapshot:
            for part in self.parts:
                if part.kind in ("disk", "pflash"):
                    part.value["snapshot"] = True
        self.parts.sort(key=lambda p: p.first)
        return self.parts

    # --- scalars ------------------------------------------------------------------------------------------------
    def _fold_scalars(self, merged: dict[str, Part]) -> None:
        """The meaning of the merged options, as parse_argv's facts give it (QEMU's own merge rules)."""
        f = self.facts
        if "machine" in merged:
            merged["machine"].value = {"type": f.machine_type, "options": dict(f.machine_options)}
        if "accel" not in merged and f.accel != ["tcg"]:  # only `-M accel=...`: the machine option carries it
            merged["accel"] = Part("accel", [], {})
            self.parts.append(merged["accel"])
        if "accel" in merged:
            merged["accel"].value = {"names": list(f.accel), "options": {k: v for k, v in f.accel_options.items() if v}}
        if "cpu" in merged:
            merged["cpu"].value = {"model": merged["cpu"].options[-1].value or ""}
        if "smp" in merged:
            merged["smp"].value = {"cpus": f.smp, "topology": {k: v for k, v in f.smp_options.items() if k != "cpus"}}
        if "memory" in merged:
            opts: dict[str, str] = {}
            for o in merged["memory"].options:
                opts.update(split_opts(o.value or "", "size"))
            size = opts.pop("size", None)
            merged["memory"].value = {"mib": parse_size_mb(size, what="-m") if size else None, "options": opts}

    # --- firmware and disks -------------------------------------------------------------------------------------
    def _pflash(self, o: Option, opts: dict[str, str]) -> None:
        if "unit" in opts:
            unit = int(opts["unit"])
        else:
            unit = 0
            while unit in self.pflash_units:
                unit += 1
        self.pflash_units.add(unit)
        file = opts.get("file", "")
        other = {k: v for k, v in opts.items() if k not in ("if", "unit", "file", "format", "readonly", "snapshot")}
        self.add("pflash", o, unit=unit, file=file, path=self.path(file) if "/" in file else file,
                 format=opts.get("format"), readonly=_flag(opts, "readonly", "-drive readonly"),
                 snapshot=_flag(opts, "snapshot", "-drive snapshot"), other=other)  # fmt: skip

    def _drive(self, o: Option, opts: dict[str, str]) -> None:
        known = ("file", "format", "if", "id", "readonly", "snapshot")
        file = opts.get("file", "")
        part = self.add(
            "disk", o, file=file, path=self.path(file) if file else "", legacy=None, format=opts.get("format"),
            interface=opts.get("if"), model="virtio-blk-pci" if opts.get("if") == "virtio" else None,
            readonly=_flag(opts, "readonly", "-drive readonly") or opts.get("media") == "cdrom",
            snapshot=_flag(opts, "snapshot", "-drive snapshot"),
            drive_other={k: v for k, v in opts.items() if k not in known}, device_other={}, serial=None,
        )  # fmt: skip
        if "id" in opts:
            self.drive_ids[opts["id"]] = part

    def _blockdev(self, o: Option, value: str) -> None:
        opts = {} if value.lstrip().startswith("{") else split_opts(value)
        child = self.drive_ids.get(opts.get("file", ""))
        if child is not None and child.value.get("legacy") == "blockdev":
            child.options.append(o)  # a format node over a protocol node: one disk
            child.value["format"] = opts.get("driver")
            if "node-name" in opts:
                self.drive_ids[opts["node-name"]] = child
            return
        file = opts.get("filename") or opts.get("file") or ""
        part = self.add("disk", o, file=file, path=self.path(file) if file else "", legacy="blockdev",
                        format=opts.get("driver"), interface="none", model=None,
                        readonly=_flag(opts, "read-only", "-blockdev read-only"), snapshot=False,
                        drive_other={"blockdev": value}, device_other={}, serial=None)  # fmt: skip
        if "node-name" in opts:
            self.drive_ids[opts["node-name"]] = part

    def _fsdev(self, o: Option, value: str) -> None:
        opts = split_opts(value, "fsdriver")
        other = {k: v for k, v in opts.items() if k not in ("fsdriver", "id", "path", "readonly", "mount_tag")}
        part = self.add("share", o, fsdriver=opts.get("fsdriver"), path=self.path(opts.get("path", "")),
                        tag=opts.get("mount_tag"), readonly=_flag(opts, "readonly", f"-{o.name} readonly"),
                        other=other, driver="virtio-9p-pci" if o.name == "virtfs" else None,
                        device_other={})  # fmt: skip
        if o.name == "fsdev" and "id" in opts:
            self.fsdev_ids[opts["id"]] = part

    def _device(self, o: Option) -> None:
        opts = split_opts(o.value or "", "driver")
        driver = opts.get("driver", "")
        drive, fsdev, netdev = (self.drive_ids.get(opts.get("drive", "")), self.fsdev_ids.get(opts.get("fsdev", "")),
                                self.netdev_ids.get(opts.get("netdev", "")))  # fmt: skip
        if drive is not None and drive.value["model"] is None and drive.value["interface"] in ("none", None):
            drive.options.append(o)
            drive.value["model"] = driver
            drive.value["serial"] = opts.get("serial")
            drive.value["device_other"] = {
                k: v for k, v in opts.items() if k not in ("driver", "drive", "id", "serial")
            }
        elif fsdev is not None and fsdev.value["driver"] is None and driver.startswith("virtio-9p"):
            fsdev.options.append(o)
            fsdev.value["driver"] = driver
            fsdev.value["tag"] = opts.get("mount_tag")
            fsdev.value["device_other"] = {k: v for k, v in opts.items() if k not in ("driver", "fsdev", "id",
                                                                                      "mount_tag")}  # fmt: skip
        elif netdev is not None and netdev.value["model"] is None:
            netdev.options.append(o)
            netdev.value["model"] = driver
            netdev.value["device_other"] = {k: v for k, v in opts.items() if k not in ("driver", "netdev", "id")}
        else:
            self.add("device", o, driver=driver, props={k: v for k, v in opts.items() if k != "driver"})


def _net_value(opts_list: list[tuple[str, str]]) -> dict[str, Any]:
    opts = dict(opts_list)
    return {
        "type": opts.get("type"),
        "model": None,
        "hostfwd": [v for k, v in opts_list if k == "hostfwd"],
        "other": {k: v for k, v in opts.items() if k not in ("type", "id", "hostfwd", "model")},
        "device_other": {},
    }


def dissect(argv: list[str], base: Path) -> Anatomy:
    """Take ``argv`` (binary first) apart. Malformed values of known options raise a one-line UsageError."""
    facts = parse_argv(argv)
    options = [Option(i, name, value) for i, (name, value) in enumerate(facts.options)]
    parts = _Dissector(options, facts, base).run()
    return Anatomy(binary=facts.binary, arch=facts.arch, facts=facts, parts=parts, base=base)
