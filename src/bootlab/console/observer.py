"""The observer: a pure state machine from console bytes (with arrival times) to stages, findings and actions.

It does no I/O, so a live boot and ``bootlab classify`` run the very same code, and unit tests replay recorded
logs through it. It is fed raw bytes; it keeps nothing of them (the caller writes them to the log) beyond the
line being written and, for pending findings, the few lines a title may still need: memory stays flat whatever
the guest prints.

Matching runs on a cleaned copy (see :mod:`bootlab.console.clean`). Milestones, the ready condition and
interactions are also tried on the *partial* line, because prompts (``redox login: ``) have no newline;
whatever fired on the partial line is remembered so it does not fire again when the line completes. Failure
signatures need whole lines.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from bootlab.console.clean import clean, clean_partial, incremental_decoder
from bootlab.packs.loader import CompiledSignature, PackSet
from bootlab.verdict import normalise_title

# a line longer than this without a newline is cut (a flood without newlines must not grow memory)
MAX_LINE = 8192
# pending findings waiting for more lines; the oldest is resolved early when there are more
MAX_PENDING = 64
# incidents kept per boot; further ones are counted, not stored
MAX_INCIDENTS = 1000
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


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
    lines_seen: list[str] = field(default_factory=list)


class Observer:
    """Feed it console output; read ``stages``, ``ready_t``, ``fatal``, ``incidents``; act on returned
    actions."""

    def __init__(
        self,
        packs: PackSet,
        *,
        variables: dict[str, str] | None = None,
        wait_for_shell: bool = False,
    ) -> None:
        self.packs = packs
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
        self._fatal_sig: CompiledSignature | None = None
        # the last lines, for signatures whose process is named before the fault (``look_back``)
        self._recent: deque[str] = deque(maxlen=packs.look_back)
        self.dump_ended = False  # the fatal signature's dump_end line has been seen

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
        self._match_signatures(line, t)
        if self._recent.maxlen:
            self._recent.append(line)

    def _match_progress(self, text: str, t: float | None, actions: list[Action]) -> None:
        """Milestones, ready and interactions: also on partial lines, each at most once per line."""
        ms = self.packs.milestones
        for i in range(self._stage_index + 1, len(ms)):
            if ms[i].regex.search(text):
                self.stages.append(Stage(ms[i].spec.name, t))
                self._stage_index = i
        if self.ready_t is None and any(p.search(text) for p in self.ready_patterns):
            self.ready_t = t if t is not None else 0.0
            self.ready_line = text.rstrip()
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
        fatal_sig = self._fatal_sig
        if fatal_sig is not None and fatal_sig.dump_end is not None and fatal_sig.dump_end.search(line):
            self.dump_ended = True
        if fired is not None:
            for p in self._pending:
                if fired.spec.id in p.sig.spec.superseded_by:
                    p.dropped = True
        for p in list(self._pending):
            if p.dropped:
                self._pending.remove(p)
                continue
            self._follow(p, line)
            if p.left <= 0 or self._complete(p):
                self._pending.remove(p)
                self._resolve(p)
        if fired is None or match is None or self.fatal_seen:
            return  # after a fatal line only the dump matters; later failures are consequences
        self._seq += 1
        caps = {k: v for k, v in match.groupdict().items() if v is not None}
        pending = _Pending(fired, line, t, self._seq, caps, fired.spec.follow)
        for rx in fired.follow:  # the header line itself may already say what the window looks for
            m = rx.search(line)
            if m:
                for k, v in m.groupdict().items():
                    if v is not None:
                        pending.captures.setdefault(k, v)
        self._look_back(pending)
        self._check_fatal(pending)
        if fired.spec.follow > 0 and not self._complete(pending):
            self._pending.append(pending)
            if len(self._pending) > MAX_PENDING:
                self._resolve(self._pending.pop(0))
        else:
            self._resolve(pending)

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
        for rx in p.sig.follow:
            m = rx.search(line)
            if m:
                for k, v in m.groupdict().items():
                    if v is not None:
                        p.captures.setdefault(k, v)
        if p.sig.spec.frame and "frame" not in p.captures:
            for rx in self.packs.frame_regex:
                m = rx.search(line)
                if m and m.groupdict().get("frame"):
                    # compiler suffixes (.cold, .isra.0, .constprop.0, .part.0) vary between builds
                    frame = m.group("frame").split(".")[0]
                    if not any(s.search(frame) for s in self.packs.frame_skip):
                        p.captures["frame"] = frame
                    break
        self._check_fatal(p)

    def _check_fatal(self, p: _Pending) -> None:
        if p.fatal:
            return
        spec = p.sig.spec
        p.fatal = spec.fatal or any(k in p.captures and rx.search(p.captures[k]) for k, rx in p.sig.fatal_when)
        if p.fatal and self._fatal_pending is None and self.fatal is None:
            self._fatal_pending = p
            self._fatal_sig = p.sig
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
        return needed <= p.captures.keys()

    def _resolve(self, p: _Pending) -> None:
        if p.dropped:
            return
        spec = p.sig.spec
        try:
            title = spec.title.format_map(p.captures)
        except KeyError:
            title = (spec.title_fallback or _PLACEHOLDER.sub("?", spec.title)).format_map(_Default(p.captures))
        kind = spec.fatal_kind if (p.fatal and not spec.fatal and spec.fatal_kind) else spec.kind
        finding = Finding(
            signature=spec.id,
            kind=kind,
            fatal=p.fatal,
            title=normalise_title(title),
            process=p.captures.get("process"),
            line=p.line,
            t=p.t,
            seq=p.seq,
        )
        if p.fatal and p is self._fatal_pending:
            self.fatal = finding
            self._fatal_pending = None
        elif not p.fatal:
            if len(self.incidents) < MAX_INCIDENTS:
                self.incidents.append(finding)
                self.incidents.sort(key=lambda f: f.seq)
            else:
                self.incidents_dropped += 1


class _Default(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"
