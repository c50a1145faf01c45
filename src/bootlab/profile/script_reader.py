"""Find the QEMU command a run script runs, without running it.

Users arrive with run scripts: a ``run-backup.sh`` of one line, or a ``run-dev.sh`` with variables, a ``case
"$1"`` over modes, here-documents for expect and a ``pkill`` or two. :func:`read_script` follows such a script
the way sh would, as far as that needs no command to run: it sets the variables the script sets (and bash
arrays), takes ``$1``... from ``--mode`` and the arguments given, takes the ``case`` branch that matches, follows
``cd``, functions, ``source``d files and loops, skips comments and here-documents, and stops at the first
``qemu-system-*`` command of each path through the script.

Where it cannot know which way the script goes (``if [ -e /dev/kvm ]``, ``case "$(uname)"``), it follows every
branch: a script that picks its accelerator by host gives one command per accelerator, which the importer turns
into an accelerator list. Whatever it could not follow (a command substitution, ``read``, ``eval``) and every
command it did not run (``pkill``, ``make``, ``qemu-img create``) is reported by line.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from bootlab.errors import UsageError
from bootlab.profile.sh_words import Expander, Segment, Unfollowed, Var, open_quote, raw_words, segments

__all__ = ["Note", "Reading", "ScriptCommand", "read_script", "split_command_line"]

MAX_PATHS = 32  # paths through a script followed at once (each unknown `if` doubles them)
MAX_LOOP = 64  # iterations of a loop whose end is known
MAX_DEPTH = 16  # nested function calls and sourced files
MAX_STEPS = 5000  # commands followed in all (long scripts that branch a lot stop here, said so)

# Commands that change nothing the QEMU command depends on: not listed as "not run".
_QUIET = frozenset(
    {"echo", "printf", "true", "false", ":", "sleep", "trap", "wait", "test", "[", "[[", "set", "clear",
     "stty", "tput", "ulimit", "umask", "hash", "type", "which", "command", "return", "break", "continue"}
)  # fmt: skip
_PREFIXES = frozenset({"exec", "sudo", "nohup", "time", "nice", "env", "command", "builtin", "doas", "caffeinate"})
# Commands that run another command given as words or as one string (`tmux new-session "qemu-system-..."`).
_WRAPPERS = frozenset(
    {"tmux", "screen", "sh", "bash", "zsh", "dash", "xterm", "gnome-terminal", "konsole", "setsid", "timeout",
     "taskset", "stdbuf", "script", "unbuffer", "chrt", "ionice", "numactl", "systemd-run", "strace"}
)  # fmt: skip
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?(\+?)=(.*)", re.S)
_FUNC = re.compile(
    r"(?:function\s+)?([A-Za-z_][A-Za-z0-9_.:-]*)\s*\(\s*\)\s*(.*)|function\s+([A-Za-z_][\w.:-]*)\s*(.*)"
)


@dataclass(frozen=True)
class Note:
    """A line of the script, and what the reader did not do with it."""

    line: int
    text: str
    why: str = ""

    def __str__(self) -> str:
        return f"line {self.line}: {self.text}" + (f" ({self.why})" if self.why else "")


@dataclass
class ScriptCommand:
    """One ``qemu-system-*`` command the script can run, and the choices on the way to it."""

    argv: list[str]
    line: int
    via: list[str]
    base: Path


@dataclass
class Reading:
    """What a script runs: ``commands`` (distinct argvs, in the order of the script's branches), the modes of
    its ``case "$1"`` switch, what could not be followed, what was not run, and variables taken from the
    environment or left empty."""

    path: str
    commands: list[ScriptCommand]
    modes: list[str] = field(default_factory=list)
    mode_line: int | None = None
    unfollowed: list[Note] = field(default_factory=list)
    not_run: list[Note] = field(default_factory=list)
    from_env: list[str] = field(default_factory=list)
    unset: list[str] = field(default_factory=list)


# --- the script as nodes -----------------------------------------------------------------------------------------
@dataclass
class _Simple:
    seg: Segment


@dataclass
class _If:
    branches: list[tuple[list[object], list[object], int]]  # (condition, body, line)
    otherwise: list[object] | None
    line: int


@dataclass
class _Case:
    word: str
    items: list[tuple[list[str], list[object], int]]
    line: int


@dataclass
class _Loop:
    kind: str
    header: str
    cond: list[object]
    body: list[object]
    line: int


@dataclass
class _Func:
    name: str
    body: list[object]
    line: int


@dataclass
class _Group:
    body: list[object]


@dataclass
class _AndOr:
    first: object
    rest: list[tuple[str, object]]  # ("&&" | "||", node)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Physical lines joined where a backslash or an open quote continues them; here-document bodies skipped."""
    lines = text.splitlines()
    out: list[tuple[int, str]] = []
    i = 0
    pending: list[str] = []
    while i < len(lines):
        start = i
        buf = lines[i]
        while True:
            stripped = buf.rstrip()
            trailing = len(stripped) - len(stripped.rstrip("\\"))
            if trailing % 2 == 1 and not stripped.lstrip().startswith("#") and i + 1 < len(lines):
                i += 1
                buf = stripped[:-1] + " " + lines[i]
            elif (open_quote(buf) or _open_array(buf)) and i + 1 < len(lines):
                i += 1
                buf = buf + "\n" + lines[i]
            else:
                break
        i += 1
        out.append((start + 1, buf))
        _, heredocs = segments(buf, start + 1)
        pending = list(heredocs)
        while pending and i < len(lines):
            delim = pending[0]
            strip_tabs = delim.startswith("-")
            word = delim[1:] if strip_tabs else delim
            body_line = lines[i].lstrip("\t") if strip_tabs else lines[i]
            i += 1
            if body_line == word:
                pending.pop(0)
    return out


_ARRAY_START = re.compile(r"^\s*(?:(?:export|local|declare|typeset|readonly)(?:\s+-\w+)*\s+)?[A-Za-z_]\w*\+?=\(")


def _open_array(text: str) -> bool:
    """True when ``text`` starts a bash array assignment ``NAME=(`` whose ``)`` is on a later line."""
    if not _ARRAY_START.match(text):
        return False
    word = next((w for w in raw_words(text.strip()) if "=(" in w), "")
    body = word[word.index("=(") + 1 :] if word else ""
    return body.count("(") > body.count(")") or not body.rstrip().endswith(")")


class _Parser:
    """Segments -> nodes: if/elif/else, case, for/while/until, functions, { } groups, && and || lists."""

    def __init__(self, segs: list[Segment], notes: list[Note]) -> None:
        self.segs = segs
        self.pos = 0
        self.notes = notes
        self.last_op = "\n"

    def peek_word(self) -> str:
        if self.pos >= len(self.segs):
            return ""
        words = self.segs[self.pos].text.split(None, 1)
        return words[0] if words else ""

    def take(self) -> Segment:
        seg = self.segs[self.pos]
        self.pos += 1
        self.last_op = seg.op
        return seg

    def take_keyword(self, keyword: str) -> Segment:
        """Consume ``keyword`` at the start of the current segment; what follows it stays as a new segment."""
        seg = self.segs[self.pos]
        rest = seg.text.split(None, 1)[1] if len(seg.text.split(None, 1)) > 1 else ""
        if rest:
            self.segs[self.pos] = replace(seg, text=rest)
        else:
            self.take()
        return seg

    def block(self, stop: tuple[str, ...], *, case_item: bool = False) -> list[object]:
        nodes: list[object] = []
        while self.pos < len(self.segs):
            if self.peek_word() in stop:
                return nodes
            node = self.command()
            if node is None:
                continue
            nodes.append(node)
            if case_item and self.last_op in (";;", ";&", ";;&"):
                return nodes
        return nodes

    def command(self) -> object | None:
        node = self.compound()
        if node is None:
            return None
        rest: list[tuple[str, object]] = []
        while self.last_op in ("&&", "||") and self.pos < len(self.segs):
            op = self.last_op
            nxt = self.compound()
            if nxt is None:
                break
            rest.append((op, nxt))
        return _AndOr(node, rest) if rest else node

    def compound(self) -> object | None:
        word = self.peek_word()
        seg = self.segs[self.pos]
        if word == "if":
            return self.parse_if()
        if word == "case":
            return self.parse_case()
        if word in ("for", "while", "until", "select"):
            return self.parse_loop(word)
        if word in ("{", "("):
            self.take_keyword(word)
            body = self.block(("}", ")"))
            if self.pos < len(self.segs):
                self.take_keyword(self.peek_word())
            return _Group(body)
        m = _FUNC.fullmatch(seg.text)
        if m and (m.group(1) or m.group(3)) and (seg.text.startswith("function") or "()" in seg.text.replace(" ", "")):
            return self.parse_func(m)
        if word in ("then", "do", "else", "elif", "fi", "done", "esac", "}", ")", "in"):
            self.notes.append(Note(seg.line, seg.text, f"unexpected `{word}`"))
            self.take()
            return None
        return _Simple(self.take())

    def parse_if(self) -> object:
        line = self.segs[self.pos].line
        self.take_keyword("if")
        branches: list[tuple[list[object], list[object], int]] = []
        otherwise: list[object] | None = None
        cond = self.block(("then",))
        while self.pos < len(self.segs):
            self.take_keyword("then")
            body = self.block(("elif", "else", "fi"))
            branches.append((cond, body, line))
            word = self.peek_word()
            if word == "elif":
                line = self.segs[self.pos].line
                self.take_keyword("elif")
                cond = self.block(("then",))
                continue
            if word == "else":
                self.take_keyword("else")
                otherwise = self.block(("fi",))
            break
        if self.peek_word() == "fi":
            self.take_keyword("fi")
        return _If(branches, otherwise, branches[0][2] if branches else line)

    def parse_case(self) -> object | None:
        seg = self.segs[self.pos]
        m = re.fullmatch(r"case\s+(.+?)\s+in(?:\s+(.*))?", seg.text, re.S)
        if not m:
            self.notes.append(Note(seg.line, seg.text, "a `case` bootlab cannot read"))
            self.take()
            return None
        if m.group(2):
            self.segs[self.pos] = replace(seg, text=m.group(2))
        else:
            self.take()
        items: list[tuple[list[str], list[object], int]] = []
        while self.pos < len(self.segs) and self.peek_word() != "esac":
            item = self.segs[self.pos]
            text = item.text
            while ")" not in text.replace("$(", "") and item.op == "|" and self.pos + 1 < len(self.segs):
                self.take()  # `a|b)`: the pattern's `|` looked like a pipe
                item = self.segs[self.pos]
                text = text + "|" + item.text
            close = _pattern_end(text)
            if close < 0:
                self.notes.append(Note(item.line, item.text, "a `case` pattern bootlab cannot read"))
                self.take()
                continue
            patterns = [p.strip() for p in text[:close].strip().lstrip("(").split("|")]
            rest = text[close + 1 :].strip()
            if rest:
                self.segs[self.pos] = replace(item, text=rest)
                body = self.block(("esac",), case_item=True)
            else:
                self.take()
                body = [] if item.op in (";;", ";&") else self.block(("esac",), case_item=True)
            items.append((patterns, body, item.line))
        if self.peek_word() == "esac":
            self.take_keyword("esac")
        return _Case(m.group(1), items, seg.line)

    def parse_loop(self, kind: str) -> object:
        seg = self.segs[self.pos]
        self.take_keyword(kind)
        if kind in ("for", "select"):
            header = self.take().text if self.peek_word() != "do" else ""
            cond: list[object] = []
        else:
            header = ""
            cond = self.block(("do",))
        if self.peek_word() == "do":
            self.take_keyword("do")
        body = self.block(("done",))
        if self.peek_word() == "done":
            self.take_keyword("done")
        return _Loop(kind, header, cond, body, seg.line)

    def parse_func(self, m: re.Match[str]) -> object:
        seg = self.take()
        name = m.group(1) or m.group(3)
        rest = (m.group(2) if m.group(1) else m.group(4)) or ""
        if not rest and self.peek_word() == "{":
            self.take_keyword("{")
        elif rest.startswith("{") and rest[1:].strip():
            self.segs.insert(self.pos, replace(seg, text=rest[1:].strip()))
        body = self.block(("}",))
        if self.peek_word() == "}":
            self.take_keyword("}")
        return _Func(name, body, seg.line)


def _pattern_end(text: str) -> int:
    """Index of the unquoted `)` that ends a case pattern, or -1."""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            end = text.find(ch, i + 1)
            i = len(text) if end < 0 else end + 1
            continue
        if ch == "\\":
            i += 2
            continue
        if ch == ")":
            return i
        i += 1
    return -1


def parse(text: str, notes: list[Note]) -> list[object]:
    segs: list[Segment] = []
    for line, logical in _logical_lines(text):
        segs.extend(segments(logical, line)[0])
    return _Parser(segs, notes).block(())


# --- following the script ----------------------------------------------------------------------------------------
@dataclass
class _World:
    """One path through the script: its variables, arguments, functions, directory and choices so far."""

    vars: dict[str, Var]
    args: list[str]
    funcs: dict[str, _Func]
    base: Path
    via: list[str] = field(default_factory=list)
    found: ScriptCommand | None = None
    error: str | None = None
    done: bool = False
    returning: bool = False

    def fork(self, choice: str) -> _World:
        return _World(dict(self.vars), list(self.args), dict(self.funcs), self.base, [*self.via, choice],
                      self.found, self.error, self.done)  # fmt: skip

    def key(self) -> tuple[object, ...]:
        """What makes two paths different from here on (the choices that led here do not)."""
        values = frozenset(
            (k, tuple(v.value) if isinstance(v.value, list) else v.value, v.unknown is not None)
            for k, v in self.vars.items()
        )
        found = tuple(self.found.argv) if self.found else None
        return (values, tuple(self.args), str(self.base), found, self.error, self.done)


class _Follower:
    def __init__(self, path: str, env: dict[str, str]) -> None:
        self.path = path
        self.env = env
        self.unfollowed: list[Note] = []
        self.not_run: list[Note] = []
        self.modes: list[str] = []
        self.mode_line: int | None = None
        self.from_env: set[str] = set()
        self.unset: set[str] = set()
        self.depth = 0  # nested function calls and sourced files
        self.steps = 0
        self.capped = False

    def note(self, bucket: list[Note], note: Note) -> None:
        if note not in bucket:
            bucket.append(note)

    def expander(self, world: _World) -> Expander:
        return Expander(world.vars, world.args, self.path, world.base, env=self.env)

    def absorb(self, exp: Expander) -> None:
        self.from_env |= exp.used_env
        self.unset |= exp.unset

    def run(self, nodes: list[object], worlds: list[_World]) -> list[_World]:
        """Run ``nodes`` in every live world; the worlds keep their order (the script's branch order)."""
        for node in nodes:
            if all(w.done or w.returning or w.found for w in worlds):
                break
            stepped: list[_World] = []
            for w in worlds:
                stepped.extend([w] if w.done or w.returning or w.found else self.one(node, w))
            worlds = self.dedupe(stepped)
        return worlds

    def dedupe(self, worlds: list[_World]) -> list[_World]:
        if len(worlds) < 2:
            return worlds
        seen: set[tuple[object, ...]] = set()
        out: list[_World] = []
        for w in worlds:
            k = w.key()
            if k not in seen:
                seen.add(k)
                out.append(w)
        if len(out) > MAX_PATHS:
            self.capped = True
            out = out[:MAX_PATHS]
        return out

    def one(self, node: object, world: _World) -> list[_World]:
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.capped = True
            world.done = True
            return [world]
        if isinstance(node, _Simple):
            return self.simple(node.seg, world)[1]
        if isinstance(node, _AndOr):
            return [w for _, w in self.and_or(node, world)]
        if isinstance(node, _If):
            return self.if_(node, world)
        if isinstance(node, _Case):
            return self.case(node, world)
        if isinstance(node, _Loop):
            return self.loop(node, world)
        if isinstance(node, _Func):
            world.funcs[node.name] = node
            return [world]
        if isinstance(node, _Group):
            return self.run(node.body, [world])
        return [world]

    # --- conditions ------------------------------------------------------------------------------------------------
    def status(self, nodes: list[object], world: _World) -> list[tuple[bool | None, _World]]:
        """Run a condition list; its status is the last command's (None: not known without running it)."""
        results: list[tuple[bool | None, _World]] = [(True, world)]
        for node in nodes:
            nxt: list[tuple[bool | None, _World]] = []
            for _, w in results:
                if w.done or w.found:
                    nxt.append((None, w))
                elif isinstance(node, _Simple):
                    status, worlds = self.simple(node.seg, w)
                    nxt.extend((status, x) for x in worlds)
                elif isinstance(node, _AndOr):
                    nxt.extend(self.and_or(node, w))
                else:
                    nxt.extend((None, x) for x in self.one(node, w))
            results = nxt
        return results

    def and_or(self, node: _AndOr, world: _World) -> list[tuple[bool | None, _World]]:
        """``a && b || c``: b runs when a succeeded, c when the list so far failed; unknown statuses fork."""
        states = self.status([node.first], world)
        for op, part in node.rest:
            nxt: list[tuple[bool | None, _World]] = []
            for status, w in states:
                if w.done or w.found:
                    nxt.append((status, w))
                    continue
                if status is None:
                    line = _line_of(part)
                    skipped = w.fork(f"line {line}: `{op} {_cond_text([part])}` not run")
                    ran = self.status([part], w.fork(f"line {line}: `{op} {_cond_text([part])}` run"))
                    if all(r.key() == skipped.key() for _, r in ran):
                        nxt.append((None, w))  # the choice changes nothing (`|| true`): no fork
                    else:
                        nxt.append((None, skipped))
                        nxt.extend(ran)
                elif status == (op == "&&"):
                    nxt.extend(self.status([part], w))
                else:
                    nxt.append((status, w))
            states = nxt
        return states

    def if_(self, node: _If, world: _World) -> list[_World]:
        pending = [world]
        out: list[_World] = []
        for cond, body, line in node.branches:
            nxt: list[_World] = []
            for w in pending:
                for status, cw in self.status(cond, w):
                    label = _cond_text(cond)
                    if status is None:
                        taken = cw.fork(f"line {line}: `{label}` taken")
                        out.extend(self.run(body, [taken]))
                        nxt.append(cw.fork(f"line {line}: `{label}` not taken"))
                    elif status:
                        out.extend(self.run(body, [cw]))
                    else:
                        nxt.append(cw)
            pending = nxt
        for w in pending:
            out.extend(self.run(node.otherwise, [w]) if node.otherwise is not None else [w])
        return out

    def case(self, node: _Case, world: _World) -> list[_World]:
        exp = self.expander(world)
        try:
            word: str | None = exp.expand_string(node.word)
        except Unfollowed as why:
            self.note(self.unfollowed, Note(node.line, f"case {node.word} in", f"{why}: followed every branch"))
            word = None
        self.absorb(exp)
        patterns_all = [p for pats, _, _ in node.items for p in pats]
        if exp.from_args and not self.modes:
            self.modes = [p for p in patterns_all if p not in ("*", "")]
            self.mode_line = node.line
        out: list[_World] = []
        for patterns, body, line in node.items:
            if word is None:
                out.extend(self.run(body, [world.fork(f"line {line}: case branch {'|'.join(patterns)}")]))
                continue
            expanded = []
            for p in patterns:
                try:
                    expanded.append(self.expander(world).expand_string(p))
                except Unfollowed:
                    expanded.append(p)
            if any(fnmatch.fnmatchcase(word, p) for p in expanded):
                return self.run(body, [world])
        return out if word is None else [world]

    def loop(self, node: _Loop, world: _World) -> list[_World]:
        if node.kind in ("for", "select"):
            m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:\s+in\s+(.*))?", node.header.strip(), re.S)
            if not m:
                self.note(self.unfollowed, Note(node.line, f"{node.kind} {node.header}", "followed its body once"))
                return self.run(node.body, [world])
            exp = self.expander(world)
            try:
                items = exp.expand(m.group(2)) if m.group(2) is not None else list(world.args)
            except Unfollowed as why:
                self.note(self.unfollowed, Note(node.line, f"for {node.header}", f"{why}; followed its body once"))
                return self.run(node.body, [world])
            worlds = [world]
            for item in items[:MAX_LOOP]:
                for w in worlds:
                    if not (w.done or w.found):
                        w.vars[m.group(1)] = Var(item, node.line)
                worlds = self.run(node.body, worlds)
            return worlds
        worlds = [world]
        for _ in range(MAX_LOOP):
            go: list[_World] = []
            stop: list[_World] = []
            for w in worlds:
                if w.done or w.found:
                    stop.append(w)
                    continue
                for status, cw in self.status(node.cond, w):
                    if node.kind == "until" and status is not None:
                        status = not status
                    if status is None:
                        self.note(self.unfollowed, Note(node.line, f"{node.kind} {_cond_text(node.cond)}",
                                                        "condition not known: followed its body once"))  # fmt: skip
                        stop.extend(self.run(node.body, [cw]))
                    elif status:
                        go.append(cw)
                    else:
                        stop.append(cw)
            if not go:
                return stop
            worlds = stop + self.run(node.body, go)
        return worlds

    # --- simple commands ---------------------------------------------------------------------------------------
    def simple(self, seg: Segment, world: _World) -> tuple[bool | None, list[_World]]:
        """Run one command in ``world``: its exit status (None: not known) and the worlds after it."""
        try:
            return self._simple(seg, world)
        except (ValueError, IndexError, KeyError, RecursionError) as exc:  # shell bootlab's reader does not know
            self.note(self.unfollowed, Note(seg.line, seg.text, f"bootlab cannot read this line ({exc})"))
            return None, [world]

    def _simple(self, seg: Segment, world: _World) -> tuple[bool | None, list[_World]]:
        words_raw = raw_words(seg.text)
        assigns: list[re.Match[str]] = []
        while words_raw and (m := _ASSIGN.fullmatch(words_raw[0])):
            assigns.append(m)
            words_raw = words_raw[1:]
        if not words_raw:
            for m in assigns:
                self.assign(m, world, seg)
            return True, [world]
        exp = self.expander(world)
        try:
            words = [w for raw in words_raw for w in exp.expand(raw)]
        except Unfollowed as why:
            self.absorb(exp)
            head = next((r for r in words_raw if r not in _PREFIXES), "")
            if "qemu" in head.lower():
                world.error = f"{self.path}:{seg.line}: {why}"
                world.done = True
            else:
                self.note(self.unfollowed, Note(seg.line, seg.text, str(why)))
            return None, [world]
        self.absorb(exp)
        found = self.qemu_command(words, seg, world)
        if found:
            return True, [world]
        while len(words) > 1 and words[0] in ("exec", "command", "builtin"):
            words = words[1:]
        return self.builtin(words, seg, world) if words else (True, [world])

    def qemu_command(self, words: list[str], seg: Segment, world: _World) -> bool:
        """Record ``words`` as the world's QEMU command when it runs one (directly, after `exec`/`sudo`/...,
        or through a wrapper such as `tmux new-session "qemu-system-..."`)."""
        i = 0
        while i < len(words) and (words[i] in _PREFIXES or _ASSIGN.fullmatch(words[i]) or words[i].startswith("-")):
            i += 1
        if i < len(words) and not _is_qemu(words[i]) and os.path.basename(words[i]) in _WRAPPERS:
            i = next(
                (j for j in range(i + 1, len(words)) if _is_qemu(words[j].split()[0] if words[j].split() else "")),
                len(words),
            )
        if i >= len(words) or not _is_qemu(words[i].split()[0] if words[i].split() else ""):
            return False
        argv = words[i:]
        if len(argv[0].split()) > 1:  # a command in one string: `tmux new-session "qemu-system-... $ARGS"`
            try:
                argv = shlex.split(argv[0]) + argv[1:]
            except ValueError as exc:
                world.error = f"{self.path}:{seg.line}: cannot read the quoted qemu command: {exc}"
                world.done = True
                return True
        world.found = ScriptCommand(argv, seg.line, list(world.via), world.base)
        return True

    def assign(self, m: re.Match[str], world: _World, seg: Segment) -> None:
        name, index, plus, raw = m.groups()
        exp = self.expander(world)
        try:
            if raw.startswith("(") and raw.endswith(")"):
                items = exp.expand_array(raw[1:-1])
                old = world.vars.get(name)
                base = old.value if old and isinstance(old.value, list) else []
                value: str | list[str] = [*base, *items] if plus else items
            else:
                text = exp.expand_string(raw)
                old = world.vars.get(name)
                if index is not None:
                    items = list(old.value) if old and isinstance(old.value, list) else []
                    position = exp.expand_string(index[1:-1])
                    if not position.isdigit():
                        raise Unfollowed(f"{name}{index}: the index is not a number")
                    i = int(position)
                    items.extend([""] * (i + 1 - len(items)))
                    items[i] = text
                    value = items
                elif plus and old and isinstance(old.value, list):
                    value = [*old.value, text]
                else:
                    value = (str(old.value or "") if plus and old and not old.unknown else "") + text
            world.vars[name] = Var(value, seg.line, from_args=exp.from_args)
        except Unfollowed as why:
            world.vars[name] = Var(None, seg.line, unknown=f"is set on line {seg.line} by something bootlab does "
                                   f"not run ({why})")  # fmt: skip
            self.note(self.unfollowed, Note(seg.line, seg.text, str(why)))
        self.absorb(exp)

    def builtin(self, words: list[str], seg: Segment, world: _World) -> tuple[bool | None, list[_World]]:
        cmd, args = words[0], words[1:]
        if cmd in ("[", "[[", "test"):
            return self.expander(world).test(words), [world]
        if cmd in ("export", "readonly", "local", "declare", "typeset"):
            for raw in raw_words(seg.text)[1:]:
                if (m := _ASSIGN.fullmatch(raw)) is not None:
                    self.assign(m, world, seg)
            return True, [world]
        if cmd == "unset":
            for name in args:
                world.vars.pop(name, None)
            return True, [world]
        if cmd == "shift":
            n = int(args[0]) if args and args[0].isdigit() else 1
            world.args = world.args[n:]
            return True, [world]
        if cmd == "set":
            if "--" in args:
                world.args = args[args.index("--") + 1 :]
            return True, [world]
        if cmd in ("cd", "pushd"):
            target = args[0] if args and args[0] != "-" else self.env.get("HOME", str(world.base))
            world.base = Path(os.path.normpath(os.path.join(world.base, os.path.expanduser(target))))
            return True, [world]
        if cmd == "exit":
            world.done = True
            return True, [world]
        if cmd == "return":
            world.returning = True
            return True, [world]
        if cmd in (".", "source") and args:
            return True, self.source(args[0], args[1:], seg, world)
        if cmd in world.funcs:
            return True, self.call(world.funcs[cmd], args, seg, world)
        if cmd in ("read", "eval", "getopts", "mapfile", "readarray"):
            self.note(self.unfollowed, Note(seg.line, seg.text, f"`{cmd}` is only known when the script runs"))
            if cmd in ("read", "getopts", "mapfile", "readarray") and args:
                for name in (a for a in args if re.fullmatch(r"[A-Za-z_]\w*", a)):
                    world.vars[name] = Var(None, seg.line, unknown=f"is read on line {seg.line} when the script runs")
            return None, [world]
        if cmd in _QUIET:
            return (None if cmd in ("command", "which", "type", "hash") else cmd != "false"), [world]
        self.note(self.not_run, Note(seg.line, seg.text))
        return None, [world]

    def call(self, func: _Func, args: list[str], seg: Segment, world: _World) -> list[_World]:
        if self.depth >= MAX_DEPTH:
            self.note(self.unfollowed, Note(seg.line, seg.text, "calls nest too deep; not followed"))
            return [world]
        saved = world.args
        world.args = list(args)
        self.depth += 1
        worlds = self.run(func.body, [world])
        self.depth -= 1
        for w in worlds:
            w.args = saved if w.args is not saved else w.args
            w.returning = False
        return worlds

    def source(self, name: str, args: list[str], seg: Segment, world: _World) -> list[_World]:
        path = Path(os.path.join(world.base, os.path.expanduser(name)))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable text"
            self.note(self.unfollowed, Note(seg.line, seg.text, f"cannot read {path}: {why}"))
            return [world]
        if self.depth >= MAX_DEPTH:
            self.note(self.unfollowed, Note(seg.line, seg.text, "sourced files nest too deep; not followed"))
            return [world]
        self.depth += 1
        nodes = parse(text, self.unfollowed)
        saved = world.args
        if args:
            world.args = list(args)
        worlds = self.run(nodes, [world])
        self.depth -= 1
        for w in worlds:
            w.returning = False
            if args:
                w.args = saved
        return worlds


def _line_of(node: object) -> int:
    if isinstance(node, _Simple):
        return node.seg.line
    return int(getattr(node, "line", 0))


def _cond_text(cond: list[object]) -> str:
    parts = []
    for node in cond:
        if isinstance(node, _Simple):
            parts.append(node.seg.text)
        elif isinstance(node, _AndOr):
            parts.append(" ".join([_cond_text([node.first])] + [f"{op} {_cond_text([n])}" for op, n in node.rest]))
    return "; ".join(parts)


def _is_qemu(word: str) -> bool:
    return os.path.basename(word).startswith("qemu-system-")


def read_script(
    text: str,
    path: str,
    *,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Reading:
    """Follow a run script and return the QEMU commands it can run (see the module docstring).

    ``args`` are the script's arguments (``--mode`` first); ``env`` is the environment it would see;
    ``cwd`` is where it would run (the current directory). A script that runs no ``qemu-system-*`` command, or
    whose command depends on something bootlab does not run, is a one-line :class:`UsageError`.
    """
    follower = _Follower(path, dict(os.environ) if env is None else env)
    world = _World(vars={}, args=list(args or []), funcs={}, base=(cwd or Path.cwd()))
    nodes = parse(text, follower.unfollowed)
    worlds = follower.run(nodes, [world])
    commands: list[ScriptCommand] = []
    for w in worlds:
        if w.found is not None and all(c.argv != w.found.argv for c in commands):
            commands.append(w.found)
    reading = Reading(
        path=path,
        commands=commands,
        modes=follower.modes,
        mode_line=follower.mode_line,
        unfollowed=follower.unfollowed,
        not_run=follower.not_run,
        from_env=sorted(follower.from_env),
        unset=sorted(follower.unset),
    )
    if follower.capped:
        reading.unfollowed.append(
            Note(0, "(whole script)", f"too many paths through it: followed the first {MAX_PATHS}, {MAX_STEPS} steps")
        )
    if commands:
        return reading
    errors = [w.error for w in worlds if w.error]
    if errors:
        raise UsageError(f"{errors[0]}; set it with --env NAME=VALUE, or import the command line itself "
                         "(bootlab profiles import NAME -- qemu-system-ARCH ...)")  # fmt: skip
    if reading.modes:
        given = f"mode {args[0]!r}" if args else "no --mode"
        raise UsageError(
            f"{path}: no qemu-system-* command runs with {given}; its modes (case on line {reading.mode_line}) "
            f"are: {', '.join(reading.modes)}; choose one with --mode"
        )
    partly = f" in the part bootlab followed (it branches too much: {MAX_STEPS} steps)" if follower.capped else ""
    raise UsageError(
        f"{path}: no qemu-system-* command found{partly}; give the command line instead: "
        "bootlab profiles import NAME -- qemu-system-ARCH ARGS..."
    )


def split_command_line(words: list[str]) -> list[str]:
    """A command line given as words, or as one pasted string (``"qemu-system-aarch64 -M virt ..."``, line
    continuations allowed), as argv."""
    if len(words) == 1 and any(c.isspace() for c in words[0]):
        try:
            return shlex.split(re.sub(r"\\\r?\n", " ", words[0]))
        except ValueError as exc:
            raise UsageError(f"cannot read the command line: {exc}") from None
    return list(words)
