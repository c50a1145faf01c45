"""The verdict of one boot, and crash-title normalisation.

The verdict is the contract between the observer and everything built on it (trials count outcomes and group
titles, the store saves it, ``--json`` prints exactly these fields). Titles are normalised the way syzkaller's
``pkg/report`` does it, so that the same bug gets the same title across boots: addresses, numbers and line
numbers vary from build to build and boot to boot, the function and the kind of failure do not.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal[
    "pass", "crash", "hang", "timeout", "login-failed", "check-failed", "qemu-error", "infra-error", "incomplete"
]
# ``login-failed``: the guest refused the credentials bootlab typed (``Login incorrect``). Its own outcome, not a
# crash title: the guest did not crash (the password may be wrong, or PAM broken), trials should not count it as a
# crash rate, and a fallback profile (same credentials) would fail the same way.
# ``check-failed``: the guest booted but a check run in it after ready failed: it boots, it does not work.
GUEST_FAILED: frozenset[str] = frozenset({"crash", "hang", "timeout", "login-failed", "check-failed"})
INFRA: frozenset[str] = frozenset({"qemu-error", "infra-error"})

_FILE_LINE = re.compile(r"(\.(?:c|h|rs|S|s|cc|cpp|go|py|zig)):\d+(?::\d+)?")
# a symbol with its offset and size (``ip6_fragment+0x1052/0x2d80``): the offsets move with every build
_SYMBOL_OFFSET = re.compile(r"\b([A-Za-z_][\w.]*)\+0x[0-9a-fA-F]+(?:/0x[0-9a-fA-F]+)?")
# suffixes the compiler adds to a function it clones (``__call_rcu.constprop.76``, ``foo.isra.0.cold``)
_CLONE_SUFFIX = re.compile(
    r"\b([A-Za-z_]\w*?)(?:\.(?:constprop|isra|part|llvm|lto_priv)\.\d+|\.(?:cold|localalias)(?:\.\d+)?)+\b"
)
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b")
_CPU = re.compile(r"\bCPU#\s*\d+")
_NUM = re.compile(r"(?<![\w.])\d+(?![\w])")


def normalise_title(title: str) -> str:
    """``file.c:123`` -> ``file.c:LINE``, ``func.isra.0+0x1c/0x40`` -> ``func``, hex addresses -> ADDR,
    ``CPU#3`` -> CPU, other numbers -> NUM.

    Numbers inside identifiers (``jbd2_journal_commit``, ``ext4``) are kept: they name things, not instances.
    """
    title = _FILE_LINE.sub(r"\1:LINE", title)
    title = _SYMBOL_OFFSET.sub(r"\1", title)
    title = _CLONE_SUFFIX.sub(r"\1", title)
    title = _HEX.sub("ADDR", title)
    title = _CPU.sub("CPU", title)
    title = _NUM.sub("NUM", title)
    return " ".join(title.split())


class StageTime(BaseModel):
    name: str
    t: float | None


class Incident(BaseModel):
    kind: str
    title: str
    process: str | None
    line: str
    t: float | None


class Death(BaseModel):
    """How the boot died, when that is not the report that titles it: the ``Kernel panic - not syncing:
    panic_on_warn set`` after a WARNING, the ``Fatal exception`` after an oops. The report is the bug (it
    titles the verdict); this is its consequence, kept so the cause of death is not lost."""

    title: str
    line: str
    t: float | None


class Stopped(BaseModel):
    """Where a boot that hung or timed out stopped, so a verdict says more than "hang": which rule ended it, whether
    the console was still printing, and what it showed last.

    ``rule``: ``quiet`` (no output for ``quiet_timeout``), ``no-progress`` (output, but no new milestone and no new
    distinct line for twice ``quiet_timeout``: a guest repeating itself) or ``timeout`` (the overall limit).
    ``flowing``: output arrived within the last ``quiet_timeout / 2`` seconds. ``silent_s``: seconds from the last
    output to the verdict. ``progress_t``: when the boot last progressed (a milestone or a line not seen before);
    ``lines_since_progress``: console lines since then (a flood has many). ``last_lines``: the last lines the console
    showed, as a person would read them (a full-screen dialog's cursor moves split it into lines). ``prompt``: the
    console stopped on a prompt waiting for an answer (a pack's ``[[prompt]]``, or a last line without newline that
    ends like a prompt: ``:``, ``?``, ``>``, ``#``, ``$``, ``]``); a hang there is titled
    ``stopped at prompt "..."``."""

    rule: Literal["quiet", "no-progress", "timeout"]
    flowing: bool
    silent_s: float
    progress_t: float | None = None
    lines_since_progress: int = 0
    last_lines: list[str] = Field(default_factory=list)
    prompt: str | None = None


class VcpuRegisters(BaseModel):
    """One vCPU's registers as QEMU's ``info registers`` shows them, with the ones a developer looks at
    first. The system registers that explain a fault (``elr``/``esr``/``far``/``spsr``/``el`` on aarch64,
    ``cr2``/``cr3`` on x86_64) come from QEMU's gdb stub (``info registers`` lacks them); ``exception`` is
    ESR_EL1 decoded in one line, and ``stub_error`` says why the stub could not be read when it could not."""

    cpu: int
    pc: str | None = None
    sp: str | None = None
    lr: str | None = None
    elr: str | None = None
    esr: str | None = None
    far: str | None = None
    spsr: str | None = None
    el: int | None = None
    cr2: str | None = None
    cr3: str | None = None
    exception: str | None = None
    stub_error: str | None = None
    symbols: dict[str, str] = Field(default_factory=dict)
    raw: str


#: bytes of a check's output kept in its result (the first quarter and the last three quarters when it printed more):
#: a verdict is stored with every boot of a trial, and a chatty check must not make each row megabytes
CHECK_OUTPUT_CAP = 8192

CheckStatus = Literal["pass", "fail", "timeout", "crash", "skipped"]


class CheckResult(BaseModel):
    """One check run in the guest after the boot was ready (see :mod:`bootlab.lab.checks`).

    ``status``: ``pass``; ``fail`` (a non-zero exit, or output without ``expect``); ``timeout`` (interrupted with
    Ctrl-C after its timeout); ``crash`` (the guest crashed, or QEMU exited, while it ran); ``skipped`` (not run:
    an earlier check left the shell unusable, or the guest crashed first). ``output`` holds at most
    ``output_cap`` bytes of what it printed (stdout and stderr merged), ``output_bytes`` how much it printed;
    when it printed more, the middle is cut and replaced by a line saying how much."""

    model_config = ConfigDict(extra="forbid")

    name: str
    command: str
    status: CheckStatus
    exit_code: int | None = None
    duration_s: float | None = None
    t: float | None = None  # seconds since QEMU start at which it began
    expect: str | None = None
    reason: str | None = None
    output: str = ""
    output_bytes: int = 0
    output_cap: int = CHECK_OUTPUT_CAP

    @property
    def passed(self) -> bool:
        return self.status == "pass"


class WorkerInfo(BaseModel):
    """Where a boot ran when a cluster worker ran it (``--cluster``), and when, on the wall clocks of the client
    (``dispatched``) and of the worker (the rest): enough to store the boot as if it had run here, and to see
    what the cluster cost per boot. ``lost`` names workers that died while running this boot before it was
    re-run (once)."""

    name: str
    host: str
    address: str
    os: str | None = None
    arch: str | None = None
    qemu: str | None = None
    qemu_version: str | None = None
    dispatched: float | None = None
    started: float | None = None
    qemu_started: float | None = None
    finished: float | None = None
    lost: list[str] = Field(default_factory=list)


class Verdict(BaseModel):
    """What one boot came to. ``--json`` prints exactly these fields."""

    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    stage: str | None = None
    stages: list[StageTime] = Field(default_factory=list)
    title: str | None = None
    fatal_line: str | None = None
    fatal_t: float | None = None
    incidents: list[Incident] = Field(default_factory=list)
    death: Death | None = None
    stopped: Stopped | None = None
    duration_s: float | None = None
    log: str | None = None
    seed: int | None = None
    accel: str | None = None
    registers: list[VcpuRegisters] = Field(default_factory=list)
    argv: list[str] = Field(default_factory=list)
    worker: WorkerInfo | None = None
    checks: list[CheckResult] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"

    @property
    def guest_failed(self) -> bool:
        return self.outcome in GUEST_FAILED

    @property
    def infra_failed(self) -> bool:
        return self.outcome in INFRA

    def exit_code(self) -> int:
        return exit_code_of(self.outcome)


def exit_code_of(outcome: str) -> int:
    """The stable CLI exit code of a boot's outcome: 0 pass, 1 guest failed (``incomplete`` too), 3 qemu/infra
    error. `bootlab boot` and `vm launch`/`start` map outcomes through here."""
    if outcome == "pass":
        return 0
    return 3 if outcome in INFRA else 1
