"""A QEMU command line -> the fields of a profile (`bootlab profiles import`).

Each part of the command (see :mod:`bootlab.qemu.parts`) goes to the profile field that makes bootlab's argv
builder write it again: machine and its options, accelerators, cpu, smp, memory, firmware, kernel/initrd/append,
drives, 9p shares, user networking and its forwards. A part goes to a field only when the builder reproduces it
exactly; anything else (an option with no field, a disk with ``cache=none``, an ``e1000`` NIC) is kept verbatim
in ``extra_args``, so nothing the command asked for is lost, and the import lists it. Console and monitor
plumbing are dropped: bootlab brings its own.

What the source leaves to QEMU's defaults (memory, smp, cpu, accelerator) is written into the profile from
``data/qemu_defaults.toml``, because a profile always states them. Paths stay relative when they were (then
relative to bootlab.toml) and firmware that is this host's edk2 file is written by its well-known name, so the
profile means the same file on another host. ``pack`` is guessed from what boots (``data/boot_payloads.toml``).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from bootlab.arch import ARCHES
from bootlab.errors import UsageError
from bootlab.host import Host, firmware_table
from bootlab.profile.model import ACCELS
from bootlab.qemu.argv_parser import split_opts
from bootlab.qemu.defaults import default_cpu, qemu_defaults
from bootlab.qemu.parts import Anatomy, Part, dissect, resolve, rewrite_paths
from bootlab.qemu.size import format_size_mib

__all__ = ["Imported", "extending", "import_commands"]

_HOSTFWD = re.compile(r"(tcp|udp)?:([^:]*):(\d+)-:(\d+)")
_TAG = re.compile(r"[A-Za-z0-9_.-]{1,31}")
_DISK_MODELS = {"virtio-blk-pci": "virtio", "virtio-blk": "virtio", "nvme": "nvme"}


@cache
def _payloads() -> dict[str, Any]:
    return tomllib.loads((resources.files("bootlab.data") / "boot_payloads.toml").read_text(encoding="utf-8"))


@dataclass
class Imported:
    """The profile table an import writes, and what the user should be told about it.

    ``table`` is plain TOML data in the order it is written; ``comments`` holds end-of-line comments by key (and
    ``drives[N]`` for drives); ``kept`` lists the options that went to ``extra_args``; ``replaced`` the options
    bootlab replaces on purpose; ``notes`` everything else worth a line (defaults written, pack guessed, files not
    found here). ``branches`` maps each accelerator to the source command for it when the script picks one.
    """

    arch: str
    table: dict[str, Any]
    comments: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    replaced: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    branches: dict[str, list[str]] = field(default_factory=dict)
    source: list[str] = field(default_factory=list)


def _escape(value: Any) -> Any:
    """Profile strings are templates: a literal brace is written doubled."""
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    return value


def _ids(part: Part) -> set[str]:
    """The ids a part defines (drive, node, fsdev, netdev), which other options may refer to."""
    out: set[str] = set()
    for o in part.options:
        if o.name in ("drive", "fsdev", "netdev", "blockdev"):
            opts = split_opts(o.value or "")
            out |= {v for k, v in opts.items() if k in ("id", "node-name")}
    return out


def _refs(part: Part) -> set[str]:
    """Every value a part's options hold (an id another part defines shows up here when it is referred to)."""
    return {value for o in part.options for value in split_opts(o.value or "").values()}


class _Importer:
    def __init__(self, anatomy: Anatomy, *, root: Path, host: Host, snapshot: bool) -> None:
        self.a = anatomy
        self.root = root
        self.host = host
        self.snapshot = snapshot
        if anatomy.arch is None or anatomy.binary is None:
            raise UsageError(
                "the command does not start with qemu-system-ARCH; give it as "
                "`bootlab profiles import NAME -- qemu-system-aarch64 ARGS...`"
            )
        if anatomy.arch not in ARCHES:
            raise UsageError(
                f"{anatomy.binary}: bootlab profiles run {', '.join(ARCHES)} guests, not {anatomy.arch}; "
                "import a qemu-system-aarch64, -x86_64 or -riscv64 command"
            )
        self.out = Imported(arch=anatomy.arch, table={"arch": anatomy.arch})
        self.raw: list[Part] = []  # parts kept verbatim
        self.mapped: list[Part] = []

    # --- helpers ---------------------------------------------------------------------------------------------------
    def path(self, raw: str, absolute: str) -> str:
        """A path as the profile writes it: relative to bootlab.toml when the source's was relative."""
        if os.path.isabs(os.path.expanduser(raw)):
            return raw
        return os.path.relpath(absolute, self.root)

    def keep(self, part: Part, why: str = "") -> None:
        self.raw.append(part)
        if why:
            self.out.notes.append(f"{part.text}: kept in extra_args ({why})")

    def comment(self, key: str, text: str) -> None:
        self.out.comments[key] = text

    # --- the import ----------------------------------------------------------------------------------------------
    def run(self) -> Imported:
        t = self.out.table
        a = self.a
        defaults = qemu_defaults()
        arch = str(a.arch)
        machine = a.one("machine")
        mtype = machine.value["type"] if machine else (defaults["machine"].get(arch) or None)
        if mtype is None:
            raise UsageError(
                f"the command has no -M/-machine, which qemu-system-{arch} requires; add the machine it runs "
                "(e.g. -M virt) and import again"
            )
        options = machine.value["options"] if machine else {}
        t["machine"] = {"type": mtype, **options} if options else mtype
        if machine is None:
            self.comment("machine", f"not in the source: qemu-system-{arch}'s default machine")
        else:
            self.mapped.append(machine)
        self.accel()
        self.cpu(mtype)
        self.smp_memory()
        self.firmware()
        self.direct_boot()
        self.drives()
        self.shares()
        self.network()
        for part in a.parts:
            if part.kind == "console":
                self.out.replaced.append((part.text, "console and monitor plumbing: bootlab brings its own"))
            elif part.kind == "snapshot":
                if any(p.kind == "disk" for p in self.raw):
                    self.raw.append(part)
            elif part.kind in ("device", "other", "dtb") or (part.kind == "append" and "kernel" not in t):
                self.raw.append(part)
        self.pack()
        self.extra_args()
        self.out.table = _escape(t)
        return self.out

    def accel(self) -> None:
        part = self.a.one("accel")
        names = list(self.a.facts.accel) or [qemu_defaults()["accel"]]
        unknown = [n for n in names if n not in ACCELS]
        if unknown:
            raise UsageError(
                f"-accel {unknown[0]}: bootlab profiles know the accelerators {', '.join(ACCELS)}; "
                "import a command that uses one of them"
            )
        self.out.table["accel"] = names
        if part is None:
            self.comment("accel", "not in the source: QEMU's default accelerator")
            return
        self.mapped.append(part)
        dropped = {n: o for n, o in (part.value.get("options") or {}).items() if o}
        for name, opts in dropped.items():
            shown = ",".join(f"{k}={v}" for k, v in opts.items())
            self.out.notes.append(
                f"-accel {name},{shown}: a profile's accelerator takes no options, so the profile runs -accel "
                f"{name} without {shown} (the check below shows it); QEMU's own defaults apply"
            )

    def cpu(self, mtype: str) -> None:
        part = self.a.one("cpu")
        if part is not None:
            self.out.table["cpu"] = part.value["model"]
            self.mapped.append(part)
            return
        default = default_cpu(self.out.arch, mtype)
        if default is None:
            self.out.notes.append(
                f"cpu: the source gives no -cpu and bootlab does not know QEMU's default cpu for machine {mtype}; "
                "the profile falls back to bootlab's (host under hvf/kvm, max under tcg): set cpu to the model "
                "QEMU picks (`info cpus` in its monitor)"
            )
            return
        self.out.table["cpu"] = default
        self.comment("cpu", f"not in the source: QEMU's default for {mtype}")

    def smp_memory(self) -> None:
        t = self.out.table
        defaults = qemu_defaults()
        smp = self.a.one("smp")
        if smp is None:
            t["smp"] = int(defaults["smp"])
            self.comment("smp", "not in the source: QEMU's default")
        else:
            t["smp"] = smp.value["cpus"]
            (self.raw if smp.value["topology"] else self.mapped).append(smp)
            if smp.value["topology"]:
                self.out.notes.append(f"{smp.text}: the topology has no field; kept in extra_args (QEMU merges it)")
        memory = self.a.one("memory")
        if memory is None or memory.value["mib"] is None:
            t["memory"] = format_size_mib(int(defaults["memory_mib"]))
            self.comment("memory", "not in the source: QEMU's default")
        else:
            t["memory"] = format_size_mib(memory.value["mib"])
        if memory is not None:
            (self.raw if memory.value["options"] else self.mapped).append(memory)

    # --- firmware --------------------------------------------------------------------------------------------------
    def firmware_name(self, absolute: str, *, pflash: bool) -> str | None:
        """The well-known name this host's probe finds for exactly this file, if any."""
        real = os.path.realpath(absolute)
        for name in firmware_table()["names"]:
            found = self.host.find_firmware(name, pflash=pflash)
            if found and os.path.realpath(found) == real:
                return str(name)
        return None

    def firmware_value(self, part: Part, role: str) -> str:
        raw, where = part.value["file"], part.value["path"]
        if "/" not in raw:
            if (self.a.base / raw).is_file():  # QEMU opens a file of that name in its directory first
                return self.path(raw, str(self.a.base / raw))
            if self.host.firmware_for(role, raw) is None:
                self.out.notes.append(f"firmware {raw}: not found on this host (the profile names it all the same)")
            return raw
        name = self.firmware_name(where, pflash=role != "bios")
        if name is not None:
            self.out.notes.append(f"firmware {raw}: this host's {name}, written by that well-known name")
            return name
        if not os.path.exists(where):
            self.out.notes.append(f"firmware {raw}: not found here (the profile names it all the same)")
        return self.path(raw, where)

    def firmware(self) -> None:
        bios = self.a.of("bios")
        pflash = sorted(self.a.of("pflash"), key=lambda p: p.value["unit"])
        if bios:
            self.out.table["firmware"] = {"bios": self.firmware_value(bios[-1], "bios")}
            self.mapped.append(bios[-1])
            self.raw.extend(bios[:-1] + pflash)
            return
        if not pflash:
            return
        units = [p.value["unit"] for p in pflash]
        simple = all(p.value["format"] in (None, "raw") and not p.value["other"] for p in pflash)
        if units not in ([0], [0, 1]) or not simple:
            for p in pflash:
                self.keep(p, "pflash other than code (unit 0) and vars (unit 1), raw, has no field")
            return
        fw = {"code": self.firmware_value(pflash[0], "code")}
        if not pflash[0].value["readonly"]:
            self.out.replaced.append((pflash[0].text, "bootlab runs firmware code read-only"))
        if len(pflash) == 2:
            fw["vars"] = self.firmware_value(pflash[1], "vars")
            if not pflash[1].value["snapshot"]:
                self.out.replaced.append((pflash[1].text, "bootlab runs the vars store on a snapshot"))
        self.out.table["firmware"] = fw
        self.mapped.extend(pflash)

    def direct_boot(self) -> None:
        if self.a.one("kernel") is None:
            self.raw.extend(self.a.of("initrd"))  # QEMU refuses these without -kernel; kept as they are
            return
        for key in ("kernel", "initrd"):
            part = self.a.one(key)
            if part is not None:
                self.out.table[key] = self.path(part.value["file"], part.value["path"])
                self.mapped.append(part)
                if not os.path.exists(part.value["path"]):
                    self.out.notes.append(f"{key} {part.value['file']}: not found here (named all the same)")
        append = self.a.one("append")
        if append is not None and "kernel" in self.out.table:
            self.out.table["append"] = append.value["text"]
            self.mapped.append(append)

    # --- disks, shares, network ------------------------------------------------------------------------------------
    def referenced(self, part: Part) -> bool:
        """True when an option outside ``part`` refers to an id it defines (a filter on its netdev...)."""
        ids = _ids(part)
        return bool(ids) and any(ids & _refs(other) for other in self.a.parts if other is not part)

    def disk_problem(self, part: Part) -> str:
        """Why a disk cannot be a profile drive ("" when it can)."""
        v = part.value
        model = _DISK_MODELS.get(v["model"] or "")
        if v["legacy"] is not None or model is None or v["interface"] not in ("none", "virtio"):
            return "a profile drive is virtio-blk-pci or nvme behind -drive if=none (or if=virtio)"
        other = sorted(k for k, x in v["drive_other"].items() if not (k == "media" and x == "disk"))
        if other:
            return f"drive options {', '.join(other)} have no field"
        if v["device_other"]:
            return f"device properties {', '.join(sorted(v['device_other']))} have no field"
        if not v["file"]:
            return "no file"
        if model == "nvme" and not v["serial"]:
            return "nvme without a serial"
        if self.referenced(part):
            return "another option refers to its id"
        return ""

    def drives(self) -> None:
        disks = self.a.of("disk")
        problems = {id(p): self.disk_problem(p) for p in disks}
        # The builder names its drives disk0, disk1...: a disk kept verbatim must not already use that name.
        taken = {i for p in disks if problems[id(p)] for i in _ids(p)}
        index = 0
        for part in disks:
            if not problems[id(part)] and f"disk{index}" in taken:
                problems[id(part)] = f"an option kept verbatim already uses the id disk{index}"
                taken |= _ids(part)
            elif not problems[id(part)]:
                index += 1
        drives: list[dict[str, Any]] = []
        for part in disks:
            v = part.value
            if problems[id(part)]:
                self.keep(part, problems[id(part)])
                continue
            model = _DISK_MODELS[v["model"]]
            drive: dict[str, Any] = {"file": self.path(v["file"], v["path"])}
            drive["format"] = v["format"] or self.probe_format(v["path"], v["file"])
            drive["interface"] = model
            if v["serial"] and not (model == "nvme" and v["serial"] == f"disk{len(drives)}"):
                drive["serial"] = v["serial"]
            if v["readonly"]:
                drive["readonly"] = True
            elif not v["snapshot"]:
                if self.snapshot:
                    self.out.replaced.append((part.text, "--snapshot: bootlab runs this image on a snapshot"))
                else:
                    drive["persistent"] = True
                    self.comment(
                        f"drives[{len(drives)}]",
                        "the source writes this image (no snapshot): persistent keeps that; remove it to boot "
                        "on a snapshot",
                    )
            if not os.path.exists(v["path"]):
                self.out.notes.append(f"drive {v['file']}: not found here (named all the same)")
            drives.append(drive)
            self.mapped.append(part)
        if drives:
            self.out.table["drives"] = drives

    def probe_format(self, path: str, raw: str) -> str:
        """QEMU probes a drive without format=; bootlab writes the format it would find."""
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
        except OSError:
            self.out.notes.append(f"drive {raw}: no format= and the file is not here to probe; assumed raw")
            return "raw"
        fmt = "qcow2" if head == b"QFI\xfb" else "raw"
        self.out.notes.append(f"drive {raw}: no format=; QEMU probes {fmt}, written as format = {fmt!r}")
        return fmt

    def shares(self) -> None:
        shares: list[dict[str, Any]] = []
        for part in self.a.of("share"):
            v = part.value
            other = {k: x for k, x in v["other"].items() if not (k == "security_model" and x == "none")}
            ok = (
                v["fsdriver"] == "local" and v["other"].get("security_model") == "none" and not other
                and v["driver"] == "virtio-9p-pci" and not v["device_other"] and v["tag"]
                and _TAG.fullmatch(v["tag"]) and not self.referenced(part)
            )  # fmt: skip
            if not ok:
                self.keep(part, "a profile share is local, security_model=none, over virtio-9p-pci")
                continue
            if f"fsdev{len(shares)}" in {i for p in self.a.of("share") if p is not part for i in _ids(p)}:
                self.keep(part, f"another share uses the id fsdev{len(shares)}, which bootlab gives this one")
                continue
            raw_path = next(
                (split_opts(o.value or "", "fsdriver").get("path", "") for o in part.options if o.name != "device"),
                "",
            )
            share: dict[str, Any] = {"path": self.path(raw_path, v["path"]), "tag": v["tag"]}
            if v["readonly"]:
                share["readonly"] = True
            shares.append(share)
            self.mapped.append(part)
        if shares:
            self.out.table["shares"] = shares

    def network(self) -> None:
        nets = self.a.of("net")
        mapped = False
        for part in nets:
            v = part.value
            fwds = [_HOSTFWD.fullmatch(h) for h in v["hostfwd"]]
            clash = "net0" in {i for p in nets if p is not part for i in _ids(p)}
            if (
                mapped or v["type"] != "user" or v["model"] != "virtio-net-pci" or v["other"] or v["device_other"]
                or not all(fwds) or self.referenced(part) or clash
            ):  # fmt: skip
                self.keep(part, "" if mapped else "a profile network is -netdev user (+ hostfwd) over virtio-net-pci")
                continue
            forwards = []
            for m in fwds:
                assert m is not None
                proto, addr, host_port, guest_port = m.groups()
                forwards.append(f"{host_port}:{guest_port}" + ("/udp" if proto == "udp" else ""))
                if addr not in ("127.0.0.1",):
                    self.out.replaced.append(
                        (f"hostfwd={m.group(0)}", "bootlab binds forwarded ports to 127.0.0.1 only")
                    )
            self.out.table["network"] = True
            if forwards:
                self.out.table["forwards"] = forwards
            self.mapped.append(part)
            mapped = True
        for part in self.a.of("nic-none"):
            if mapped or "network" in self.out.table:
                self.raw.append(part)
            else:
                self.out.table["network"] = False
                self.mapped.append(part)

    # --- pack and extra_args ---------------------------------------------------------------------------------------
    def pack(self) -> None:
        t = self.out.table
        packs: list[str] = []
        reasons: list[str] = []
        fw = t.get("firmware") or {}
        fw_file = fw.get("bios") or fw.get("code")
        if fw_file:
            hit = _match(_payloads()["firmware"], os.path.basename(fw_file), None)
            if hit:
                packs.append(hit["pack"])
                reasons.append(f"{hit['what']}: {fw_file}")
        boot: dict[str, Any] | None = None
        kernel = self.a.one("kernel")
        if kernel is not None:
            boot = _match(_payloads()["kernel"], os.path.basename(kernel.value["file"]), kernel.value["path"])
            if boot:
                reasons.append(f"{boot['what']}: {kernel.value['file']}")
        else:
            for disk in self.a.of("disk"):
                boot = _match(_payloads()["disk"], os.path.basename(disk.value["file"]), disk.value["path"])
                if boot:
                    reasons.append(f"{boot['what']}: {disk.value['file']}")
                    break
        if boot and boot["pack"] not in packs:
            packs.append(boot["pack"])
        if packs:
            t["pack"] = packs
            self.out.notes.insert(0, f"pack: {', '.join(packs)} ({'; '.join(reasons)})")
            self.comment("pack", "; ".join(reasons))
        else:
            self.out.notes.insert(
                0, "pack: not set (bootlab could not tell what boots); set pack before `bootlab boot`"
            )

    def extra_args(self) -> None:
        extra: list[str] = []
        for o in sorted((o for part in self.raw for o in part.options), key=lambda o: o.index):
            value = rewrite_paths(o.name, o.value, self._absolute)
            extra += [f"-{o.name}"] + ([] if value is None else [value])
        self.out.kept = [part.text for part in sorted(self.raw, key=lambda p: p.first)]
        if extra:
            self.out.table["extra_args"] = extra
            self.comment("extra_args", "no profile field for these: kept as written (paths made absolute)")

    def _absolute(self, path: str) -> str:
        return path if os.path.isabs(path) else resolve(path, self.a.base)


def _match(hints: list[dict[str, Any]], name: str, path: str | None) -> dict[str, Any] | None:
    """The first hint that matches a file by magic bytes (when it is here) or by name."""
    for hint in hints:
        if "name" in hint and re.search(hint["name"], name):
            return hint
        if path is None:
            continue
        try:
            if "magic" in hint:
                with open(path, "rb") as fh:
                    fh.seek(int(hint["magic"]["offset"]))
                    want = hint["magic"]["bytes"].encode("latin-1")
                    if fh.read(len(want)) == want:
                        return hint
            if "search" in hint:
                with open(path, "rb") as fh:
                    data = fh.read(int(hint["search"]["within_mib"]) << 20)
                if hint["search"]["bytes"].encode("latin-1") in data:
                    return hint
        except OSError:
            continue
    return None


def _without(anatomy: Anatomy, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(p.kind, repr(p.value)) for p in anatomy.parts if p.kind not in kinds]


def import_commands(
    commands: list[list[str]], *, base: Path | list[Path], root: Path, host: Host, snapshot: bool = False
) -> Imported:
    """Import one command, or the commands a script runs on different hosts (one per accelerator it picks).

    Several commands that differ only in accelerator and cpu become one profile with an accelerator list and a
    per-accelerator cpu table; otherwise the first command is imported and the others are named in a note.
    """
    bases = base if isinstance(base, list) else [base] * len(commands)
    anatomies = [dissect(argv, b) for argv, b in zip(commands, bases, strict=True)]
    first = anatomies[0]
    out = _Importer(first, root=root, host=host, snapshot=snapshot).run()
    out.source = list(commands[0])
    if len(anatomies) == 1:
        return out
    same = all(_without(a, ("accel", "cpu")) == _without(first, ("accel", "cpu")) for a in anatomies[1:])
    accels = [a.facts.accel[0] if a.facts.accel else qemu_defaults()["accel"] for a in anatomies]
    if not same or len(set(accels)) != len(accels):
        out.notes.append(
            f"the script runs {len(commands)} different command lines depending on things bootlab does not run; "
            "imported the first (see `via` above); choose another with --mode or --env"
        )
        return out
    cpus = [str(cpu.value["model"]) if (cpu := a.one("cpu")) else out.table.get("cpu") for a in anatomies]
    out.table["accel"] = accels
    out.comments.pop("accel", None)
    if len(set(cpus)) > 1 and all(cpus):
        out.table["cpu"] = _escape(dict(zip(accels, cpus, strict=True)))
    out.branches = dict(zip(accels, commands, strict=True))
    out.notes.append(
        f"accel: the script picks the accelerator by host ({', '.join(accels)}); bootlab takes the first usable "
        "one in that order, with the cpu the script used for it"
    )
    return out


def extending(imported: Imported, parent: str, base: dict[str, Any]) -> None:
    """Reduce ``imported`` to ``extends = parent`` and the keys whose value differs from ``base`` (the parent's
    merged raw table): how each mode of a multi-mode script becomes a small profile over a shared one.

    Keys the import does not decide (pack, timeouts, vars, fallback...) are inherited from the parent. A key the
    parent sets and the import does not (a share, a firmware) cannot be unset in TOML: the exactness check
    shows it.
    """

    def norm(key: str, value: Any) -> Any:
        return {"type": value} if key == "machine" and isinstance(value, str) else value

    table: dict[str, Any] = {"extends": parent}
    for key, value in imported.table.items():
        if key == "pack" and "pack" in base:
            continue  # the parent's packs were chosen by hand; a guess does not override them
        if key in base and norm(key, base[key]) == norm(key, value):
            imported.comments.pop(key, None)
            continue
        table[key] = value
    imported.table = table
    imported.notes.append(f"extends {parent}: wrote only the keys that differ ({', '.join(list(table)[1:]) or 'none'})")
