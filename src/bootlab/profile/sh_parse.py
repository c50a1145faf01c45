"""A sh script as nodes: logical lines (continuations, multi-line strings and arrays, here-documents skipped),
split into commands (:mod:`bootlab.profile.sh_words`), and parsed into if/elif/else, case, loops, functions,
``{ }`` groups and ``&&``/``||`` lists. What the parser cannot read is reported as a :class:`Note`.

This is the structure :mod:`bootlab.profile.script_reader` follows; nothing here runs or expands anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from bootlab.profile.sh_words import Segment, open_quote, raw_words, segments

__all__ = ["AndOr", "Case", "Func", "Group", "If", "Loop", "Note", "Simple", "parse"]

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
class Simple:
    seg: Segment


@dataclass
class If:
    branches: list[tuple[list[object], list[object], int]]  # (condition, body, line)
    otherwise: list[object] | None
    line: int


@dataclass
class Case:
    word: str
    items: list[tuple[list[str], list[object], int]]
    line: int


@dataclass
class Loop:
    kind: str
    header: str
    cond: list[object]
    body: list[object]
    line: int


@dataclass
class Func:
    name: str
    body: list[object]
    line: int


@dataclass
class Group:
    body: list[object]


@dataclass
class AndOr:
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
        return AndOr(node, rest) if rest else node

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
            return Group(body)
        m = _FUNC.fullmatch(seg.text)
        if m and (m.group(1) or m.group(3)) and (seg.text.startswith("function") or "()" in seg.text.replace(" ", "")):
            return self.parse_func(m)
        if word in ("then", "do", "else", "elif", "fi", "done", "esac", "}", ")", "in"):
            self.notes.append(Note(seg.line, seg.text, f"unexpected `{word}`"))
            self.take()
            return None
        return Simple(self.take())

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
        return If(branches, otherwise, branches[0][2] if branches else line)

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
        return Case(m.group(1), items, seg.line)

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
        return Loop(kind, header, cond, body, seg.line)

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
        return Func(name, body, seg.line)


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
