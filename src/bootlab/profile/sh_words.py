"""The words of one line of a POSIX sh (or bash) script, as the shell would pass them to a command.

`bootlab profiles import --script` reads run scripts without running them. This module does the part of sh
that decides a command's words: it splits a line into commands at unquoted operators (``;``, ``&&``, ``|``...),
drops comments and redirections, and expands parameters (``$X``, ``${X:-default}``, ``"$@"``, bash arrays,
``$((1 + 2))``) with sh's quoting rules: an unquoted expansion is split into fields, a quoted one is not. The
expanded text is handed to :func:`shlex.split`, which does quote removal, so every expansion is emitted quoted
for shlex (``'value'``) and shlex does the tokenising.

Nothing is executed. Command substitutions are followed only for the few pure commands scripts use to find
their own directory (``$(dirname "$0")``, ``$(cd "$(dirname "$0")" && pwd)``, ``$(pwd)``, ``$(realpath X)``);
any other raises :class:`Unfollowed` with the reason, and the caller says which line it could not follow.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Expander", "Segment", "Unfollowed", "Var", "raw_words", "segments"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (";;", "&&", "||", ";", "|", "&")


class Unfollowed(Exception):
    """A part of a line bootlab cannot know without running something (a command substitution, `read`...)."""


@dataclass
class Segment:
    """One command of a line: its text (comments and redirections removed) and the operator after it."""

    text: str
    op: str
    line: int


@dataclass
class Var:
    """A shell variable: a string, an array (bash), or unknown (``unknown`` says why). ``from_args`` is true when
    its value came from the script's arguments (``MODE=${1:-dev}``), which makes a ``case`` over it a mode switch.
    """

    value: str | list[str] | None
    line: int = 0
    unknown: str | None = None
    from_args: bool = False


def _skip_quoted(text: str, i: int) -> int:
    """Index just past the quoted string, ``$(...)``, ``${...}`` or backquote starting at ``text[i]``."""
    ch = text[i]
    if ch == "'":
        end = text.find("'", i + 1)
        return len(text) if end < 0 else end + 1
    if ch == "`":
        j = i + 1
        while j < len(text) and text[j] != "`":
            j += 2 if text[j] == "\\" else 1
        return min(j + 1, len(text))
    if ch == '"':
        j = i + 1
        while j < len(text) and text[j] != '"':
            if text[j] == "\\":
                j += 2
            elif text[j] == "`" or (text[j] == "$" and text[j + 1 : j + 2] in ("(", "{")):
                j = _skip_quoted(text, j)
            else:
                j += 1
        return min(j + 1, len(text))
    if ch == "$" and text[i + 1 : i + 2] in ("(", "{"):
        close = ")" if text[i + 1] == "(" else "}"
        openc = text[i + 1]
        depth = 0
        j = i + 1
        while j < len(text):
            c = text[j]
            if c == openc:
                depth += 1
            elif c == close:
                depth -= 1
                if depth == 0:
                    return j + 1
            elif c in "'\"`" or (c == "$" and text[j + 1 : j + 2] in ("(", "{")):
                j = _skip_quoted(text, j)
                continue
            elif c == "\\":
                j += 1
            j += 1
        return len(text)
    return i + 1


def open_quote(text: str) -> bool:
    """True when ``text`` ends inside a quoted string (the line continues on the next one)."""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "#" and (i == 0 or text[i - 1].isspace()):
            return False
        if ch in "'\"`" or (ch == "$" and text[i + 1 : i + 2] in ("(", "{")):
            end = _skip_quoted(text, i)
            if end >= len(text) and not _closed(text, i):
                return True
            i = end
            continue
        i += 1
    return False


def _closed(text: str, i: int) -> bool:
    end = _skip_quoted(text, i)
    closer = {"'": "'", '"': '"', "`": "`"}.get(text[i], ")" if text[i + 1 : i + 2] == "(" else "}")
    return end <= len(text) and end > i + 1 and text[end - 1] == closer


_REDIRECT = re.compile(r"(\d*)(&>>|&>|>>|>&|<&|<<<|<<-|<<|<>|>\||>|<)")


def segments(text: str, line: int) -> tuple[list[Segment], list[str]]:
    """Split a logical line into commands at unquoted operators; drop comments and redirections.

    Returns the commands and the here-document delimiters the line opens (their bodies are on the next lines).
    """
    out: list[Segment] = []
    heredocs: list[str] = []
    buf: list[str] = []
    i = 0
    at_word_start = True
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            buf.append(text[i : i + 2])
            i += 2
            at_word_start = False
            continue
        if ch in "'\"`" or (ch == "$" and text[i + 1 : i + 2] in ("(", "{")):
            end = _skip_quoted(text, i)
            buf.append(text[i:end])
            i = end
            at_word_start = False
            continue
        if ch == "#" and at_word_start:
            end = text.find("\n", i)  # a comment ends its physical line (arrays and strings span several)
            if end < 0:
                break
            i = end
            continue
        redirect = None
        if ch in "<>" or (at_word_start and ch.isdigit()) or text.startswith("&>", i):
            redirect = _REDIRECT.match(text, i)
            if redirect is not None and redirect.group(1) and not at_word_start:
                redirect = None
        if redirect is not None:
            # A redirection and its target word are not part of the command's words.
            j = redirect.end()
            while j < len(text) and text[j] in " \t":
                j += 1
            start = j
            while j < len(text) and not text[j].isspace() and text[j] not in ";|&":
                j = _skip_quoted(text, j) if text[j] in "'\"" else j + 1
            if redirect.group(2) in ("<<", "<<-"):
                word = text[start:j].replace("'", "").replace('"', "").lstrip("\\")
                heredocs.append(("-" if redirect.group(2) == "<<-" else "") + word)
            i = j
            at_word_start = True
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            out.append(Segment("".join(buf).strip(), op, line))
            buf = []
            i += len(op)
            at_word_start = True
            continue
        buf.append(ch)
        at_word_start = ch.isspace()
        i += 1
    tail = "".join(buf).strip()
    if tail or not out:
        out.append(Segment(tail, "\n", line))
    return [s for s in out if s.text or s.op == ";;"], heredocs


def raw_words(text: str) -> list[str]:
    """Split a command's text on unquoted blanks, keeping quotes and expansions as written.

    ``NAME=(a b c)`` (a bash array assignment) stays one word.
    """
    words: list[str] = []
    buf = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            if buf:
                words.append(buf)
                buf = ""
            i += 1
            continue
        if ch == "\\":
            buf += text[i : i + 2]
            i += 2
            continue
        if ch in "'\"`" or (ch == "$" and text[i + 1 : i + 2] in ("(", "{")):
            end = _skip_quoted(text, i)
            buf += text[i:end]
            i = end
            continue
        if ch == "(" and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\+?=", buf):
            depth = 0
            j = i
            while j < len(text):
                if text[j] in "'\"" or (text[j] == "$" and text[j + 1 : j + 2] in ("(", "{")):
                    j = _skip_quoted(text, j)
                    continue
                if text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            buf += text[i : j + 1]
            i = j + 1
            continue
        buf += ch
        i += 1
    if buf:
        words.append(buf)
    return words


def _arith(expr: str) -> str:
    """Integer arithmetic with + - * / % and parentheses, as ``$((...))`` (names already expanded)."""
    if not re.fullmatch(r"[\d\s+\-*/%()]*", expr) or not expr.strip():
        raise Unfollowed(f"$(({expr})) is not plain integer arithmetic")
    tokens = re.findall(r"\d+|[-+*/%()]", expr)
    pos = 0

    def atom() -> int:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            val = add()
            pos += 1
            return val
        if tok == "-":
            return -atom()
        if tok == "+":
            return atom()
        return int(tok)

    def level(operand: Callable[[], int], ops: str, apply: Callable[[str, int, int], int]) -> int:
        """One precedence level: ``operand (op operand)*``, left to right."""
        nonlocal pos
        val = operand()
        while pos < len(tokens) and tokens[pos] in ops:
            op = tokens[pos]
            pos += 1
            val = apply(op, val, operand())
        return val

    def times(op: str, val: int, rhs: int) -> int:
        if op != "*" and rhs == 0:
            raise Unfollowed(f"$(({expr})) divides by zero")
        return val * rhs if op == "*" else int(val / rhs) if op == "/" else val % rhs

    def mul() -> int:
        return level(atom, "*/%", times)

    def add() -> int:
        return level(mul, "+-", lambda op, val, rhs: val + rhs if op == "+" else val - rhs)

    try:
        return str(add())
    except (IndexError, ValueError):
        raise Unfollowed(f"$(({expr})) is not plain integer arithmetic") from None


@dataclass
class Expander:
    """Expands words with a script's variables and arguments (``args`` are ``$1``...; ``script`` is ``$0``).

    ``env`` stands in for the environment the script would run in (variables the script does not set);
    ``used_env`` and ``unset`` record which names came from it or were empty, for the import's notes.
    ``base`` is the directory the script is in at this point (``cd`` changes it), for ``$(pwd)``.
    """

    vars: dict[str, Var]
    args: list[str]
    script: str
    base: Path
    env: dict[str, str] = field(default_factory=dict)
    used_env: set[str] = field(default_factory=set)
    unset: set[str] = field(default_factory=set)
    from_args: bool = False  # set while expanding when $1... (or a variable made from them) was used

    # --- parameters -------------------------------------------------------------------------------------------
    def lookup(self, name: str) -> str | list[str] | None:
        """A parameter's value; ``None`` when unset. Unknown variables raise :class:`Unfollowed`."""
        if name.isdigit():
            self.from_args = True
            index = int(name)
            if index == 0:
                return self.script
            return self.args[index - 1] if index <= len(self.args) else None
        if name in ("@", "*"):
            self.from_args = True
            return list(self.args)
        if name == "#":
            return str(len(self.args))
        if name == "?":
            return "0"
        if name in ("$", "!"):
            raise Unfollowed(f"${name} is only known when the script runs")
        if name == "-":
            return ""
        var = self.vars.get(name)
        if var is not None:
            if var.unknown:
                raise Unfollowed(f"${name} {var.unknown}")
            self.from_args = self.from_args or var.from_args
            return var.value
        if name == "PWD":
            return str(self.base)
        if name in self.env:
            self.used_env.add(name)
            return self.env[name]
        return None

    def _param(self, body: str) -> str | list[str]:
        """``${...}``: the forms scripts use for defaults, arrays, lengths and trimming."""
        m = re.fullmatch(r"#([A-Za-z_][A-Za-z0-9_]*|\d+|[@*#])(\[[@*]\])?", body)
        if m:
            value = self.lookup(m.group(1))
            return str(len(value)) if isinstance(value, list) and m.group(2) else str(len(_scalar(value)))
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*|\d+|[@*#?$!0-9-])(?:\[([^\]]+)\])?(.*)", body, re.S)
        if not m:
            raise Unfollowed(f"${{{body}}} is not a parameter expansion bootlab reads")
        name, index, rest = m.groups()
        value = self.lookup(name)
        if index is not None:
            items = value if isinstance(value, list) else [] if value is None else [value]
            if index in ("@", "*"):
                value = list(items)
            else:
                text = self.expand_string(index) if "$" in index else index.strip()
                if not text.lstrip("-").isdigit():
                    raise Unfollowed(f"${{{body}}}: array index {index} is not a number")
                i = int(text)
                value = items[i] if -len(items) <= i < len(items) else None
        elif isinstance(value, list) and name not in ("@", "*"):
            value = value[0] if value else None  # $ARR is ${ARR[0]}
        if not rest:
            if value is None:
                self._note_unset(name)
                return ""
            return value
        m2 = re.fullmatch(r"(:?)([-=+?])(.*)", rest, re.S)
        if m2:
            colon, op, word = m2.groups()
            empty = value is None or (colon and _scalar(value) == "")
            if op in "-=":
                if not empty:
                    return value  # type: ignore[return-value]
                default = self.expand_string(word)
                if op == "=" and not name.isdigit():
                    self.vars[name] = Var(default, from_args=self.from_args)
                return default
            if op == "+":
                return "" if empty else self.expand_string(word)
            if empty:
                raise Unfollowed(f"${{{body}}}: {name} is not set (the script would stop here)")
            return value  # type: ignore[return-value]
        text = _scalar(value)
        m3 = re.fullmatch(r"(%%|%|##|#)(.*)", rest, re.S)
        if m3:
            op, pattern = m3.group(1), self.expand_string(m3.group(2))
            return _trim(text, op, pattern)
        m4 = re.fullmatch(r":(-?\d+)(?::(\d+))?", rest.replace(" ", ""))
        if m4:
            start = int(m4.group(1))
            part = text[start:]
            return part[: int(m4.group(2))] if m4.group(2) is not None else part
        if rest in ("^^", ",,"):
            return text.upper() if rest == "^^" else text.lower()
        raise Unfollowed(f"${{{body}}} is not a parameter expansion bootlab reads")

    def _note_unset(self, name: str) -> None:
        if not name.isdigit() and name not in ("@", "*"):
            self.unset.add(name)

    # --- command substitution -----------------------------------------------------------------------------------
    def substitute(self, inner: str) -> str:
        """``$(...)``: only the pure commands that locate files; anything else is not run."""
        inner = inner.strip()
        m = re.fullmatch(r"cd\s+(.+?)\s*(?:&&|;)\s*pwd(?:\s+-P)?", inner, re.S)
        if m:
            return os.path.realpath(os.path.join(self.base, self.expand_string(m.group(1))))
        words = self.expand(inner) if inner else []
        if words in (["pwd"], ["pwd", "-P"], ["pwd", "-L"]):
            return str(self.base)
        if len(words) == 2 and words[0] == "dirname":
            return os.path.dirname(words[1]) or "."
        if len(words) in (2, 3) and words[0] == "basename":
            base = os.path.basename(words[1].rstrip("/"))
            return base[: -len(words[2])] if len(words) == 3 and base.endswith(words[2]) else base
        if (len(words) == 2 and words[0] == "realpath") or (
            len(words) == 3 and words[0] == "readlink" and words[1] in ("-f", "-e", "-m")
        ):
            return os.path.realpath(os.path.join(self.base, words[-1]))
        if words and words[0] in ("echo", "printf") and len(words) <= 2 and "%" not in " ".join(words[1:]):
            return words[1] if len(words) == 2 else ""
        raise Unfollowed(f"$({inner}) runs a command, which bootlab does not do")

    # --- words ------------------------------------------------------------------------------------------------
    def _emit(self, value: str | list[str], quoted: bool, split: bool) -> str:
        """An expansion as text for shlex: fields when unquoted (sh's field splitting), one string when quoted."""
        if isinstance(value, list):
            if quoted:  # "${ARR[*]}", "$*" (and "$@" inside a longer string): one word, joined by spaces
                return '"' + shlex.quote(" ".join(value)) + '"' if value else ""
            fields = [f for v in value for f in (v.split() if split else [v])]
            return " ".join(shlex.quote(f) for f in fields)
        if quoted:
            return '"' + shlex.quote(value) + '"' if value else ""
        if not split:
            return shlex.quote(value) if value else ""
        return " ".join(shlex.quote(f) for f in value.split())

    def _expand_text(self, raw: str, split: bool) -> str:
        """The text of ``raw`` with every expansion replaced by shlex-quoted text (see :meth:`_emit`)."""
        out: list[str] = []
        i = 0
        in_dq = False
        value: str | list[str]
        while i < len(raw):
            ch = raw[i]
            if ch == "\\":
                nxt = raw[i + 1 : i + 2]
                if in_dq and nxt in ("$", "`"):
                    out.append(nxt)
                else:
                    out.append(raw[i : i + 2])
                i += 2
                continue
            if ch == "'" and not in_dq:
                end = _skip_quoted(raw, i)
                out.append(raw[i:end])
                i = end
                continue
            if ch == '"':
                # "$@" and "${ARR[@]}" alone in quotes: one word per element, none at all when empty.
                m = re.match(r'"(\$@|\$\{[A-Za-z_][A-Za-z0-9_]*\[@\]\})"', raw[i:]) if not in_dq else None
                if m:
                    got = self.lookup("@") if m.group(1) == "$@" else self._param(m.group(1)[2:-1])
                    items = got if isinstance(got, list) else [] if got is None else [got]
                    out.append(" ".join(shlex.quote(v) for v in items))
                    i += m.end()
                    continue
                in_dq = not in_dq
                out.append(ch)
                i += 1
                continue
            if ch == "`":
                end = _skip_quoted(raw, i)
                out.append(self._emit(self.substitute(raw[i + 1 : end - 1]), in_dq, split))
                i = end
                continue
            if ch == "$":
                if raw.startswith("$((", i):
                    end = raw.find("))", i)
                    if end < 0:
                        raise Unfollowed(f"{raw}: unterminated $((")
                    inner = re.sub(
                        r"(?<![$\w])[A-Za-z_]\w*", lambda m: _scalar(self.lookup(m.group(0))) or "0", raw[i + 3 : end]
                    )  # names in $(( )) need no $
                    value = _arith(self.expand_string(inner))
                    i = end + 2
                elif raw.startswith("$(", i):
                    end = _skip_quoted(raw, i)
                    value = self.substitute(raw[i + 2 : end - 1])
                    i = end
                elif raw.startswith("${", i):
                    end = _skip_quoted(raw, i)
                    value = self._param(raw[i + 2 : end - 1])
                    i = end
                else:
                    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]", raw[i + 1 :])
                    if not m:
                        out.append("$")
                        i += 1
                        continue
                    name = m.group(0)
                    found = self.lookup(name)
                    if found is None:
                        self._note_unset(name)
                    value = found if isinstance(found, list) and name in ("@", "*") else _first(found)
                    i += 1 + len(name)
                out.append(self._emit(value, in_dq, split))
                continue
            out.append(ch)
            i += 1
        return "".join(out)

    def expand(self, raw: str) -> list[str]:
        """The words of a command's text (one raw word or many), as sh would pass them."""
        text = self._expand_text(raw, split=True)
        try:
            return shlex.split(text)
        except ValueError as exc:
            raise Unfollowed(f"cannot split {raw!r}: {exc}") from None

    def expand_string(self, raw: str) -> str:
        """One word, not field-split (assignment values, ``${X:-word}`` words)."""
        text = self._expand_text(raw, split=False)
        try:
            return " ".join(shlex.split(text)) if text.strip() else ""
        except ValueError as exc:
            raise Unfollowed(f"cannot read {raw!r}: {exc}") from None

    def expand_array(self, raw: str) -> list[str]:
        """The elements of ``( ... )`` in ``NAME=( ... )``."""
        return self.expand(raw)

    def test(self, words: list[str]) -> bool | None:
        """``[ ... ]``, ``test ...`` and ``[[ ... ]]`` on known strings; ``None`` for what depends on the host."""
        if words and words[0] in ("[", "[["):
            words = words[1:-1] if words[-1] in ("]", "]]") else words[1:]
        elif words and words[0] == "test":
            words = words[1:]
        return _test(words)


def _first(value: str | list[str] | None) -> str:
    if isinstance(value, list):
        return value[0] if value else ""
    return value or ""


def _scalar(value: str | list[str] | None) -> str:
    if isinstance(value, list):
        return " ".join(value)
    return value or ""


def _trim(text: str, op: str, pattern: str) -> str:
    """``${X%pat}``, ``${X%%pat}``, ``${X#pat}``, ``${X##pat}`` with glob patterns."""
    if op.startswith("%"):
        cuts = range(len(text) + 1) if op == "%%" else range(len(text), -1, -1)
        for i in cuts:
            if fnmatch.fnmatchcase(text[i:], pattern):
                return text[:i]
        return text
    cuts = range(len(text), -1, -1) if op == "##" else range(len(text) + 1)
    for i in cuts:
        if fnmatch.fnmatchcase(text[:i], pattern):
            return text[i:]
    return text


_INT_OPS: dict[str, Callable[[int, int], bool]] = {
    "-eq": lambda a, b: a == b, "-ne": lambda a, b: a != b, "-lt": lambda a, b: a < b,
    "-le": lambda a, b: a <= b, "-gt": lambda a, b: a > b, "-ge": lambda a, b: a >= b,
}  # fmt: skip


def _test(words: list[str]) -> bool | None:
    if words and words[0] == "!":
        inner = _test(words[1:])
        return None if inner is None else not inner
    if len(words) == 0:
        return False
    if len(words) == 1:
        return words[0] != ""
    if len(words) == 2:
        if words[0] == "-n":
            return words[1] != ""
        if words[0] == "-z":
            return words[1] == ""
        return None  # file tests (-e, -f, -d...) depend on the host the script runs on
    if len(words) == 3:
        a, op, b = words
        if op in ("=", "=="):
            return fnmatch.fnmatchcase(a, b) if "*" in b or "?" in b else a == b
        if op == "!=":
            return a != b
        if op in _INT_OPS:
            try:
                return _INT_OPS[op](int(a), int(b))
            except ValueError:
                return None
    return None
