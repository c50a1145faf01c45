"""The observer: a pure state machine from console bytes (with arrival times) to stages, findings and actions.

It does no I/O, so a live boot and ``bootlab classify`` run the very same code, and unit tests replay recorded
logs through it. It is fed raw bytes; it keeps nothing of them (the caller writes them to the log) beyond the
line being written and, for pending findings, the few lines a title may still need: memory stays flat whatever
the guest prints.

Matching runs on a cleaned copy (see :mod:`bootlab.console.clean`). Milestones, the ready condition and
interactions are also tried on the *partial* line, because prompts (``redox login: ``) have no newline;
whatever fired on the partial line is remembered so it does not fire again when the line completes. Failure
signatures need whole lines.

Besides findings it keeps what the clocks and a hang's verdict need: a count of lines not seen before (numbers
and addresses aside: the no-progress rule's sign of life, kept as a bounded set of hashes), a refused login before
ready (the packs' ``[ready] login_failed``), and the console's last few KB, from which
:meth:`Observer.stopped_view` reads the last lines and the prompt a boot stopped on.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from bootlab.console.clean import clean, clean_partial, incremental_decoder, screen_lines
from bootlab.packs.loader import CompiledSignature, FrameRule, PackSet
from bootlab.verdict import Death, Incident, StageTime, normalise_title

# a line longer than this without a newline is cut (a flood without newlines must not grow memory)
MAX_LINE = 8192
# pending findings waiting for more lines; the oldest is resolved early when there are more
MAX_PENDING = 64
# incidents kept per boot; further ones are counted, not stored
MAX_INCIDENTS = 1000
# candidate frames kept per pending finding (the guilty one is near the top of its stack)
MAX_FRAMES = 64
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# of each line kept for look_back (what names a process or device is near its start; a flood of long lines must
# not hold look_back x MAX_LINE characters)
LOOK_BACK_CHARS = 1024
# distinct lines remembered for the no-progress rule (a flood repeats itself; a booting system does not)
MAX_DISTINCT = 4096
# what varies between two prints of "the same" line: timestamps, counters, clocks (runs of digits) and addresses,
# pointers, cookies (a token of hex digits with at least one decimal digit, or 0x-prefixed): a flood whose lines
# differ only in 'at ffffa1c0...' is one line repeated. A token only: 'vda1' and 'vdb1' stay two devices.
_VARYING = re.compile(r"(?<!\w)(?:0[xX])?[0-9a-fA-F]*\d[0-9a-fA-F]*|\d+")
# the console text kept for where a hang stopped (its last lines and prompt)
TAIL = 8192
# the last lines of the console a verdict quotes
LAST_LINES = 10
# a last line ending so (with no newline after it) waits for input
_PROMPT_END = (":", "?", ">", "#", "$", "]")
MAX_PROMPT = 120


def wants_shell(packs: PackSet, variables: dict[str, str] | None = None) -> bool:
    """Whether a boot is ready only at the shell prompt after logging in, rather than at the login prompt.

    ``vars.ready = "login"`` or ``"shell"`` says so explicitly. Otherwise a boot with credentials (a non-empty
    ``password``, from the profile or the pack's own ``[vars]``) logs in and must reach the shell: a login prompt
    proves nothing about the password, and ``Login incorrect`` is then ``login-failed``. Packs that know no shell
    prompt are ready at their login prompt."""
    merged = {**packs.vars, **(variables or {})}
    ready = merged.get("ready")
    if ready in ("login", "shell"):
        return ready == "shell"
    return bool(packs.shell) and bool(merged.get("password"))


@dataclass
class Stage:
    name: str
    t: float | None


@dataclass
class Action:
    """Text the boot loop should send to the guest, after ``delay`` seconds."""

    interaction: str
    send: str
    delay: float
    t: float | None


@dataclass
class Finding:
    """A signature that fired: fatal (ends the boot) or an incident."""

    signature: str
    kind: str
    fatal: bool
    title: str
    process: str | None
    line: str
    t: float | None
    seq: int
    pack: str = ""
    lineno: int = 0  # the line of the console it was on (1-based), for cause_window


@dataclass
class _Pending:
    sig: CompiledSignature
    line: str
    t: float | None
    seq: int
    captures: dict[str, str]
    left: int
    fatal: bool = False
    dropped: bool = False
    lineno: int = 0
    context: str | None = None  # who printed the header (CONFIG_PRINTK_CALLER), when the pack says
    open_context: bool = False  # every context's lines belong to it from now on
    frame_on: bool = True  # frames count (false until the signature's frame_after line)
    frame_done: bool = False  # the guilty frame is decided (or the first stack trace ended)
    trace_frames: int = 0  # stack-trace frame lines seen, skipped or not
    frames: list[str] = field(default_factory=list)  # guilty candidates, top of the stack first
    header_frame: str | None = None  # the function the header names (KASAN's "in func", WARNING's "at func")
    helper_frame: str | None = None  # the first generic helper seen (titles the report when nothing else does)


class Observer:
    """Feed it console output; read ``stages``, ``ready_t``, ``fatal``, ``incidents``; act on returned
    actions."""

    def __init__(
        self,
        packs: PackSet,
        *,
        variables: dict[str, str] | None = None,
        wait_for_shell: bool = False,
        count_distinct: bool = True,
    ) -> None:
        """``count_distinct = False`` skips counting distinct lines (:attr:`distinct_lines` stays 0): only the
        clocks of a live boot read it, and offline classification is a fifth faster without it."""
        self.packs = packs
        self.count_distinct = count_distinct
        self.vars = {**packs.vars, **(variables or {})}
        self.ready_patterns = packs.shell if wait_for_shell else (*packs.login, *packs.shell)
        self.stages: list[Stage] = []
        self.ready_t: float | None = None
        self.ready_line: str | None = None
        self.fatal: Finding | None = None
        self.incidents: list[Finding] = []
        self.incidents_dropped = 0
        self.lines = 0
        self.last_t: float | None = None
        self._stage_index = -1
        self._decoder = incremental_decoder()
        self._partial = ""  # raw (uncleaned) text of the line being written
        self._partial_clean = ""
        self._fired_on_line: set[str] = set()
        self._interaction_counts: dict[str, int] = {}
        self._pending: list[_Pending] = []
        self._fatal_pending: _Pending | None = None
        self._seq = 0
        self._finished = False
        self._dump_end: re.Pattern[str] | None = None  # the fatal signature's (or its death's) dump_end
        # the last lines, for signatures whose process is named before the fault (``look_back``)
        self._recent: deque[str] = deque(maxlen=packs.look_back)
        self.dump_ended = False  # the fatal signature's dump_end line has been seen
        self.death: Finding | None = None  # the panic an earlier report caused (see Signature.cause_window)
        self.login_failed: Finding | None = None  # the guest refused bootlab's login (before ready)
        # lines not seen before (numbers and addresses aside): the no-progress rule's sign of life
        self.distinct_lines = 0
        self._seen_lines: dict[int, None] = {}
        self._tail = ""  # the last TAIL characters of decoded console text, escapes and all

    # ------------------------------------------------------------------ feeding

    def feed(self, data: bytes, t: float | None = None) -> list[Action]:
        """Take the next chunk of console output that arrived at ``t`` (seconds since QEMU start)."""
        if t is not None:
            self.last_t = t
        return self.feed_text(self._decoder.decode(data), t)

    def feed_text(self, text: str, t: float | None = None) -> list[Action]:
        """Take already-decoded text (offline logs decode the whole file at once)."""
        actions: list[Action] = []
        if not text:
            return actions
        self._tail = (self._tail + text)[-TAIL:]
        self._partial += text
        if "\n" in self._partial:
            *complete, self._partial = self._partial.split("\n")
            for raw in complete:
                self._line(clean(raw), t, actions)
        while len(self._partial) > MAX_LINE:
            raw, self._partial = self._partial[:MAX_LINE], self._partial[MAX_LINE:]
            self._line(clean(raw), t, actions)
        if self._partial:
            cleaned = clean_partial(self._partial)
            if cleaned != self._partial_clean:
                self._partial_clean = cleaned
                self._match_progress(cleaned, t, actions)
        return actions

    def finish(self, t: float | None = None) -> None:
        """The stream ended (or the boot is over): flush the partial line, resolve pending findings."""
        if self._finished:
            return
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self._partial += tail
        if self._partial:
            self._line(clean(self._partial), t, [])
            self._partial = ""
        for p in list(self._pending):
            self._resolve(p)
        self._pending.clear()
        self._finished = True

    # ------------------------------------------------------------------ state

    @property
    def stage(self) -> str | None:
        return self.stages[-1].name if self.stages else None

    @property
    def ready(self) -> bool:
        return self.ready_t is not None

    @property
    def fatal_seen(self) -> bool:
        """A fatal signature has fired (its title may still be waiting for the rest of the dump)."""
        return self._fatal_pending is not None or self.fatal is not None

    @property
    def fatal_t(self) -> float | None:
        if self.fatal is not None:
            return self.fatal.t
        return self._fatal_pending.t if self._fatal_pending is not None else None

    @property
    def fatal_pending_line(self) -> str | None:
        """The fatal line, also while its finding still waits for the rest of the dump."""
        if self.fatal is not None:
            return self.fatal.line
        return self._fatal_pending.line if self._fatal_pending is not None else None

    def verdict_fields(self) -> dict[str, object]:
        """The verdict fields the observer knows: stage, stages, title, fatal line and time, incidents, and the
        death a crash's first report caused. The same for a live boot, a named VM and `bootlab classify`. A
        refused login stands where a fatal report would."""
        fatal = self.fatal or self.login_failed
        death = self.death
        return {
            "stage": self.stage,
            "stages": [StageTime(name=s.name, t=s.t) for s in self.stages],
            "title": fatal.title if fatal else None,
            "fatal_line": fatal.line if fatal else None,
            "fatal_t": fatal.t if fatal else None,
            "incidents": [
                Incident(kind=i.kind, title=i.title, process=i.process, line=i.line, t=i.t) for i in self.incidents
            ],
            "death": Death(title=death.title, line=death.line, t=death.t) if death and fatal else None,
        }

    @property
    def dump_complete(self) -> bool:
        """The fatal finding has everything its title needs: no need to wait for more of the dump."""
        return self.fatal is not None or (self._fatal_pending is not None and self._fatal_pending.left <= 0)

    # ------------------------------------------------------------------ matching

    def _line(self, line: str, t: float | None, actions: list[Action]) -> None:
        self.lines += 1
        if line != self._partial_clean:
            self._match_progress(line, t, actions)
        self._fired_on_line.clear()
        self._partial_clean = ""
        line = line.rstrip()
        if self.count_distinct:
            self._count_distinct(line)
        if self.ready_t is None and self.login_failed is None and not self.fatal_seen:
            self._match_login_failed(line, t)
        self._match_signatures(line, t)
        if self._recent.maxlen:
            self._recent.append(line[:LOOK_BACK_CHARS])

    def _count_distinct(self, line: str) -> None:
        text = " ".join(_VARYING.sub("#", line).split())
        if not text:
            return
        key = hash(text)  # a flood of long distinct lines keeps 4096 numbers, not 4096 lines
        seen = self._seen_lines
        if key in seen:
            return
        self.distinct_lines += 1
        seen[key] = None
        if len(seen) > MAX_DISTINCT:
            del seen[next(iter(seen))]

    def _match_login_failed(self, line: str, t: float | None) -> None:
        for rx in self.packs.login_failed:
            if rx.search(line):
                self._seq += 1
                self.login_failed = Finding(
                    signature="login-failed", kind="login", fatal=True, title="login failed", process=None,
                    line=line.strip(), t=t, seq=self._seq, lineno=self.lines,
                )  # fmt: skip
                return

    def stopped_view(self) -> tuple[list[str], str | None]:
        """The last lines the console showed (as a person would read them) and the prompt it stopped on, if any:
        the latest line a pack's ``[[prompt]]`` matches, else a last line without newline that ends like a
        prompt. For the verdict of a hang or timeout."""
        text = self._tail
        lines = screen_lines(text)
        if len(text) >= TAIL and lines:
            lines = lines[1:]  # the tail starts in the middle of a line
        prompt: str | None = None
        for line in reversed(lines[-4 * LAST_LINES :]):
            for rx in self.packs.prompts:
                m = rx.search(line)
                if m:
                    named = m.groupdict().get("prompt")
                    prompt = (named or line).strip()
                    break
            if prompt is not None:
                break
        ends_open = not clean(text).rstrip(" \t").endswith("\n")
        if prompt is None and lines and ends_open and lines[-1].endswith(_PROMPT_END):
            prompt = lines[-1]
        runs: list[tuple[str, int]] = []  # a flood's one line is quoted once, with its count
        for line in lines[-4 * LAST_LINES :]:
            if runs and runs[-1][0] == line:
                runs[-1] = (line, runs[-1][1] + 1)
            else:
                runs.append((line, 1))
        shown = [f"{ln} (repeated {n} times)" if n > 1 else ln for ln, n in runs]
        if prompt is not None and len(prompt) > MAX_PROMPT:
            prompt = prompt[: MAX_PROMPT - 3] + "..."
        return shown[-LAST_LINES:], prompt

    def _match_progress(self, text: str, t: float | None, actions: list[Action]) -> None:
        """Milestones, ready and interactions: also on partial lines, each at most once per line."""
        ms = self.packs.milestones
        for i in range(self._stage_index + 1, len(ms)):
            if ms[i].regex.search(text):
                self.stages.append(Stage(ms[i].spec.name, t))
                self._stage_index = i
        if self.ready_t is None:
            for p in self.ready_patterns:
                if p.search(text):
                    self.ready_t = t if t is not None else 0.0
                    self.ready_line = text.rstrip()
                    break
        for inter in self.packs.interactions:
            iid = inter.spec.id
            if iid in self._fired_on_line or self._interaction_counts.get(iid, 0) >= inter.spec.max:
                continue
            if not inter.regex.search(text):
                continue
            try:
                send = inter.spec.send.format_map(self.vars)
            except (KeyError, ValueError):
                continue  # the profile lacks a var this needs (e.g. a password): not ours to answer
            self._fired_on_line.add(iid)
            self._interaction_counts[iid] = self._interaction_counts.get(iid, 0) + 1
            actions.append(Action(iid, send, inter.spec.delay, t))

    def _match_signatures(self, line: str, t: float | None) -> None:
        fired: CompiledSignature | None = None
        match: re.Match[str] | None = None
        prefilter = self.packs.prefilter
        if prefilter is not None and prefilter.search(line):
            for sig in self.packs.signatures:
                match = sig.regex.search(line)
                if match:
                    fired = sig
                    break
        dump_end = self._dump_end
        if dump_end is not None and dump_end.search(line):
            self.dump_ended = True
        if fired is not None:
            for p in self._pending:
                if fired.spec.id in p.sig.spec.superseded_by:
                    p.dropped = True
        if self._pending:
            context = self._context(line)
            if fired is not None and fired.spec.interrupts and not fired.spec.cause_window:
                self._interrupt(fired, context)
            for p in list(self._pending):
                if p.dropped:
                    self._pending.remove(p)
                    continue
                if not self._belongs(p, line, context):
                    continue
                self._follow(p, line)
                if p.left <= 0 or self._complete(p):
                    self._pending.remove(p)
                    self._resolve(p)
        if fired is None or match is None:
            return
        pending = self._new_pending(fired, match, line, t)
        if fired.spec.cause_window and self.death is None and self._caused(pending):
            return
        if self.fatal_seen:
            return  # after a fatal line only the dump matters; later failures are consequences
        self._check_fatal(pending)
        if fired.spec.follow > 0 and not self._complete(pending):
            self._pending.append(pending)
            if len(self._pending) > MAX_PENDING:
                self._resolve(self._pending.pop(0))
        else:
            self._resolve(pending)

    def _new_pending(self, sig: CompiledSignature, match: re.Match[str], line: str, t: float | None) -> _Pending:
        self._seq += 1
        caps = {k: v for k, v in match.groupdict().items() if v is not None}
        header_frame = caps.pop("frame", None) if sig.frame is not None else None
        pending = _Pending(sig, line, t, self._seq, caps, sig.spec.follow, lineno=self.lines)
        pending.context = self._context(line)
        pending.frame_on = sig.frame is None or sig.frame.after is None
        for rx in sig.follow:  # the header line itself may already say what the window looks for
            m = rx.search(line)
            if m:
                for k, v in m.groupdict().items():
                    if v is not None and k != "frame":
                        pending.captures.setdefault(k, v)
        if header_frame is not None and sig.frame is not None:
            pending.header_frame = header_frame.split(".")[0]
            self._candidate(pending, sig.frame, header_frame)
        self._look_back(pending)
        return pending

    def _caused(self, consequence: _Pending) -> bool:
        """A line that reports a death (``cause_window``) after a report: the report titles the boot and this
        line becomes its death. The report is the earliest of the pack's reports (of ``cause_kinds``) that began
        within the window; it may come before a fatal report already seen, which then was a consequence too.
        False when there is no report to blame: the line is a report itself."""
        cause = self._cause_of(consequence)
        current = self._fatal_pending or self.fatal
        if cause is None and (current is None or _key(current) == (consequence.sig.pack, consequence.sig.spec.id)):
            return False  # a report itself, or its own repeat ('---[ end Kernel panic - ...'), not a second death
        self.death = self._finding(consequence, fatal=True)
        self._dump_end = consequence.sig.dump_end or self._dump_end
        if cause is None or cause is current or (current is not None and cause.lineno >= current.lineno):
            return True
        if self._fatal_pending is not None:
            self._fatal_pending.dropped = True
            self._fatal_pending = None
        self.fatal = None
        if isinstance(cause, _Pending):
            cause.fatal = True
            self._fatal_pending = cause
            self._dump_end = self._dump_end or cause.sig.dump_end
            for q in self._pending:  # reports after the cause are its consequences too
                if q.seq > cause.seq:
                    q.dropped = True
        else:
            self.incidents.remove(cause)
            cause.fatal = True
            self.fatal = cause
        return True

    def _cause_of(self, consequence: _Pending) -> Finding | _Pending | None:
        """The earliest report of the consequence's pack (and ``cause_kinds``) within its ``cause_window``."""
        spec = consequence.sig.spec
        since = consequence.lineno - spec.cause_window
        pack = consequence.sig.pack
        kinds = set(spec.cause_kinds)

        def eligible(f_pack: str, sig_id: str, kind: str) -> bool:
            return f_pack == pack and (pack, sig_id) not in self.packs.consequences and (not kinds or kind in kinds)

        causes: list[Finding | _Pending] = [
            p
            for p in self._pending
            if not p.dropped and p.lineno >= since and eligible(p.sig.pack, p.sig.spec.id, p.sig.spec.kind)
        ]
        for f in reversed(self.incidents):
            if f.lineno < since:
                break
            if eligible(f.pack, f.signature, f.kind):
                causes.append(f)
        return min(causes, key=lambda c: c.lineno, default=None)

    def _interrupt(self, fired: CompiledSignature, context: str | None) -> None:
        """Another report begins: reports still waiting for their guilty frame (in the same context) decide it
        from what they have seen, since what follows belongs to the new report."""
        for p in self._pending:
            if p.frame_done or p.sig.frame is None or p.sig.spec.id == fired.spec.id:
                continue
            if p.context is not None and context is not None and p.context != context:
                continue
            self._decide(p, p.frames[0] if p.frames else None)

    def _context(self, line: str) -> str | None:
        rx = self.packs.context
        if rx is None:
            return None
        m = rx.search(line)
        return m.group("context") if m else None

    def _belongs(self, p: _Pending, line: str, context: str | None) -> bool:
        """Whether a line is part of the report ``p`` (interleaved output of other CPUs and tasks is not)."""
        if p.context is None or p.open_context:
            return True
        if context != p.context:
            return False
        opener = self.packs.context_open
        if opener is not None and opener.search(line):
            p.open_context = True
        return True

    def _look_back(self, p: _Pending) -> None:
        """Captures from the ``look_back`` lines before the header, nearest first (each regex's first hit)."""
        n = p.sig.spec.look_back
        if not n:
            return
        earlier = list(self._recent)[-n:]
        for rx in p.sig.look_back:
            for prev in reversed(earlier):
                m = rx.search(prev)
                if m:
                    for k, v in m.groupdict().items():
                        if v is not None:
                            p.captures.setdefault(k, v)
                    break

    def _follow(self, p: _Pending, line: str) -> None:
        p.left -= 1
        rule = p.sig.frame
        for rx in p.sig.follow:
            m = rx.search(line)
            if m:
                for k, v in m.groupdict().items():
                    if v is None:
                        continue
                    if k == "frame" and rule is not None:
                        if not p.frame_done:
                            self._candidate(p, rule, v)
                    else:
                        p.captures.setdefault(k, v)
        if rule is not None and not p.frame_done:
            self._frame_line(p, rule, line)
        self._check_fatal(p)

    def _frame_line(self, p: _Pending, rule: FrameRule, line: str) -> None:
        """Feed one line of the report to its guilty-frame selection."""
        if not p.frame_on:
            p.frame_on = rule.after is not None and rule.after.search(line) is not None
            return
        start = self.packs.frame_start
        if start is not None and start.search(line):
            if p.trace_frames:  # a second stack trace (another task, the allocation stack): the first is over
                self._decide(p, p.frames[0] if p.frames else None)
            return
        for rx in self.packs.frame_pc:
            m = rx.search(line)
            if m and m.group("frame"):
                self._candidate(p, rule, m.group("frame"), pc=True)
                return
        for rx in self.packs.frame_regex:
            m = rx.search(line)
            if m and m.group("frame"):
                p.trace_frames += 1
                self._candidate(p, rule, m.group("frame"))
                return

    def _candidate(self, p: _Pending, rule: FrameRule, raw: str, *, pc: bool = False) -> None:
        """One frame of the report, top of the stack first: skipped, an anchor, or a guilty candidate. A
        generic helper is remembered as a last resort only from a stack or the header: a faulting PC alone in
        a helper says nothing of who called it."""
        # compiler suffixes (.cold, .isra.0, .constprop.0, .part.0) vary between builds
        name = raw.split(".")[0]
        for rx, to in self.packs.frame_rename:
            m = rx.fullmatch(name)
            if m:
                name = to.format_map(m.groupdict())
                break
        for rx, title in rule.anchors:
            if rx.search(name):
                if rule.pick == "anchor":
                    self._decide(p, title or name)
                elif rule.pick == "above-anchor":
                    self._decide(p, p.frames[-1] if p.frames else title or name)
                return
        if rule.skip is not None and rule.skip.search(name):
            return
        if rule.helpers is not None and rule.helpers.search(name):
            if p.helper_frame is None and not pc:
                p.helper_frame = name
            return
        if len(p.frames) < MAX_FRAMES:
            p.frames.append(name)
        if rule.pick == "first":
            self._decide(p, name)

    @staticmethod
    def _decide(p: _Pending, frame: str | None) -> None:
        p.frame_done = True
        if frame is not None:
            p.captures.setdefault("frame", frame)

    def _check_fatal(self, p: _Pending) -> None:
        if p.fatal:
            return
        spec = p.sig.spec
        p.fatal = spec.fatal or any(k in p.captures and rx.search(p.captures[k]) for k, rx in p.sig.fatal_when)
        if p.fatal and self._fatal_pending is None and self.fatal is None:
            self._fatal_pending = p
            self._dump_end = p.sig.dump_end
            # findings that came before the fatal one stay incidents; anything pending after
            # it is a consequence
            for q in self._pending:
                if q.seq > p.seq:
                    q.dropped = True

    def _complete(self, p: _Pending) -> bool:
        """Everything the title and the fatal decision need is known, and nothing may supersede it."""
        spec = p.sig.spec
        if spec.superseded_by and not p.fatal:
            return False
        needed = set(_PLACEHOLDER.findall(spec.title)) | set(spec.fatal_when if not p.fatal else ())
        if p.frame_done:
            needed.discard("frame")
        return needed <= p.captures.keys()

    def _finding(self, p: _Pending, *, fatal: bool) -> Finding:
        spec = p.sig.spec
        if p.sig.frame is not None and "frame" not in p.captures:
            # the window ended before an anchor: the top guilty frame; with none, the header's own function,
            # else the first generic helper
            frame = p.frames[0] if p.frames else p.header_frame or p.helper_frame
            if frame is not None:
                p.captures["frame"] = frame
        try:
            title = spec.title.format_map(p.captures)
        except KeyError:
            title = (spec.title_fallback or _PLACEHOLDER.sub("?", spec.title)).format_map(_Default(p.captures))
        kind = spec.fatal_kind if (fatal and not spec.fatal and spec.fatal_kind) else spec.kind
        return Finding(
            signature=spec.id,
            kind=kind,
            fatal=fatal,
            title=normalise_title(title),
            process=p.captures.get("process"),
            line=p.line,
            t=p.t,
            seq=p.seq,
            pack=p.sig.pack,
            lineno=p.lineno,
        )

    def _resolve(self, p: _Pending) -> None:
        if p.dropped:
            return
        finding = self._finding(p, fatal=p.fatal)
        if p.fatal and p is self._fatal_pending:
            self.fatal = finding
            self._fatal_pending = None
        elif not p.fatal:
            if len(self.incidents) < MAX_INCIDENTS:
                self.incidents.append(finding)
                self.incidents.sort(key=lambda f: f.seq)
            else:
                self.incidents_dropped += 1


def _key(report: Finding | _Pending) -> tuple[str, str]:
    """(pack, signature id) of a report, resolved or still pending."""
    if isinstance(report, _Pending):
        return report.sig.pack, report.sig.spec.id
    return report.pack, report.signature


class _Default(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"
