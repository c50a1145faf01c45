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
from dataclasses import dataclass, field
from pathlib import Path

from bootlab.errors import UsageError
from bootlab.profile.sh_parse import AndOr, Case, Func, Group, If, Loop, Note, Simple, parse
from bootlab.profile.sh_words import Expander, Segment, Unfollowed, Var, raw_words

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


# --- following the script ----------------------------------------------------------------------------------------
@dataclass
class _World:
    """One path through the script: its variables, arguments, functions, directory and choices so far."""

    vars: dict[str, Var]
    args: list[str]
    funcs: dict[str, Func]
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
        if isinstance(node, Simple):
            return self.simple(node.seg, world)[1]
        if isinstance(node, AndOr):
            return [w for _, w in self.and_or(node, world)]
        if isinstance(node, If):
            return self.if_(node, world)
        if isinstance(node, Case):
            return self.case(node, world)
        if isinstance(node, Loop):
            return self.loop(node, world)
        if isinstance(node, Func):
            world.funcs[node.name] = node
            return [world]
        if isinstance(node, Group):
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
                elif isinstance(node, Simple):
                    status, worlds = self.simple(node.seg, w)
                    nxt.extend((status, x) for x in worlds)
                elif isinstance(node, AndOr):
                    nxt.extend(self.and_or(node, w))
                else:
                    nxt.extend((None, x) for x in self.one(node, w))
            results = nxt
        return results

    def and_or(self, node: AndOr, world: _World) -> list[tuple[bool | None, _World]]:
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

    def if_(self, node: If, world: _World) -> list[_World]:
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

    def case(self, node: Case, world: _World) -> list[_World]:
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

    def loop(self, node: Loop, world: _World) -> list[_World]:
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

    def call(self, func: Func, args: list[str], seg: Segment, world: _World) -> list[_World]:
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
    if isinstance(node, Simple):
        return node.seg.line
    return int(getattr(node, "line", 0))


def _cond_text(cond: list[object]) -> str:
    parts = []
    for node in cond:
        if isinstance(node, Simple):
            parts.append(node.seg.text)
        elif isinstance(node, AndOr):
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
