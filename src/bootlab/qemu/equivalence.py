"""Do two QEMU command lines build the same machine? Option by option, with the reason for every difference.

`bootlab profiles import` proves its work with this: it builds the imported profile's argv with bootlab's own
builder and compares it with the source command. Both are taken apart into parts (:mod:`bootlab.qemu.parts`) and
matched part by part. Each row of the result is one of:

- ``same``: written identically;
- ``equal``: written differently, same meaning (``-machine virt`` and ``-M virt``, ``-m 2048`` and ``-m 2G``, a
  relative and an absolute path to one file, ``if=virtio`` and ``if=none`` + ``-device virtio-blk-pci``, an
  option left to QEMU's default and the default written out);
- ``replaced``: what bootlab changes on purpose: console and monitor plumbing, a snapshot overlay on a disk the
  source wrote (unless the profile says ``persistent``), read-only firmware code and a snapshot on its vars store,
  forwarded ports bound to 127.0.0.1;
- ``differs``: anything else. The two command lines are *exact* when no row differs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootlab.qemu.argv_parser import split_opts
from bootlab.qemu.defaults import default_cpu, qemu_defaults
from bootlab.qemu.parts import Anatomy, Part, dissect, resolve, rewrite_paths

__all__ = ["Comparison", "Row", "compare"]

_DISK_MODEL = {"virtio-blk": "virtio-blk-pci"}


@dataclass
class Row:
    status: str  # same | equal | replaced | differs
    source: str
    profile: str
    note: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"status": self.status, "source": self.source, "profile": self.profile, "note": self.note}


@dataclass
class Comparison:
    rows: list[Row] = field(default_factory=list)
    order: str = ""  # set when devices are created in another order (bus addresses may differ)

    @property
    def exact(self) -> bool:
        return not any(r.status == "differs" for r in self.rows)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"exact": self.exact, "rows": [r.to_dict() for r in self.rows], "order": self.order or None}


@dataclass
class _Side:
    anatomy: Anatomy
    firmware: Callable[[str, bool], str | None]
    datadirs: list[Path] = field(default_factory=list)

    def real(self, value: str) -> str:
        """The file a path names, for comparing (symlinks resolved, relative to the side's directory)."""
        return os.path.realpath(resolve(value, self.anatomy.base))

    def fw(self, value: str, pflash: bool) -> str:
        """A firmware file: a path, or a bare name. QEMU looks a bare name up in its directory, then in its -L
        and data directories; a name QEMU does not find here is a well-known name bootlab's probe resolves."""
        if "/" not in value:
            dirs = [
                self.anatomy.base,
                *(Path(resolve(o.value or "", self.anatomy.base)) for o in self.anatomy.options_named("L")),
                *self.datadirs,
            ]
            for directory in dirs:
                if (directory / value).is_file():
                    return os.path.realpath(directory / value)
            found = self.firmware(value, pflash)
            return os.path.realpath(found) if found else value
        return self.real(value)


class _Matcher:
    def __init__(self, src: _Side, out: _Side, defaults: dict[str, Any], usable: list[str]) -> None:
        self.src = src
        self.out = out
        self.defaults = defaults
        self.usable = usable
        self.result = Comparison()
        self.partner: dict[int, Part] = {}  # id(source part) -> profile part, for the order check

    def row(self, status: str, s: Part | str | None, p: Part | str | None, note: str = "") -> None:
        def text(x: Part | str | None) -> str:
            return x.text if isinstance(x, Part) else (x or "")

        if status == "equal" and isinstance(s, Part) and isinstance(p, Part) and s.text == p.text:
            status, note = "same", ""
        self.result.rows.append(Row(status, text(s), text(p), note))

    def pair(self, s: Part | None, p: Part | None, equal: bool, note: str = "", why: str = "") -> None:
        if s is not None and p is not None:
            self.partner[id(s)] = p
        self.row("equal" if equal else "differs", s, p, note if equal else why)

    # --- one-of-a-kind parts ---------------------------------------------------------------------------------------
    def scalars(self) -> None:
        a, b = self.src.anatomy, self.out.anatomy
        arch = a.arch or ""
        s, p = a.one("machine"), b.one("machine")
        sm = s.value if s else {"type": self.defaults["machine"].get(arch) or None, "options": {}}
        pm = p.value if p else {"type": None, "options": {}}
        in_machine = bool(s and any("accel=" in (o.value or "") for o in s.options))
        note = "" if s else "QEMU's default machine, written out"
        self.pair(s, p, sm == pm, "its accel= is the -accel below" if in_machine else note, "another machine")
        self.accel()
        self.cpu(sm["type"])
        s, p = a.one("smp"), b.one("smp")
        ss = s.value if s else {"cpus": int(self.defaults["smp"]), "topology": {}}
        ps = p.value if p else {"cpus": int(self.defaults["smp"]), "topology": {}}
        if s or p:
            note = "QEMU merges repeated -smp" if p and len(p.options) > 1 else ""
            self.pair(s, p, ss == ps, note if s else "QEMU's default, written out", "another CPU count or topology")
        s, p = a.one("memory"), b.one("memory")
        default = {"mib": int(self.defaults["memory_mib"]), "options": {}}
        sv = {**default, **{k: v for k, v in (s.value if s else {}).items() if v is not None}}
        pv = {**default, **{k: v for k, v in (p.value if p else {}).items() if v is not None}}
        if s or p:
            note = f"{sv['mib']} MiB either way" if s else "QEMU's default, written out"
            self.pair(s, p, sv == pv, note, "another memory size")
        for kind in ("kernel", "initrd", "dtb"):
            s, p = a.one(kind), b.one(kind)
            if s or p:
                same = bool(s and p and self.src.real(s.value["file"]) == self.out.real(p.value["file"]))
                self.pair(s, p, same, "the same file", f"another {kind}" if s and p else f"{kind} missing")
        s, p = a.one("append"), b.one("append")
        if s or p:
            self.pair(s, p, bool(s and p and s.value == p.value), "", "another kernel command line")
        sb, pb = a.of("bios"), b.of("bios")
        s, p = (sb[-1] if sb else None), (pb[-1] if pb else None)
        if s or p:
            same = bool(s and p and self.src.fw(s.value["file"], False) == self.out.fw(p.value["file"], False))
            self.pair(s, p, same, "the same firmware file", "another firmware file")

    def accel(self) -> None:
        s, p = self.src.anatomy.one("accel"), self.out.anatomy.one("accel")
        names = list(self.src.anatomy.facts.accel)
        chosen = next((n for n in names if n in self.usable), names[0] if names else "tcg")
        got = list(self.out.anatomy.facts.accel)
        s_opts = s.value.get("options", {}) if s else {}
        p_opts = p.value.get("options", {}) if p else {}
        equal = got == [chosen] and s_opts.get(chosen, {}) == p_opts.get(chosen, {})
        if s and not s.options:
            note = f"-M accel={':'.join(names)}: QEMU takes the first that works: {chosen} here"
        elif not s:
            note = "QEMU's default accelerator, written out"
        elif len(names) > 1:
            note = f"QEMU takes the first that works: {chosen} here"
        else:
            note = "the same accelerator"
        why = "accelerator options have no profile field" if got == [chosen] else "another accelerator"
        self.pair(s, p, equal, note, why)

    def cpu(self, machine: str | None) -> None:
        s, p = self.src.anatomy.one("cpu"), self.out.anatomy.one("cpu")
        arch = self.src.anatomy.arch or ""
        model = s.value["model"] if s else default_cpu(arch, machine)
        got = p.value["model"] if p else default_cpu(arch, machine)
        equal = model is not None and got is not None and split_opts(model, "model") == split_opts(got, "model")
        self.pair(s, p, equal, "" if s else f"QEMU's default for {machine}, written out", "another cpu")

    # --- firmware, disks, shares, networks ----------------------------------------------------------------------
    def pflash(self) -> None:
        src = {p.value["unit"]: p for p in self.src.anatomy.of("pflash")}
        out = {p.value["unit"]: p for p in self.out.anatomy.of("pflash")}
        for unit in sorted(set(src) | set(out)):
            s, p = src.get(unit), out.get(unit)
            if s is None or p is None:
                self.pair(s, p, False, why=f"pflash unit {unit} only on one side")
                continue
            sv, pv = s.value, p.value
            if self.src.fw(sv["file"], True) != self.out.fw(pv["file"], True):
                self.pair(s, p, False, why="another firmware file")
                continue
            if (sv["format"] or "raw") != (pv["format"] or "raw") or sv["other"] != pv["other"]:
                self.pair(s, p, False, why="other pflash options")
                continue
            replaced = []
            if pv["readonly"] and not sv["readonly"]:
                replaced.append("code read-only" if unit == 0 else "read-only")
            if pv["snapshot"] and not sv["snapshot"]:
                replaced.append("the vars store on a snapshot (your file is never written)")
            if (sv["readonly"] and not pv["readonly"]) or (
                sv["snapshot"] and not pv["snapshot"] and not pv["readonly"]
            ):
                self.pair(s, p, False, why="the profile writes firmware the source did not")
            elif replaced:
                self.partner[id(s)] = p
                self.row("replaced", s, p, "bootlab runs firmware " + " and ".join(replaced))
            else:
                self.pair(s, p, True, "the same firmware file")

    def disks(self) -> None:
        out = list(self.out.anatomy.of("disk"))
        for s in self.src.anatomy.of("disk"):
            key = self.src.real(s.value["file"]) if s.value["file"] else s.text
            p = next((x for x in out if (self.out.real(x.value["file"]) if x.value["file"] else x.text) == key), None)
            if p is None:
                self.row("differs", s, None, "this disk is not in the profile")
                continue
            out.remove(p)
            self.disk(s, p)
        for p in out:
            self.row("differs", None, p, "this disk is not in the source")

    def disk(self, s: Part, p: Part) -> None:
        sv, pv = s.value, p.value

        def model(v: dict[str, Any]) -> Any:
            return (_DISK_MODEL.get(v["model"], v["model"]), v["legacy"], None if v["model"] else v["interface"])

        fmt_note = ""
        s_fmt, p_fmt = sv["format"], pv["format"]
        if s_fmt is None and p_fmt is not None:
            s_fmt = _probe(self.src.real(sv["file"]))
            fmt_note = f"; QEMU probes the format: {s_fmt}"
        checks = [
            (model(sv) == model(pv), "another disk model or interface"),
            (s_fmt == p_fmt, "another format"),
            (sv["readonly"] == pv["readonly"], "read-only on one side only"),
            (sv["serial"] == pv["serial"], "another serial number"),
            (sv["drive_other"] == pv["drive_other"] and sv["device_other"] == pv["device_other"], "other options"),
            (not (sv["snapshot"] and not pv["snapshot"] and not pv["readonly"]), "the profile writes this image"),
        ]
        failed = [why for ok, why in checks if not ok]
        if failed:
            self.pair(s, p, False, why="; ".join(failed))
        elif pv["snapshot"] and not sv["snapshot"] and not sv["readonly"]:
            self.partner[id(s)] = p
            self.row("replaced", s, p, "bootlab runs this image on a snapshot (profile not persistent)" + fmt_note)
        else:
            note = "the same disk" + (" (if=virtio is virtio-blk-pci)" if sv["interface"] == "virtio" else "")
            self.pair(s, p, True, note + fmt_note)

    def shares(self) -> None:
        out = {p.value["tag"]: p for p in self.out.anatomy.of("share")}
        for s in self.src.anatomy.of("share"):
            p = out.pop(s.value["tag"], None)
            if p is None:
                self.row("differs", s, None, "this share is not in the profile")
                continue
            sv, pv = dict(s.value), dict(p.value)
            same_path = self.src.real(sv.pop("path")) == self.out.real(pv.pop("path"))
            self.pair(s, p, same_path and sv == pv, "the same share", "another path or other options")
        for p in out.values():
            self.row("differs", None, p, "this share is not in the source")

    def networks(self) -> None:
        out = list(self.out.anatomy.of("net"))
        for s in self.src.anatomy.of("net"):
            p = next(
                (x for x in out if (x.value["type"], x.value["model"]) == (s.value["type"], s.value["model"])), None
            )
            if p is None:
                self.row("differs", s, None, "this network is not in the profile")
                continue
            out.remove(p)
            sv, pv = dict(s.value), dict(p.value)
            s_fwd, p_fwd = [_fwd(f) for f in sv.pop("hostfwd")], [_fwd(f) for f in pv.pop("hostfwd")]
            if sv != pv or [f[1:] for f in s_fwd] != [f[1:] for f in p_fwd]:
                self.pair(s, p, False, why="another network or other forwards")
            elif [f[0] for f in s_fwd] != [f[0] for f in p_fwd] and all(f[0] == "127.0.0.1" for f in p_fwd):
                self.partner[id(s)] = p
                self.row("replaced", s, p, "bootlab binds forwarded ports to 127.0.0.1 only")
            else:
                self.pair(s, p, [f[0] for f in s_fwd] == [f[0] for f in p_fwd], "the same network", "another address")
        for p in out:
            self.row("differs", None, p, "this network is not in the source")
        s_none, p_none = self.src.anatomy.of("nic-none"), self.out.anatomy.of("nic-none")
        for s, p in zip(s_none, p_none, strict=False):
            self.pair(s, p, True, "no default NIC")
        for s in s_none[len(p_none) :]:
            self.row("differs", s, None, "the profile keeps QEMU's default NIC")
        for p in p_none[len(s_none) :]:
            self.row("differs", None, p, "the source has QEMU's default NIC")

    # --- everything else ----------------------------------------------------------------------------------------
    def verbatim(self) -> None:
        """Devices and other options: matched by meaning (paths compared as files), then by option name."""

        def key(side: _Side, part: Part) -> tuple[str, ...]:
            return tuple(
                f"{o.name}={rewrite_paths(o.name, o.value, side.real) if o.value is not None else ''}"
                for o in part.options
            )

        out = [p for p in self.out.anatomy.parts if p.kind in ("device", "other")]
        for s in (p for p in self.src.anatomy.parts if p.kind in ("device", "other")):
            k = key(self.src, s)
            p = next((x for x in out if key(self.out, x) == k), None)
            if p is not None:
                out.remove(p)
                self.pair(s, p, True, "the same file" if s.text != p.text else "")
                continue
            name = s.options[0].name
            p = next((x for x in out if x.options[0].name == name and x.value.get("driver") == s.value.get("driver")),
                     None)  # fmt: skip
            if p is not None:
                out.remove(p)
                self.pair(s, p, False, why="other values")
            else:
                self.row("differs", s, None, "not in the profile")
        for p in out:
            self.row("differs", None, p, "not in the source")

    def snapshot(self) -> None:
        """``-snapshot`` is folded into every disk (compared there); here only the option itself."""
        s, p = self.src.anatomy.one("snapshot"), self.out.anatomy.one("snapshot")
        if s and p:
            self.pair(s, p, True)
        elif s:
            self.row("equal", s, None, "every disk runs on a snapshot: the profile's drives say so each")
        elif p:
            self.row("differs", None, p, "the profile adds -snapshot")

    def plumbing(self) -> None:
        src = self.src.anatomy.of("console")
        out = self.out.anatomy.of("console")
        if src or out:
            self.row("replaced", " ".join(p.text for p in src) or "(QEMU's default display and serial)",
                     " ".join(p.text for p in out), "console and monitor plumbing: bootlab brings its own")  # fmt: skip

    def binary(self) -> None:
        s, p = self.src.anatomy.binary or "", self.out.anatomy.binary or ""
        if s == p:
            self.row("same", s, p)
            return
        s_path = shutil.which(s) if "/" not in s else s
        p_path = shutil.which(p) if "/" not in p else p
        if s_path and p_path and os.path.realpath(s_path) == os.path.realpath(p_path):
            self.row("equal", s, p, f"the same binary ({p_path})")
        elif os.path.basename(s) == os.path.basename(p):
            self.row(
                "differs",
                s,
                p,
                f"bootlab runs {p} from PATH ({p_path or 'not found'}): put {os.path.dirname(s)} first on PATH",
            )
        else:
            self.row("differs", s, p, "another QEMU binary")

    def order(self) -> None:
        """Devices are created in command-line order, which decides their bus addresses: say when it changed."""
        kinds = ("disk", "share", "net", "device")
        src = [p for p in self.src.anatomy.parts if p.kind in kinds and id(p) in self.partner]
        mapped = [self.partner[id(p)] for p in src]
        positions = [_device_index(p) for p in mapped]
        if positions != sorted(positions):
            s_names = ", ".join(_label(p) for p in sorted(src, key=_device_index))
            p_names = ", ".join(_label(p) for p in sorted(mapped, key=_device_index))
            self.result.order = (
                f"devices are created in another order (source: {s_names}; profile: {p_names}): their PCI "
                "addresses may differ, which the guest can see"
            )

    def run(self) -> Comparison:
        self.binary()
        self.scalars()
        self.pflash()
        self.disks()
        self.shares()
        self.networks()
        self.verbatim()
        self.snapshot()
        self.plumbing()
        self.order()
        return self.result


def _device_index(part: Part) -> int:
    """Where a part's device is created: its -device option (else its first option)."""
    devices = [o.index for o in part.options if o.name in ("device", "nic")]
    if part.kind == "disk" and part.value.get("interface") == "virtio":
        devices = [part.first]
    return devices[0] if devices else part.first


def _label(part: Part) -> str:
    v = part.value
    return str(v.get("model") or v.get("driver") or v.get("legacy") or v.get("interface") or part.kind)


def _fwd(text: str) -> tuple[str, ...]:
    """``tcp:ADDR:HOSTPORT-GUESTADDR:GUESTPORT`` -> (addr, proto, hostport, guestaddr, guestport)."""
    proto, _, rest = text.partition(":")
    addr, _, rest = rest.partition(":")
    host_port, _, guest = rest.partition("-")
    guest_addr, _, guest_port = guest.rpartition(":")
    return (addr or "0.0.0.0", proto or "tcp", host_port, guest_addr, guest_port)


def _probe(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return "qcow2" if fh.read(4) == b"QFI\xfb" else "raw"
    except OSError:
        return "raw"


def compare(
    source: list[str],
    profile: list[str],
    *,
    source_base: Path,
    profile_base: Path,
    usable: list[str],
    firmware: Callable[[str, bool], str | None],
    datadir: Path | None = None,
) -> Comparison:
    """Compare a source command with the argv built from its profile.

    ``usable`` lists the accelerators this host can use (QEMU takes the first usable one of a list);
    ``firmware(name, pflash)`` finds a firmware file given by bare name, as the host probe does; ``datadir`` is
    QEMU's own data directory (where it looks for ``-bios NAME``).
    """
    dirs = [datadir] if datadir is not None else []
    src = _Side(dissect(source, source_base), firmware, dirs)
    out = _Side(dissect(profile, profile_base), firmware, dirs)
    return _Matcher(src, out, qemu_defaults(), usable).run()
