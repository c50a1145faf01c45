"""Profile + host -> the QEMU argv: a list (never a shell string), in a fixed order so it can be golden-tested.

Two console modes: with a :class:`RuntimeDir` the serial console is a unix socket server that QEMU waits on
before it starts the guest (so the observer sees the first byte of firmware output) and QMP is a second socket;
without one the console is on stdio (`-nographic`: serial and monitor muxed, Ctrl-A X quits), which is what
`bootlab run` and the scripts from `bootlab script` use.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from bootlab.errors import UsageError
from bootlab.host import Host, firmware_install_hint
from bootlab.profile.model import Profile
from bootlab.qemu.runtime import RuntimeDir
from bootlab.qemu.size import format_size_mib

DEFAULT_CPU = {"hvf": "host", "kvm": "host", "tcg": "max", "whpx": "max"}


@dataclass(frozen=True)
class Problem:
    """Something that stops the invocation from running (a file or firmware that is not there)."""

    id: str
    message: str
    subject: str = ""  # the path or well-known name the problem is about


@dataclass
class Invocation:
    """The resolved QEMU command line for one profile on one host."""

    profile: Profile
    argv: list[str]
    accel: str
    accel_reason: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return argv_sha256(self.argv)

    def require_runnable(self) -> None:
        """Raise the first problem as a one-line usage error (missing firmware, kernel, disk...)."""
        if self.problems:
            raise UsageError(self.problems[0].message)


def argv_sha256(argv: list[str]) -> str:
    return hashlib.sha256("\0".join(argv).encode()).hexdigest()


def option_groups(argv: list[str]) -> list[list[str]]:
    """Each option with its value (`["-smp", "2"]`), the binary alone first: how scripts print and locks diff."""
    groups: list[list[str]] = [[argv[0]]] if argv else []
    for arg in argv[1:]:
        if arg.startswith("-") or len(groups[-1]) != 1 or not groups[-1][0].startswith("-"):
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return groups


def opt_escape(value: str) -> str:
    """QEMU option values escape a comma by doubling it."""
    return value.replace(",", ",,")


def choose_accel(profile: Profile, host: Host) -> tuple[str, str]:
    """The first accelerator of the profile's preference list that works here, and the one-line reason."""
    usable = host.accelerators.get(profile.arch, [])
    why = host.unavailable.get(profile.arch, {})
    skipped: list[str] = []
    for accel in profile.accel:
        if accel in usable:
            detail = f" ({'; '.join(skipped)})" if skipped else ""
            return accel, f"accel: {accel}{detail}"
        skipped.append(f"{accel} unavailable: {why.get(accel, 'not supported by this host')}")
    raise UsageError(
        f"profile {profile.name}: no usable accelerator in accel = {profile.accel} ({'; '.join(skipped)}); "
        f"add one this host has ({', '.join(usable) or 'none'}), e.g. --set accel=tcg"
    )


def _firmware_args(profile: Profile, host: Host, problems: list[Problem]) -> list[str]:
    fw = profile.firmware
    if fw is None:
        return []

    def locate(value: str, role: str) -> str:
        if "/" in value:
            if not Path(value).is_file():
                problems.append(
                    Problem(
                        "firmware-missing",
                        f"profile {profile.name}: firmware.{role} file {value} not found; fix the path",
                    )
                )
            return value
        found = host.firmware_for(role, value)
        if found is None:
            problems.append(
                Problem(
                    "firmware-missing",
                    f"profile {profile.name}: firmware.{role} `{value}` not found on this host; "
                    f"{firmware_install_hint(value)}, or give a path (or set $BOOTLAB_FIRMWARE_PATH)",
                    value,
                )
            )
            return value
        return found

    if fw.bios:
        return ["-bios", locate(fw.bios, "bios")]
    args = [
        "-drive",
        f"if=pflash,format=raw,unit=0,readonly=on,file={opt_escape(locate(fw.code or '', 'code'))}",
    ]
    if fw.vars:
        # The vars store is writable by the firmware: run it on a snapshot so the user's file is never changed.
        args += [
            "-drive",
            f"if=pflash,format=raw,unit=1,snapshot=on,file={opt_escape(locate(fw.vars, 'vars'))}",
        ]
    return args


def _need_file(profile: Profile, key: str, value: str | None, problems: list[Problem]) -> None:
    if value and not Path(value).exists():
        problems.append(
            Problem(f"{key}-missing", f"profile {profile.name}: {key} {value} not found; fix the path", value)
        )


def build_invocation(profile: Profile, host: Host, runtime: RuntimeDir | None = None) -> Invocation:
    """Build the argv. Files that are missing are recorded as problems (lint reports them, run refuses)."""
    host.binary(profile.arch)  # a clear error when qemu-system-<arch> is missing
    accel, reason = choose_accel(profile, host)
    cpu = profile.cpu_for(accel) if profile.cpu is not None else DEFAULT_CPU.get(accel, "max")
    if cpu is None:
        raise UsageError(
            f"profile {profile.name}: cpu has no entry for accel {accel} (cpu = {profile.cpu}); "
            f'add {accel} = "..." to the cpu table or --set cpu=NAME'
        )
    problems: list[Problem] = []
    argv = [f"qemu-system-{profile.arch}"]
    argv += ["-M", profile.machine.option_string(), "-accel", accel, "-cpu", cpu]
    argv += ["-smp", str(profile.smp), "-m", format_size_mib(profile.memory)]
    argv += _firmware_args(profile, host, problems)
    for key in ("kernel", "initrd"):
        value = getattr(profile, key)
        _need_file(profile, key, value, problems)
        if value:
            argv += [f"-{key}", value]
    if profile.append:
        argv += ["-append", profile.append]
    for i, drive in enumerate(profile.drives):
        _need_file(profile, "drive", drive.file, problems)
        opts = [f"file={opt_escape(drive.file)}", f"format={drive.format}", "if=none", f"id=disk{i}"]
        if drive.readonly:
            opts.append("readonly=on")
        elif not profile.drive_persistent(drive):
            opts.append("snapshot=on")
        argv += ["-drive", ",".join(opts)]
        if drive.interface == "nvme":
            argv += ["-device", f"nvme,drive=disk{i},serial={opt_escape(drive.serial or f'disk{i}')}"]
        else:
            serial = f",serial={opt_escape(drive.serial)}" if drive.serial else ""
            argv += ["-device", f"virtio-blk-pci,drive=disk{i}{serial}"]
    for i, share in enumerate(profile.shares):
        if not Path(share.path).is_dir():
            problems.append(
                Problem("share-missing", f"profile {profile.name}: share {share.path} is not a directory", share.path)
            )
        ro = ",readonly=on" if share.readonly else ""
        argv += ["-fsdev", f"local,id=fsdev{i},path={opt_escape(share.path)},security_model=none{ro}"]
        argv += ["-device", f"virtio-9p-pci,fsdev=fsdev{i},mount_tag={share.tag}"]
    if profile.network or profile.forwards:
        fwd = "".join(f",hostfwd={f.proto}:127.0.0.1:{f.host}-:{f.guest}" for f in profile.forwards)
        argv += ["-netdev", f"user,id=net0{fwd}", "-device", "virtio-net-pci,netdev=net0"]
    elif profile.network is False:
        argv += ["-nic", "none"]
    if runtime is None:
        argv += ["-nographic"]
    else:
        # QMP first: QEMU blocks on the serial socket (wait=on) until the observer connects.
        argv += ["-display", "none", "-monitor", "none"]
        argv += ["-qmp", f"unix:{runtime.qmp},server=on,wait=off"]
        argv += ["-chardev", f"socket,id=serial0,path={runtime.serial},server=on,wait=on"]
        argv += ["-serial", "chardev:serial0"]
    argv += profile.extra_args
    return Invocation(profile=profile, argv=argv, accel=accel, accel_reason=reason, problems=problems)


def binary_path(argv: list[str]) -> str:
    """argv[0] is the bare binary name (portable scripts and locks); resolve it for exec."""
    from shutil import which

    return which(argv[0]) or argv[0] if os.sep not in argv[0] else argv[0]
