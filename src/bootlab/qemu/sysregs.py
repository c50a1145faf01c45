"""The system registers that explain a crash, read through QEMU's gdb stub while the VM is paused.

aarch64: ELR_EL1 (where the last exception to EL1 returns to), ESR_EL1 (why it was taken), FAR_EL1 (the faulting
address), SPSR_EL1 (the state it came from) and the EL the vCPU is at (PSTATE, gdb's ``cpsr``). x86_64: CR2 (the
last page-fault address) and CR3 (the page-table base); the page-fault error code is not kept by QEMU anywhere
the stub can read (the guest's own report prints it).

:func:`read_system_registers` takes a QMP ``execute`` callable, so any QMP client plugs in: it starts the stub
with ``gdbserver unix:PATH`` on a socket in a private 0700 directory, reads every vCPU, and removes the stub with
``gdbserver none``. The guest stays exactly as it was: the stub is never asked to detach (``D`` resumes a QEMU
guest), to continue or to write anything. Registers are looked up by name in the target description, because
their numbers differ between QEMU versions (ESR_EL1 is 188 on 7.2 and 197 on 10.0 for the same cortex-a72).

Note: ELR_EL1 and SPSR_EL1 are overwritten by every exception taken to EL1, interrupts included, while ESR_EL1
and FAR_EL1 change only on synchronous exceptions and SErrors; so the decoded line takes the EL from ESR's
exception class, never from SPSR_EL1.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bootlab.faults import describe, el_from_psr
from bootlab.qemu.gdbstub import Execute, GdbStub, GdbStubError, gdbserver, has_gdbserver
from bootlab.verdict import VcpuRegisters

# gdb architecture name (target description) -> the registers worth keeping, as QEMU's stub names them
WANTED: dict[str, tuple[str, ...]] = {
    "aarch64": ("ELR_EL1", "ESR_EL1", "FAR_EL1", "SPSR_EL1", "cpsr"),
    "i386:x86-64": ("cr2", "cr3"),
    "i386": ("cr2", "cr3"),
}

# the HMP reply of a QEMU whose accelerator has no guest-debug support (HVF before QEMU 8.1, x86 HVF)
_NO_GUEST_DEBUG = "doesn't support guest debugging"


@dataclass(frozen=True)
class SystemRegisters:
    """One vCPU's system registers as the stub sent them (``values`` by the stub's names; None: unavailable)."""

    cpu: int
    architecture: str
    values: dict[str, int | None] = field(default_factory=dict)

    def get(self, name: str) -> int | None:
        return self.values.get(name)

    @property
    def el(self) -> int | None:
        cpsr = self.get("cpsr")
        return el_from_psr(cpsr) if cpsr is not None and self.architecture == "aarch64" else None

    @property
    def exception(self) -> str | None:
        """ESR_EL1 (with FAR_EL1) in one line; None off aarch64 or when ESR_EL1 is 0 (nothing taken yet)."""
        if self.architecture != "aarch64":
            return None
        return describe(self.get("ESR_EL1"), self.get("FAR_EL1"))

    def apply(self, regs: VcpuRegisters) -> VcpuRegisters:
        """Fill ``regs`` (the ``info registers`` view of the same vCPU) with these values."""
        for attr, name in (
            ("elr", "ELR_EL1"),
            ("esr", "ESR_EL1"),
            ("far", "FAR_EL1"),
            ("spsr", "SPSR_EL1"),
            ("cr2", "cr2"),
            ("cr3", "cr3"),
        ):
            value = self.get(name)
            if value is not None:
                setattr(regs, attr, f"{value:x}")
        regs.el = self.el
        regs.exception = self.exception
        return regs


def explain(text: str) -> str:
    """QEMU's refusal to start its gdb stub, with what it means when the accelerator is the reason."""
    if _NO_GUEST_DEBUG in text:
        text += " (QEMU's gdb stub needs an accelerator with guest-debug support: TCG, KVM, or HVF on Apple silicon "
        text += "from QEMU 8.1 on)"
    return text


async def read_system_registers(
    execute: Execute, *, directory: Path | None = None, timeout: float = 3.0, stub: Path | None = None
) -> list[SystemRegisters]:
    """Start QEMU's gdb stub, read every vCPU's fault registers, stop the stub. The VM should be paused already
    (a running VM is paused by the stub when we connect, and stays paused).

    ``directory`` is where the stub's socket goes (it must be 0700 and ours, such as the machine's runtime
    directory); by default a fresh private directory under /tmp, removed afterwards. Raises
    :class:`GdbStubError` (one line) when the stub cannot be used, including when the profile runs its own stub
    (``-s``/``-gdb``), which bootlab never replaces. Everything is bounded by ``timeout`` seconds in total.
    ``stub``: a stub bootlab started itself and keeps (a held crash, ``vm launch --gdb``) is read where it is.
    """
    if stub is not None:
        return await _read_through(stub, timeout)
    made = directory is None
    where = directory or Path(tempfile.mkdtemp(prefix="bootlab-gdb-", dir="/tmp" if Path("/tmp").is_dir() else None))
    try:
        async with asyncio.timeout(timeout):
            if await has_gdbserver(execute):
                raise GdbStubError("the profile runs its own gdb stub (-s or -gdb in extra_args); bootlab leaves it")
            async with gdbserver(execute, where / "gdb.sock") as sock:
                client = await GdbStub.connect(sock, timeout=timeout)
                async with client:
                    return await _read_all(client)
    except TimeoutError:
        raise GdbStubError(f"reading registers through QEMU's gdb stub took over {timeout:g}s") from None
    except GdbStubError as exc:
        raise GdbStubError(explain(str(exc))) from None
    finally:
        if made:
            shutil.rmtree(where, ignore_errors=True)


async def _read_through(socket: Path, timeout: float) -> list[SystemRegisters]:
    try:
        async with asyncio.timeout(timeout):
            async with await GdbStub.connect(socket, timeout=timeout) as stub:
                return await _read_all(stub)
    except TimeoutError:
        raise GdbStubError(f"reading registers through the gdb stub at {socket} took over {timeout:g}s") from None


async def _read_all(stub: GdbStub) -> list[SystemRegisters]:
    desc = await stub.target_description()
    names = list(WANTED.get(desc.architecture, ()))
    if not names:
        raise GdbStubError(f"bootlab reads no system registers for architecture {desc.architecture or '?'}")
    out: list[SystemRegisters] = []
    for pid, tid in await stub.threads():
        await stub.select_thread(pid, tid)
        values = await stub.read_named(names)
        out.append(SystemRegisters(cpu=tid - 1, architecture=desc.architecture, values=values))
    return sorted(out, key=lambda s: s.cpu)


async def fill_system_registers(
    execute: Execute,
    regs: list[VcpuRegisters],
    *,
    directory: Path | None = None,
    timeout: float = 3.0,
    stub: Path | None = None,
) -> None:
    """Add the stub's registers to ``regs`` (one per vCPU, from ``info registers``) in place; when the stub
    cannot be read, each gets ``stub_error`` instead and the rest of the verdict is unchanged."""
    try:
        read = await read_system_registers(execute, directory=directory, timeout=timeout, stub=stub)
        sysregs = {s.cpu: s for s in read}
    except GdbStubError as exc:
        for r in regs:
            r.stub_error = str(exc)
        return
    for r in regs:
        found = sysregs.get(r.cpu)
        if found is not None:
            found.apply(r)
        else:
            r.stub_error = "the gdb stub did not list this vCPU"
