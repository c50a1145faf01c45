"""The profile model: how to run a guest, validated.

Field names are part of the contract (scripts and project files rely on them): see the README's profile reference.
A profile is validated *after* `extends` chains are merged, `--set` overrides applied and `{var}` templates
filled, so every check below sees the final values.
"""

from __future__ import annotations

import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from bootlab.arch import Arch
from bootlab.qemu.size import size_mib

ACCELS = ("hvf", "kvm", "tcg", "whpx")
Accel = Literal["hvf", "kvm", "tcg", "whpx"]


def parse_size_mib(value: object) -> int:
    """Parse a QEMU-style size (`2G`, `512M`, `2048` = MiB, as `-m` reads it) into MiB."""
    if isinstance(value, bool):
        raise ValueError("a size such as 2G or 512M")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{value} MiB is not a size; write it like 2G or 512M")
        return value
    mib = size_mib(str(value))
    if mib < 1 or mib != int(mib):
        raise ValueError(f"{value!r} is not a whole number of MiB")
    return int(mib)


def _split_list(value: object) -> object:
    """Accept `accel = "kvm,tcg"` (as `--set accel=kvm,tcg` gives) as well as a TOML list."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _to_str(value: object) -> object:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Machine(_Strict):
    """`machine = "virt"` or `machine = {type = "virt", highmem = "off"}`; options go after the type in `-M`."""

    type: str
    options: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_toml(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"type": data}
        if isinstance(data, dict) and "options" not in data:
            data = dict(data)
            if "type" not in data:
                raise ValueError('a machine table needs `type`, e.g. {type = "virt", highmem = "off"}')
            mtype = data.pop("type")
            return {"type": mtype, "options": {k: _to_str(v) for k, v in data.items()}}
        return data

    def option_string(self) -> str:
        return ",".join([self.type, *(f"{k}={v}" for k, v in self.options.items())])


class Firmware(_Strict):
    """Either `bios` (loaded with -bios) or pflash `code` (+ optional `vars`, run with a snapshot so it is never
    written). Each is a path or a well-known name (e.g. `edk2-aarch64-code.fd`) that the host probe finds."""

    bios: str | None = None
    code: str | None = None
    vars: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Firmware:
        if self.bios and (self.code or self.vars):
            raise ValueError("firmware takes either `bios` or pflash `code` (+ `vars`), not both")
        if self.vars and not self.code:
            raise ValueError("firmware `vars` needs a pflash `code` file too")
        if not (self.bios or self.code):
            raise ValueError("firmware needs `bios` or `code`")
        return self


class Drive(_Strict):
    """A disk image. Runs on a snapshot overlay (the image is never written) unless `persistent = true`."""

    file: str
    format: str = "raw"
    interface: Literal["virtio", "nvme"] = "virtio"
    persistent: bool = False
    readonly: bool = False
    serial: str | None = None  # the disk's serial number as the guest sees it (nvme needs one: disk0, disk1...)


class Share(_Strict):
    """A host directory exported to the guest over 9p (virtio-9p-pci) under a mount tag."""

    path: str
    tag: str
    readonly: bool = False

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,31}", v):
            raise ValueError(f"mount tag {v!r} must be 1-31 letters, digits, '.', '_' or '-'")
        return v


class Forward(_Strict):
    """A host TCP port forwarded to a guest port through user-mode networking (bound to 127.0.0.1)."""

    host: int = Field(ge=1, le=65535)
    guest: int = Field(ge=1, le=65535)
    proto: Literal["tcp", "udp"] = "tcp"

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, data: Any) -> Any:
        if isinstance(data, str):
            m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*(?:/(tcp|udp))?\s*", data)
            if not m:
                raise ValueError(f"forward {data!r} must look like HOST_PORT:GUEST_PORT[/udp], e.g. 2222:22")
            return {"host": int(m.group(1)), "guest": int(m.group(2)), "proto": m.group(3) or "tcp"}
        return data

    def spec(self) -> str:
        """The short form a user writes (``2222:22``, ``5353:53/udp``): `vm list`, vm.json."""
        return f"{self.host}:{self.guest}" + ("" if self.proto == "tcp" else f"/{self.proto}")


class Build(_Strict):
    """How the profile's images are made from source: ``command`` (an argv list, or a string run with ``sh -c``)
    runs in ``dir`` (relative to bootlab.toml) with ``env`` added to the environment, and must produce every path
    in ``outputs`` (relative to ``dir``): the files the profile then boots. See README "Builds and revisions"."""

    command: str | list[str]
    dir: str = "."
    outputs: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("command")
    @classmethod
    def _command(cls, v: str | list[str]) -> str | list[str]:
        if (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and (not v or not all(v))):
            raise ValueError('the build command is empty; give an argv list (["make", "image"]) or a shell string')
        return v

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(
                "the build lists no outputs; name the files it produces that the profile boots, relative to "
                'build.dir, e.g. outputs = ["build/kernel", "build/initrd.img"]'
            )
        for out in v:
            parts = out.replace("\\", "/").split("/")
            if not out or out.startswith("/") or ".." in parts:
                raise ValueError(f"build output {out!r} must be a path inside build.dir (relative, no `..`)")
        return v

    @field_validator("env", mode="before")
    @classmethod
    def _env_str(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: _to_str(x) for k, x in v.items()}
        return v


CHECK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")


class Check(_Strict):
    """A command run in the guest's shell after the boot is ready; part of the boot's verdict.

    ``command`` is an argv list (each argument quoted, as `vm exec` runs it) or a shell string (run with ``sh
    -c``); ``script`` a host file sent to the guest over the console and run with ``sh``. One of the two. The
    check fails when it exits non-zero, when it outlives ``timeout`` (it is interrupted with Ctrl-C and the
    shell resynchronised), or when its output lacks ``expect``. See README "Checks after boot"."""

    name: str
    command: str | list[str] | None = None
    script: str | None = None
    timeout: float = Field(default=60.0, gt=0)
    expect: str | None = None
    # the script's text as the preflight read it (see with_text): not a field, so no profile file can set it and
    # no store, lock or hash sees it
    _text: bytes | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not CHECK_NAME.fullmatch(v):
            raise ValueError(f"check name {v!r} must be 1-64 letters, digits, '_' or '-' (no dots: it is a key)")
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: str | list[str] | None) -> str | list[str] | None:
        if v is not None and ((isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not v)):
            raise ValueError('the check\'s command is empty; give a shell string ("ip link") or an argv list')
        return v

    @field_validator("expect")
    @classmethod
    def _expect(cls, v: str | None) -> str | None:
        if v is not None and not v:
            raise ValueError("`expect` is empty; give the text the output must contain, or leave it out")
        return v

    @model_validator(mode="after")
    def _one_of(self) -> Check:
        if (self.command is None) == (self.script is None):
            how = 'command = "..." (or an argv list) or script = "FILE"'
            if self.command is None:
                raise ValueError(f"check {self.name} has no command; give it {how}")
            raise ValueError(f"check {self.name} has both a command and a script; give one of them")
        return self

    def with_text(self, text: bytes) -> Check:
        """This check carrying its script's ``text``, read once (at the preflight) so that every boot of a trial
        sends the same script, even when the file changes or goes meanwhile."""
        check = self.model_copy()
        check._text = text
        return check

    def script_bytes(self) -> bytes:
        """The script to send: the text read at the preflight, else the file (a cluster worker's copy, a held
        boot's supervisor). Raises OSError when it cannot be read."""
        if self._text is not None:
            return self._text
        assert self.script is not None
        with open(self.script, "rb") as fh:
            return fh.read()

    def text(self) -> str:
        """What the check runs, as one line for people (the verdict, `show`, reports)."""
        if self.script is not None:
            return f"sh {self.script}"
        return self.command if isinstance(self.command, str) else shlex.join(self.command or [])


def _checks(value: object) -> object:
    """`checks` is a table keyed by name (`net = "ping -c1 10.0.2.2"`, `mount = {command = ..., timeout = 10}`), in
    order; a value that is a string or a list is the command. A list of tables with `name` is read too."""
    if isinstance(value, dict):
        out = []
        for name, spec in value.items():
            if isinstance(spec, str | list):
                spec = {"command": spec}
            if not isinstance(spec, dict):
                raise ValueError(f"check {name}: give a command string, an argv list or a table with `command`")
            out.append({**spec, "name": name})
        return out
    return value


def _shares(value: object) -> object:
    """`shares = {"/host/dir" = "tag"}` is the short form of `[{path = "/host/dir", tag = "tag"}]`."""
    if isinstance(value, dict):
        return [{"path": k, "tag": v} for k, v in value.items()]
    return value


def _forwards(value: object) -> object:
    """`forwards = {2222 = 22}` and `forwards = ["2222:22"]` are short forms of `[{host = 2222, guest = 22}]`."""
    if isinstance(value, dict):
        return [{"host": int(k), "guest": v} for k, v in value.items()]
    if isinstance(value, str):
        return [v for v in value.split(",") if v.strip()]
    return value


class Profile(_Strict):
    """A resolved profile: every template filled, every override applied. See README "Profiles"."""

    name: str
    description: str = ""
    arch: Arch
    machine: Machine
    accel: Annotated[list[Accel], BeforeValidator(_split_list)] = Field(
        default_factory=lambda: list[Accel](["hvf", "kvm", "tcg"]), min_length=1
    )
    cpu: str | dict[Accel, str] | None = None
    smp: int = Field(default=1, ge=1, le=512)
    memory: Annotated[int, BeforeValidator(parse_size_mib)] = 1024
    firmware: Firmware | None = None
    kernel: str | None = None
    initrd: str | None = None
    append: str | None = None
    drives: list[Drive] = Field(default_factory=list)
    persistent: bool = False
    shares: Annotated[list[Share], BeforeValidator(_shares)] = Field(default_factory=list)
    forwards: Annotated[list[Forward], BeforeValidator(_forwards)] = Field(default_factory=list)
    network: bool | None = None  # None: QEMU's default NIC; false: -nic none; true: user-mode net
    pack: Annotated[list[str], BeforeValidator(_split_list)] = Field(default_factory=list)
    timeout: float = Field(default=300.0, gt=0)
    quiet_timeout: float = Field(default=60.0, gt=0)
    vars: dict[str, str] = Field(default_factory=dict)
    symbols: str | None = None
    fallback: str | None = None
    extra_args: list[str] = Field(default_factory=list)
    build: Build | None = None
    checks: Annotated[list[Check], BeforeValidator(_checks)] = Field(default_factory=list)
    seed: int = Field(default=0, ge=0, le=0xFFFFFFFF)
    boot: int = Field(default=0, ge=0)

    @field_validator("vars", mode="before")
    @classmethod
    def _vars_str(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: _to_str(x) for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if (self.initrd or self.append) and not self.kernel:
            raise ValueError("`initrd`/`append` need a `kernel` (direct boot)")
        if isinstance(self.cpu, dict) and not self.cpu:
            raise ValueError('`cpu` table is empty; give one cpu per accelerator, e.g. {tcg = "max"}')
        names = [c.name for c in self.checks]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"check {dup} is listed twice; give each check its own name")
        return self

    def cpu_for(self, accel: str) -> str | None:
        """The cpu model to use under ``accel`` (a per-accelerator table or one string for all)."""
        if isinstance(self.cpu, dict):
            return self.cpu.get(accel)  # type: ignore[call-overload]
        return self.cpu

    @property
    def writes_disks(self) -> bool:
        return any(d.persistent for d in self.drives) or (self.persistent and bool(self.drives))

    def drive_persistent(self, drive: Drive) -> bool:
        return drive.persistent or self.persistent

    def files(self) -> dict[str, str]:
        """Every host file the guest boots from, by role (``kernel``, ``initrd``, ``drive0``, ``firmware.code``):
        what the store hashes and what a cluster ships to its workers. Firmware named without a ``/`` is a
        well-known name that each host resolves itself, so it is not a file here."""
        files: dict[str, str] = {}
        for key in ("kernel", "initrd"):
            value = getattr(self, key)
            if value:
                files[key] = value
        for i, drive in enumerate(self.drives):
            if drive.file:
                files[f"drive{i}"] = drive.file
        files.update({role: v for role, v in self._firmware().items() if "/" in v})
        return files

    def firmware_names(self) -> dict[str, str]:
        """Firmware given by well-known name (``firmware.code`` -> ``edk2-aarch64-code.fd``), by role as in
        :meth:`files`: the host that boots it finds the file (``Host.find_firmware``)."""
        return {role: v for role, v in self._firmware().items() if "/" not in v}

    def _firmware(self) -> dict[str, str]:
        if self.firmware is None:
            return {}
        return {f"firmware.{k}": v for k, v in self.firmware.model_dump().items() if isinstance(v, str) and v}

    def check_files(self) -> dict[str, str]:
        """The host files that checks send to the guest (``check.NAME``): read by bootlab, not booted, so they are
        not :meth:`files` (a build of another revision does not replace them: like the profile, they are yours)."""
        return {f"check.{c.name}": c.script for c in self.checks if c.script is not None}

    def with_check_texts(self, source: Profile) -> Profile:
        """This profile (a trial's next boot, resolved again) with the script texts that ``source`` (its
        preflighted first boot) carries, for the checks that name the same script file."""
        read = {(c.name, c.script): c._text for c in source.checks if c._text is not None}
        if not any((c.name, c.script) in read for c in self.checks):
            return self
        checks = [c.with_text(read[c.name, c.script]) if (c.name, c.script) in read else c for c in self.checks]
        return self.model_copy(update={"checks": checks})

    def with_files(self, paths: dict[str, str]) -> Profile:
        """The same profile with some files (roles as in :meth:`files` and :meth:`check_files`, plus ``symbols``)
        at other paths."""
        update: dict[str, Any] = {k: v for k, v in paths.items() if k in ("kernel", "initrd", "symbols")}
        if any(k.startswith("check.") for k in paths):  # a script at another path is read there (no text carried)
            update["checks"] = [
                c
                if paths.get(f"check.{c.name}", c.script) == c.script
                else Check.model_validate({**c.model_dump(), "script": paths[f"check.{c.name}"]})
                for c in self.checks
            ]
        if any(k.startswith("drive") for k in paths):
            update["drives"] = [
                d.model_copy(update={"file": paths.get(f"drive{i}", d.file)}) for i, d in enumerate(self.drives)
            ]
        if self.firmware is not None and any(k.startswith("firmware.") for k in paths):
            fw = {k.removeprefix("firmware."): v for k, v in paths.items() if k.startswith("firmware.")}
            update["firmware"] = self.firmware.model_copy(update=fw)
        return self.model_copy(update=update)
