"""What this machine offers: QEMU binaries and versions, usable accelerators, firmware files.

Accelerator availability follows QEMU's own python/qemu/utils/accel.py: KVM needs `/dev/kvm` openable and the
guest arch equal to the host arch; HVF needs macOS with `kern.hv_support` = 1; TCG always works. Each claim is
confirmed against the binary's `-accel help`. Binary facts (version, accelerators) are cached per binary
(path, size, mtime) so a boot does not pay for two extra QEMU start-ups.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from bootlab.arch import ARCHES, QEMU_PACKAGES, normalise_arch
from bootlab.errors import InfraError


def host_arch() -> str:
    return normalise_arch(os.uname().machine)  # what platform.machine() says, without importing platform


def host_os() -> str:
    return "darwin" if sys.platform == "darwin" else "linux" if sys.platform.startswith("linux") else sys.platform


@dataclass
class QemuBinary:
    arch: str
    path: str
    version: str
    accels: list[str]  # what `-accel help` lists (compiled in), not what works here

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", self.version)[:3])


@dataclass
class Host:
    """The probe's result. ``accelerators[arch]`` lists usable accelerators, best first."""

    os: str
    arch: str
    qemu: dict[str, QemuBinary] = field(default_factory=dict)
    accelerators: dict[str, list[str]] = field(default_factory=dict)
    unavailable: dict[str, dict[str, str]] = field(default_factory=dict)  # arch -> accel -> why not
    firmware: dict[str, str] = field(default_factory=dict)  # well-known name -> path (as -bios)
    pflash: dict[str, str] = field(default_factory=dict)  # well-known name -> path usable as pflash
    firmware_files: dict[str, str] = field(default_factory=dict)  # every *.fd found: file name -> path

    def to_json(self) -> dict[str, Any]:
        """`bootlab doctor --json`: binaries, usable accelerators (best first), why the others are not, firmware."""
        return {
            "qemu": {a: {"path": b.path, "version": b.version} for a, b in self.qemu.items()},
            "accelerators": self.accelerators,
            "unavailable": self.unavailable,
            "firmware": self.firmware,
        }

    def binary(self, arch: str) -> QemuBinary:
        """The qemu-system binary for ``arch``; :class:`~bootlab.errors.InfraError` (exit 3) when there is none.

        A missing QEMU is one kind of error everywhere: infrastructure. The profile is not wrong (the same
        profile boots on a host that has the binary), the host lacks a tool; so `bootlab boot` exits 3, a boot
        run through the library is an ``infra-error`` verdict, and a cluster worker without the binary reports
        its boots as infra-errors, never as the guest failing and never as the user's bad input."""
        if arch not in self.qemu:
            pkg = QEMU_PACKAGES.get(arch, "qemu-system")
            raise InfraError(
                f"qemu-system-{arch} not found on PATH; install it: sudo apt install {pkg} "
                f"(macOS: brew install qemu), then check with `bootlab doctor`"
            )
        return self.qemu[arch]

    def find_firmware(self, name: str, *, pflash: bool = False) -> str | None:
        """A well-known name (edk2-aarch64-code.fd) or any firmware file name found in the usual places."""
        known = self.pflash.get(name) if pflash else self.firmware.get(name)
        return known or self.firmware_files.get(name)

    def firmware_for(self, role: str, name: str) -> str | None:
        """The file a profile's ``firmware.ROLE = NAME`` boots here: ``bios`` is loaded with -bios, ``code`` and
        ``vars`` as pflash (a name may have a pflash-sized file apart). One rule, for the command line, the hashes
        the store records and the importer's notes, so they always speak of the same file."""
        return self.find_firmware(name, pflash=role.removeprefix("firmware.") != "bios")


@cache
def firmware_table() -> dict[str, Any]:
    text = (resources.files("bootlab.data") / "firmware.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def firmware_search_dirs() -> list[Path]:
    """`$BOOTLAB_FIRMWARE_PATH` (colon-separated) first, then the platform locations, then QEMU's data dirs."""
    dirs = [Path(p) for p in os.environ.get("BOOTLAB_FIRMWARE_PATH", "").split(os.pathsep) if p]
    dirs += [Path(p) for p in firmware_table()["search_dirs"]]
    return dirs


def probe_firmware() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    files: dict[str, str] = {}
    for d in firmware_search_dirs():
        try:
            entries = sorted(d.iterdir())
        except OSError:
            continue
        for f in entries:
            if f.suffix == ".fd" and f.is_file():
                files.setdefault(f.name, str(f))
    names: dict[str, str] = {}
    pflash: dict[str, str] = {}
    for name, spec in firmware_table()["names"].items():
        for table, key in ((names, "candidates"), (pflash, "pflash_candidates")):
            for cand in spec.get(key, spec["candidates"]):
                if cand in files:
                    table[name] = files[cand]
                    break
    return names, pflash, files


def firmware_install_hint(name: str) -> str:
    spec = firmware_table()["names"].get(name)
    return spec["install"] if spec else "install your distribution's edk2/OVMF package or give a path"


def _cache_file() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bootlab")) / "qemu-binaries.json"


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(data: dict[str, Any]) -> None:
    """Atomic replace, so concurrent bootlab processes never read half a file."""
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)
    except OSError:
        pass


def parse_version(text: str) -> str:
    """`QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)` -> `7.2.22`."""
    m = re.search(r"version\s+([0-9][^\s(]*)", text)
    return m.group(1) if m else "unknown"


def parse_accel_help(text: str) -> list[str]:
    """`-accel help` prints a header line, then one accelerator per line (`tcg`, `kvm`, `hvf`, ...)."""
    return [ln.strip() for ln in text.splitlines()[1:] if re.fullmatch(r"[a-z0-9_-]+", ln.strip())]


def _binary_facts(path: str) -> tuple[str, list[str]]:
    """(version, accelerators compiled in) for a QEMU binary, cached by (path, size, mtime)."""
    st = os.stat(path)
    key = f"{path}:{st.st_size}:{int(st.st_mtime)}"
    cached = _read_cache()
    if key in cached:
        return cached[key]["version"], cached[key]["accels"]
    from bootlab.qemu.process import run_once

    version = parse_version(run_once([path, "-version"])[1])
    accels = parse_accel_help(run_once([path, "-accel", "help"])[1])
    _write_cache({**cached, key: {"version": version, "accels": accels}})
    return version, accels


def _kvm_usable() -> str | None:
    """None if /dev/kvm can be opened read-write, else why not."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return "/dev/kvm does not exist (no KVM in this kernel or VM)"
    except PermissionError:
        return "/dev/kvm is not accessible (add yourself to the kvm group)"
    except OSError as exc:
        return f"/dev/kvm cannot be opened ({exc.strerror})"
    os.close(fd)
    return None


def _hvf_usable(os_name: str) -> str | None:
    if os_name != "darwin":
        return "not macOS"
    try:
        out = subprocess.run(["sysctl", "-n", "kern.hv_support"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "sysctl not available"
    return None if out.stdout.strip() == "1" else "kern.hv_support is not 1 (no Hypervisor.framework)"


SMOKE_MACHINE = {"aarch64": "virt", "x86_64": "q35", "riscv64": "virt"}


def smoke_argv(path: str, arch: str, accel: str) -> list[str]:
    """A paused VM with one `-cpu host` vCPU: enough for KVM/HVF to prove they can really run a vCPU here.

    `/dev/kvm` being openable is not enough: nested KVM can refuse `-cpu host` at vCPU creation ("failed to set
    MSR 0x10a"), and every boot would then die as a qemu-error. The monitor on stdin reads `quit` once the
    machine is built, so the check takes ~0.1 s.
    """
    return [path, "-accel", accel, "-cpu", "host", "-M", SMOKE_MACHINE.get(arch, "virt"), "-nodefaults",
            "-display", "none", "-S", "-monitor", "stdio", "-serial", "none"]  # fmt: skip


def smoke_failure(output: str, returncode: int) -> str | None:
    """None if the smoke VM came up and quit, else QEMU's first error line."""
    if returncode == 0:
        return None
    errors = [ln.strip() for ln in output.splitlines() if "error" in ln.lower() or "failed" in ln.lower()]
    detail = errors[0].split(": ", 1)[-1] if errors else f"exit status {returncode}"
    return f"QEMU could not start a vCPU with -cpu host ({detail.removeprefix('error: ')})"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _smoke(path: str, arch: str, accel: str) -> str | None:
    """Run (or recall, per binary and host boot) the vCPU smoke test for a hardware accelerator."""
    st = os.stat(path)
    key = f"smoke:{path}:{st.st_size}:{int(st.st_mtime)}:{accel}:{_boot_id()}"
    cached = _read_cache()
    if key in cached:
        return cached[key]["failure"]
    from bootlab.qemu.process import run_once

    code, output = run_once(smoke_argv(path, arch, accel), stdin=b"quit\n", timeout=30)
    failure = "QEMU did not answer the vCPU smoke test within 30 s" if code is None else smoke_failure(output, code)
    _write_cache({**cached, key: {"failure": failure}})
    return failure


def accel_reasons(
    guest_arch: str,
    binary_accels: list[str],
    os_name: str,
    cpu_arch: str,
    smoke: Callable[[str], str | None] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Usable accelerators for ``guest_arch`` (best first) and, for the others, why not.

    ``smoke(accel)`` runs a real vCPU for hvf/kvm once every static check passed (see :func:`smoke_argv`).
    """
    usable: list[str] = []
    why: dict[str, str] = {}
    for accel in ("hvf", "kvm", "tcg"):
        if accel == "hvf":
            reason = _hvf_usable(os_name)
        elif accel == "kvm":
            reason = None if os_name == "linux" else "not Linux"
            reason = reason or _kvm_usable()
        else:
            reason = None
        if reason is None and accel in ("hvf", "kvm") and guest_arch != cpu_arch:
            reason = f"guest is {guest_arch}, host CPU is {cpu_arch}"
        if reason is None and binary_accels and accel not in binary_accels:
            reason = f"qemu-system-{guest_arch} was built without {accel}"
        if reason is None and accel != "tcg" and smoke is not None:
            reason = smoke(accel)
            if reason is not None and accel == "kvm":
                reason += (
                    "; /dev/kvm opens, so KVM is there but refuses a -cpu host vCPU: nested KVM (this host is a VM)"
                )
        if reason is None:
            usable.append(accel)
        else:
            why[accel] = reason
    return usable, why


@cache
def probe() -> Host:
    """Probe this machine once per process."""
    host = Host(os=host_os(), arch=host_arch())
    for arch in ARCHES:
        path = shutil.which(f"qemu-system-{arch}")
        if not path:
            continue
        try:
            version, accels = _binary_facts(path)
        except (OSError, InfraError):  # gone or not runnable since `which` found it
            continue
        host.qemu[arch] = QemuBinary(arch=arch, path=path, version=version, accels=accels)
        host.accelerators[arch], host.unavailable[arch] = accel_reasons(
            arch, accels, host.os, host.arch, smoke=functools.partial(_smoke, path, arch)
        )
    host.firmware, host.pflash, host.firmware_files = probe_firmware()
    return host


def as_dict(host: Host) -> dict[str, Any]:
    return asdict(host)


def from_dict(data: dict[str, Any]) -> Host:
    """The inverse of :func:`as_dict`: another machine's probe (a cluster worker's), to lint and place against."""
    qemu = {arch: QemuBinary(**b) for arch, b in data.get("qemu", {}).items()}
    return Host(**{**data, "qemu": qemu})
