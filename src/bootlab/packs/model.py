"""The pack file format: how to read one OS's (or firmware's) console, as validated data.

A pack is knowledge, not code: adding a Redox failure signature must be a TOML edit. Every entry carries a
``reference`` (where the fact comes from) so a reviewer can check it against the source. Regexes are compiled
at validation time, so a typo in a user's pack is reported when it is loaded, not in the middle of a boot.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"bad regex {value!r}: {exc}") from exc
    return value


def _check_regexes(values: list[str]) -> list[str]:
    return [_check_regex(v) for v in values]


#: A regex field, compiled as the pack is read (a typo is found at load, not in the middle of a boot); every
#: model's regex fields use these types rather than a validator each.
Regex = Annotated[str, AfterValidator(_check_regex)]
#: A list of regexes, checked as one field (a problem is reported at the field, as for a single regex).
Regexes = Annotated[list[str], AfterValidator(_check_regexes)]


class Milestone(_Strict):
    """A named stage of the boot; the first line matching ``regex`` marks the time it was reached.

    Milestones are in boot order. In a pack that ``extends`` another, a new milestone goes at the end unless
    ``after`` (or ``before``) names one of the base's: a ``systemd`` stage belongs between ``userspace`` and
    ``login``, and at the end it would never be reached (a later stage only comes after an earlier one)."""

    name: str
    regex: Regex
    reference: str
    after: str | None = None
    before: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> Milestone:
        if self.after is not None and self.before is not None:
            raise ValueError(f"milestone {self.name!r} sets both after and before; keep one")
        return self


class Ready(_Strict):
    """When the guest is usable. ``login`` prompts end a plain boot; ``shell`` prompts end a boot that logs
    in (a profile with a password, see ``bootlab.console.observer.wants_shell``). ``login_failed`` lines say the
    guest refused the credentials bootlab typed (``Login incorrect``): before ready they end the boot at once as
    ``login-failed``."""

    login: Regexes = Field(default_factory=list)
    shell: Regexes = Field(default_factory=list)
    login_failed: Regexes = Field(default_factory=list)
    reference: str


class Signature(_Strict):
    """A failure the console shows.

    ``regex`` matches the header line; its named groups fill ``title``. ``follow`` lines after it may add more
    captures (``follow_regex``, e.g. the process name a Redox exception belongs to) and, with ``frame =
    true``, the guilty stack frame (``{frame}``, see :class:`Frames`): the first frame that is not a generic
    helper (``frame_pick = "first"``), or for stalls, where the trace passes through a dispatcher, the frame
    just above the first ``frame_anchor`` frame (``"above-anchor"``), or the first anchor frame itself
    (``"anchor"``). ``frame_skip`` names more frame groups to skip for this signature alone; ``frame_after``
    makes frames count only after a line matching it (the stack of interest is not always the first).

    ``fatal_when`` makes an incident fatal when a capture matches (a Redox daemon dying is an incident, init
    dying ends the boot). ``superseded_by`` drops this finding when one of those signatures fires within the
    window (it carries the same event with more detail). ``dump_end`` marks the last line of a fatal dump (or
    the reboot that follows it): the boot stops there without waiting for the console to go quiet.

    ``cause_window > 0`` marks a line that reports a death some earlier report caused (``Kernel panic - not
    syncing: panic_on_warn set``, ``Fatal exception``): when a report of the same pack (of one of the
    ``cause_kinds``, if given) began at most that many lines before, the earliest such report titles the boot
    and this line becomes the verdict's ``death``; with none, this line is the report. After a fatal report it
    is the death in any case, unless that report is this signature's own earlier line (a panic's closing
    ``---[ end Kernel panic ...`` repeats it). Name the kinds that can cause it: without ``cause_kinds`` any
    earlier report is blamed, a harmless WARNING included.

    A report that begins while an earlier one still waits for its guilty frame cuts that one short (its stack
    would mix with the new report's): the earlier one keeps the frames seen so far. ``interrupts = false`` is
    for lines printed inside other reports (an architecture's oops banner after the report's header, a
    message the kernel repeats while others report); a repeat of the same signature never interrupts.

    A ``frame`` capture of the header or of a ``follow_regex`` (lockdep's ``at: func+0x..``) is a candidate
    frame like a stack line; when every candidate is a generic helper, the header's own function stands.

    ``look_back`` lines before the header may add captures too (``look_back_regex``, nearest line first): some
    consoles name the process on the line *before* the fault (2016 Redox kernels print ``PID 3:
    file:/apps/login/main.bin`` then ``  INT E: Page fault``).
    """

    id: str
    regex: Regex
    kind: str
    fatal: bool
    title: str
    reference: str
    title_fallback: str | None = None
    follow: int = Field(default=0, ge=0, le=500)
    follow_regex: Regexes = Field(default_factory=list)
    look_back: int = Field(default=0, ge=0, le=200)
    look_back_regex: Regexes = Field(default_factory=list)
    frame: bool = False
    fatal_when: dict[str, str] = Field(default_factory=dict)
    fatal_kind: str | None = None
    superseded_by: list[str] = Field(default_factory=list)
    dump_end: Regex | None = None
    synthesized: bool = False
    frame_pick: Literal["first", "anchor", "above-anchor"] = "first"
    frame_skip: list[str] = Field(default_factory=list)
    frame_anchor: list[str] = Field(default_factory=list)
    frame_after: Regex | None = None
    cause_window: int = Field(default=0, ge=0, le=10000)
    cause_kinds: list[str] = Field(default_factory=list)
    interrupts: bool = True

    @field_validator("fatal_when")
    @classmethod
    def _when(cls, v: dict[str, str]) -> dict[str, str]:
        return {k: _check_regex(r) for k, r in v.items()}

    @model_validator(mode="after")
    def _window(self) -> Signature:
        if (self.follow_regex or self.frame or self.superseded_by) and self.follow == 0:
            raise ValueError(f"signature {self.id!r} looks at following lines but has follow = 0")
        frame_options = self.frame_skip or self.frame_anchor or self.frame_after or self.frame_pick != "first"
        if frame_options and not self.frame:
            raise ValueError(f"signature {self.id!r} sets frame_* options but not frame = true")
        if self.cause_kinds and not self.cause_window:
            raise ValueError(f"signature {self.id!r} sets cause_kinds but not cause_window")
        if self.frame_pick != "first" and not self.frame_anchor:
            raise ValueError(f"signature {self.id!r} has frame_pick = {self.frame_pick!r} but no frame_anchor")
        if bool(self.look_back_regex) != (self.look_back > 0):
            raise ValueError(f"signature {self.id!r}: look_back and look_back_regex go together")
        return self


class Interaction(_Strict):
    """When ``regex`` matches (also on a partial line: prompts have no newline), send ``send``.

    ``send`` may use ``{user}``/``{password}`` and other profile vars; an interaction whose vars are missing
    is skipped. ``max`` bounds how often it fires in one boot so a prompt loop cannot spin forever.
    """

    id: str
    regex: Regex
    send: str
    reference: str
    max: int = Field(default=1, ge=1, le=100)
    delay: float = Field(default=0.0, ge=0.0, le=10.0)


class Prompt(_Strict):
    """A console line that waits for an answer bootlab does not give (an installer's dialog title, a boot
    menu): a boot that hangs with it among the last lines on screen is titled ``stopped at prompt "<line>"``
    rather than ``hang after <stage>``, so an unanswered question is not mistaken for a dead guest. The
    ``prompt`` named group, when the regex has one, is the part quoted in the title. Prompts bootlab answers are
    ``[[interaction]]`` entries instead; a last line without newline that ends in ``:``, ``?``, ``>``, ``#``,
    ``$`` or ``]`` counts as a prompt without any entry."""

    regex: Regex
    reference: str


class FrameGroup(_Strict):
    """A named set of functions (``regex`` searched in a frame's name), for guilty-frame selection.

    ``skip_always``: machinery every report passes through (reporting, traps, interrupt entry, sanitizers,
    locking), never the guilty function. ``helper``: generic helpers (allocation, string and list helpers,
    the driver core) that are skipped unless the report's stack has nothing else, and then the first one
    stands. Other groups are named by the signatures that need them, in ``frame_skip`` (never guilty for that
    signature) or ``frame_anchor`` (dispatchers a stall's trace passes through). ``title``: a picked frame of
    this group is titled by this name instead (every ``synchronize_*rcu*`` hang is one bug).
    """

    name: str
    regex: Regexes
    reference: str
    skip_always: bool = False
    helper: bool = False
    title: str | None = None

    @model_validator(mode="after")
    def _one_role(self) -> FrameGroup:
        if self.skip_always and self.helper:
            raise ValueError(f"frame group {self.name!r} is both skip_always and helper; choose one")
        return self


class FrameRename(_Strict):
    """One function known under several names (syscall wrappers ``__x64_sys_foo``, ``__se_sys_foo``):
    ``regex`` (full match on the frame name) -> ``to`` (a template over its named groups)."""

    regex: Regex
    to: str
    reference: str


class Frames(_Strict):
    """How stack frames look and which are never guilty.

    ``regex``: a line of a stack trace (``frame`` group); ``pc``: the faulting PC in a register dump
    (``RIP: 0010:func+0x..``, ``pc : func+0x..``), a candidate frame that comes before the trace; ``start``:
    a line that starts a stack trace (``Call Trace:``): frames are taken from the first trace only, so another
    task's or CPU's trace printed next does not title the report. ``skip`` (regexes) and ``group`` entries
    with ``skip_always`` are skipped for every signature, ``helper`` groups unless nothing else is left.
    """

    regex: Regexes = Field(default_factory=list)
    pc: Regexes = Field(default_factory=list)
    start: Regexes = Field(default_factory=list)
    skip: Regexes = Field(default_factory=list)
    group: list[FrameGroup] = Field(default_factory=list)
    rename: list[FrameRename] = Field(default_factory=list)
    reference: str = ""

    @model_validator(mode="after")
    def _unique_groups(self) -> Frames:
        names = [g.name for g in self.group]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate frame group {sorted(dup)[0]!r}")
        return self


class Context(_Strict):
    """Who printed a line, for consoles where several CPUs and tasks interleave their output.

    ``regex`` captures ``context`` (Linux with CONFIG_PRINTK_CALLER: ``[T1234]`` for a task, ``[C1]`` for a
    CPU). A report takes its following lines only from its own context, so another CPU's output cannot break
    its frames or captures. After a line matching ``open_after`` (a report that makes every CPU dump its
    stack), lines of every context belong to it.
    """

    regex: Regex
    open_after: Regex | None = None
    reference: str

    @field_validator("regex")
    @classmethod
    def _context_group(cls, v: str) -> str:
        if "(?P<context>" not in v:
            raise ValueError("context regex needs a (?P<context>...) group")
        return v


class PackFile(_Strict):
    """One ``<name>.toml``. ``extends`` names a pack whose entries this one adds to (same id/name
    replaces)."""

    name: str
    description: str
    reference: str
    extends: str | None = None
    stream: Literal["serial", "stderr"] = "serial"
    vars: dict[str, str] = Field(default_factory=dict)
    milestone: list[Milestone] = Field(default_factory=list)
    ready: Ready | None = None
    shell_prompt: Regex | None = None
    signature: list[Signature] = Field(default_factory=list)
    interaction: list[Interaction] = Field(default_factory=list)
    prompt: list[Prompt] = Field(default_factory=list)
    frames: Frames | None = None
    context: Context | None = None

    @model_validator(mode="after")
    def _unique(self) -> PackFile:
        for what, ids in (
            ("signature", [s.id for s in self.signature]),
            ("interaction", [i.id for i in self.interaction]),
            ("milestone", [m.name for m in self.milestone]),
        ):
            dup = {i for i in ids if ids.count(i) > 1}
            if dup:
                raise ValueError(f"duplicate {what} {sorted(dup)[0]!r}")
        return self
