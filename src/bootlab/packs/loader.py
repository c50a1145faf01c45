"""Find, validate, merge and compile packs.

Shipped packs live beside this module; a project may add ``<project>/packs/*.toml``, searched first. A project
file with the same name as a shipped pack replaces it, unless it says ``extends = "<name>"``, in which case
its entries are added to (and, by id, override) the base. Packs named together (``pack = ["edk2", "redox"]``)
compose into one :class:`PackSet`: firmware milestones come before the OS's, signatures and interactions are
the union.

Compiling is the expensive part, so :func:`load_packs` caches by (names, search path): ``bootlab classify``
over hundreds of logs compiles once.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootlab.errors import UsageError

if TYPE_CHECKING:  # the pack model (pydantic) loads when a pack file is read, not for a name check
    from bootlab.packs.model import Frames, Interaction, Milestone, PackFile, Signature

SHIPPED_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class FrameRule:
    """Guilty-frame selection for one signature, its pack's frame groups resolved (see ``Signature``).

    Kept as regex sources and compiled on first use: the linux pack's skip and helper sets are hundreds of
    function names for each of ~80 signatures, which took most of a boot's start-up to compile, and only a
    boot that crashes ever needs them."""

    pick: str
    skip_regex: tuple[str, ...]
    helper_regex: tuple[str, ...]
    anchor_regex: tuple[tuple[tuple[str, ...], str | None], ...]
    after_regex: str | None

    @functools.cached_property
    def skip(self) -> re.Pattern[str] | None:
        return _alternation(self.skip_regex)

    @functools.cached_property
    def helpers(self) -> re.Pattern[str] | None:
        return _alternation(self.helper_regex)

    @functools.cached_property
    def anchors(self) -> tuple[tuple[re.Pattern[str], str | None], ...]:
        compiled = ((_alternation(group), title) for group, title in self.anchor_regex)
        return tuple((rx, title) for rx, title in compiled if rx is not None)

    @functools.cached_property
    def after(self) -> re.Pattern[str] | None:
        return re.compile(self.after_regex) if self.after_regex else None


@dataclass(frozen=True)
class CompiledSignature:
    spec: Signature
    pack: str
    regex: re.Pattern[str]
    follow: tuple[re.Pattern[str], ...]
    look_back: tuple[re.Pattern[str], ...]
    fatal_when: tuple[tuple[str, re.Pattern[str]], ...]
    dump_end: re.Pattern[str] | None = None
    frame: FrameRule | None = None


@dataclass(frozen=True)
class GuardedPattern:
    """A regex tried on every console line (milestones, prompts, interactions), with the substrings one of
    which every match contains (:func:`required_literals`): a line without any is refused at C speed."""

    regex: re.Pattern[str]
    literals: tuple[str, ...] | None

    @classmethod
    def of(cls, regex: str) -> GuardedPattern:
        found = required_literals(regex)
        return cls(re.compile(regex), tuple(sorted(found)) if found else None)

    def search(self, text: str) -> re.Match[str] | None:
        if self.literals is not None:
            for literal in self.literals:
                if literal in text:
                    break
            else:
                return None
        return self.regex.search(text)


@dataclass(frozen=True)
class CompiledInteraction:
    spec: Interaction
    regex: GuardedPattern


@dataclass(frozen=True)
class CompiledMilestone:
    spec: Milestone
    regex: GuardedPattern


@dataclass(frozen=True)
class PackSet:
    """Packs composed and compiled, ready for the observer. Immutable, so one instance serves many boots."""

    names: tuple[str, ...]
    milestones: tuple[CompiledMilestone, ...]
    login: tuple[GuardedPattern, ...]
    shell: tuple[GuardedPattern, ...]
    shell_prompt: str | None
    signatures: tuple[CompiledSignature, ...]
    stderr_signatures: tuple[CompiledSignature, ...]
    interactions: tuple[CompiledInteraction, ...]
    frame_regex: tuple[re.Pattern[str], ...]
    vars: dict[str, str] = field(default_factory=dict)
    # a line that misses it matches no serial signature: skipped in one scan
    prefilter: Prefilter | None = None
    frame_pc: tuple[re.Pattern[str], ...] = ()
    frame_start: re.Pattern[str] | None = None
    frame_rename: tuple[tuple[re.Pattern[str], str], ...] = ()
    context: re.Pattern[str] | None = None
    context_open: re.Pattern[str] | None = None
    # (pack, signature id) of the lines that report a death an earlier report caused (``cause_window``)
    consequences: frozenset[tuple[str, str]] = frozenset()
    # the most lines any serial signature looks back at (the observer keeps that many)
    look_back: int = 0
    # lines that say the guest refused bootlab's login (``[ready] login_failed``)
    login_failed: tuple[GuardedPattern, ...] = ()
    # lines that wait for an answer bootlab does not give (``[[prompt]]``): where a hang stopped
    prompts: tuple[re.Pattern[str], ...] = ()


def search_path(project_dir: Path | None = None) -> list[Path]:
    """Project packs first, then the shipped ones."""
    dirs: list[Path] = []
    if project_dir is not None:
        dirs.append(project_dir / "packs")
    dirs.append(SHIPPED_DIR)
    return dirs


def available(dirs: list[Path]) -> list[str]:
    names: set[str] = set()
    for d in dirs:
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def check_pack_names(names: list[str] | tuple[str, ...], project_dir: Path | None = None) -> None:
    """Each name has a pack file on the search path (no parsing, no compiling: what `lint PROFILE` needs to
    say an unknown pack is bad input, in a few stat calls)."""
    dirs = search_path(project_dir)
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise UsageError(f"pack name {name!r} is not valid; use letters, digits, '.', '_' or '-'")
        if not any((d / f"{name}.toml").is_file() for d in dirs):
            raise _unknown_pack(name, dirs)


def _unknown_pack(name: str, dirs: list[Path]) -> UsageError:
    known = ", ".join(available(dirs)) or "none"
    return UsageError(f"unknown pack {name!r} (known: {known}); add packs/{name}.toml to the project or fix the name")


def read_pack_file(path: Path) -> PackFile:
    """Parse and validate one pack file. Every problem is reported at once, one line each, naming the file, the
    table (``[[signature]] #3 (id = "x")``) and the field, so a pack author fixes them in one go: field errors,
    top-level keys caught by the TOML ordering trap, and what can be checked across fields within the file (the
    name, ``after``/``before`` without ``extends``, frame groups a signature names)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read pack {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"pack {path} is not valid TOML: {_toml_error(text, exc)}; fix the file") from exc
    trapped = _trapped_in_vars(data)
    problems = [f"[vars]: {key}: {_trap('[vars]', key)}" for key in trapped]
    data.setdefault("name", path.stem)
    from pydantic import ValidationError

    from bootlab.packs.model import PackFile

    pack: PackFile | None = None
    try:
        pack = PackFile.model_validate(data)
    except ValidationError as exc:
        problems += [
            _describe(data, err)
            for err in exc.errors()
            if not (err["type"] == "missing" and len(err["loc"]) == 1 and err["loc"][0] in trapped)
        ]
    problems += _cross_field(data, path.stem)
    if len(problems) == 1:
        raise UsageError(f"pack {path}: {problems[0]}; fix the file")
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise UsageError(f"pack {path} has {len(problems)} problems; fix them:\n{lines}")
    assert pack is not None
    return pack


def _trap(header: str, key: str) -> str:
    """What a key written after a header and meant for the top level is told: the TOML ordering trap."""
    return f"a top-level key written after the {header} header belongs to that table (TOML); {_move(key)}"


def _move(key: str) -> str:
    return f"move `{key} = ...` above the first [table] or [[table]] header"


def _toml_error(text: str, exc: tomllib.TOMLDecodeError) -> str:
    """TOML's own message, with the ordering trap named when a key is given twice in one table: a top-level
    ``reference`` written after a ``[[signature]]`` that has one lands in that signature."""
    m = re.match(r"Cannot overwrite a value \(at line (\d+), column \d+\)", str(exc))
    if m is None:
        return str(exc)
    lines = text.splitlines()
    n = int(m.group(1))
    key = re.match(r"\s*([\w.\"'-]+)\s*=", lines[n - 1]) if n <= len(lines) else None
    name = key.group(1) if key else "a key"
    headers = [(i + 1, h.strip()) for i, h in enumerate(lines[: n - 1]) if re.match(r"\s*\[", h)]
    if not headers:
        return f"{exc}: `{name}` is given twice; keep one"
    at, header = headers[-1]
    return (
        f"{exc}: `{name}` is given twice in the {header} table (its header is on line {at}); if line {n} is meant "
        f"for the top level, {_move(name)}"
    )


def _trapped_in_vars(data: dict[str, Any]) -> list[str]:
    """Top-level keys (``extends``, ``description``...) the TOML trap put in ``[vars]``: vars take any name, so
    validation alone would take ``extends = "linux"`` written after ``[vars]`` for a var and the pack would
    silently extend nothing. Only keys missing from the top level: a var may share a top-level key's name."""
    from bootlab.packs.model import PackFile

    variables = data.get("vars")
    if not isinstance(variables, dict):
        return []
    return [key for key in variables if key in PackFile.model_fields and key != "vars" and key not in data]


def _cross_field(data: dict[str, Any], stem: str) -> list[str]:
    """What one field cannot say alone, checked on the raw file (so it joins the field errors' list): the name
    against the file name, ``after``/``before`` in a pack that extends none, and frame groups a signature names
    that its own ``[frames]`` lacks (a pack that extends another may name the base's: checked when merged)."""
    out: list[str] = []
    name = data.get("name")
    if isinstance(name, str) and name != stem:
        out.append(f"(top level): name: says {name!r}; it must match the file name {stem!r}")
    extends = data.get("extends")
    for i, m in enumerate(_tables(data.get("milestone"))):
        for place in ("after", "before"):
            if place in m and extends is None:
                out.append(
                    f"{_label('milestone', i, m)}: {place}: only places a milestone among those of the pack it "
                    "extends, and this pack extends none; order milestones by where they are in the file"
                )
    if extends is None:
        frames = data.get("frames")
        groups = {g.get("name") for g in _tables(frames.get("group") if isinstance(frames, dict) else None)}
        for i, sig in enumerate(_tables(data.get("signature"))):
            for option in ("frame_skip", "frame_anchor"):
                names = sig.get(option)
                for unknown in [n for n in names if n not in groups] if isinstance(names, list) else []:
                    out.append(f"{_label('signature', i, sig)}: {option}: {_unknown_group(unknown)}")
    return out


def _tables(value: Any) -> list[dict[str, Any]]:
    """An array of tables as read, its non-table items left out (validation reports those)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _label(table: str, index: int, item: dict[str, Any]) -> str:
    """How a problem names an entry of an array of tables: ``[[signature]] #3 (id = "x")``."""
    label = f"[[{table}]] #{index + 1}"
    ident = next((k for k in ("id", "name") if isinstance(item.get(k), str)), None)
    return label + (f' ({ident} = "{item[ident]}")' if ident is not None else "")


def _unknown_group(name: str) -> str:
    return f"names frame group {name!r}, which [frames] lacks; add a [[frames.group]] with that name or fix the name"


def _describe(data: dict[str, Any], err: Any) -> str:
    """One validation error as ``<table>: <field>: <what>``, in the pack author's terms (TOML tables, not
    pydantic locations), with the TOML ordering trap named when that is what happened."""
    from bootlab.packs.model import PackFile

    loc = list(err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    where: list[str] = []  # the table: [[signature]] #3 (id = "x"), [ready], or none (the top level)
    rest: list[str] = []  # the field inside it: kind, shell[0]
    node: Any = data
    table = ""
    i = 0
    while i < len(loc):
        key = loc[i]
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        items = node.get(key) if isinstance(key, str) and isinstance(node, dict) else None
        item = items[nxt] if isinstance(items, list) and isinstance(nxt, int) and nxt < len(items) else None
        if isinstance(item, dict):  # an array of tables: [[signature]], [[frames.group]]
            table = f"{table}.{key}" if table else key
            where, rest = [_label(table, int(nxt or 0), item)], []
            node = item
            i += 2
            continue
        if i + 1 < len(loc) and isinstance(items, dict):  # a table: [ready], [frames]
            table = f"{table}.{key}" if table else key
            where, rest = [f"[{table}]"], []
            node = items
            i += 1
            continue
        rest.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        i += 1
    head = where[0] if where else "(top level)"
    field = "".join(rest).lstrip(".") or None
    if err["type"] == "extra_forbidden" and table and field in PackFile.model_fields:
        return f"{head}: {field}: {_trap(head.split(' #')[0], field)}"
    if err["type"] == "missing":
        msg = "required field missing"
        if not table and field is not None and _in_a_table(data, field):
            msg += (
                f"; `{field} = ...` appears only under [table] or [[table]] headers, and a key written after a "
                f"header belongs to that table (TOML): {_move(field)}"
            )
    elif err["type"] == "extra_forbidden":
        msg = "unknown field (a typo, or a field of another table)"
    return f"{head}: {field}: {msg}" if field else f"{head}: {msg}"


def _in_a_table(node: Any, key: str) -> bool:
    """Whether ``key`` is set in some table below the top level of ``node`` (the file as read)."""
    values = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    return any((isinstance(v, dict) and key in v) or _in_a_table(v, key) for v in values)


def _merge(base: PackFile, ext: PackFile) -> PackFile:
    def by_key(old: list[Any], new: list[Any], key: str) -> list[Any]:
        replaced = {getattr(n, key): n for n in new}
        merged = [replaced.pop(getattr(o, key), o) for o in old]
        return merged + [n for n in new if getattr(n, key) in replaced]

    return base.model_copy(
        update={
            "description": ext.description,
            "vars": {**base.vars, **ext.vars},
            "milestone": _place_milestones(base, ext),
            "ready": ext.ready or base.ready,
            "shell_prompt": ext.shell_prompt or base.shell_prompt,
            "signature": by_key(base.signature, ext.signature, "id"),
            "interaction": by_key(base.interaction, ext.interaction, "id"),
            "prompt": [*base.prompt, *ext.prompt],
            "frames": _merge_frames(base.frames, ext.frames),
            "context": ext.context or base.context,
        }
    )


def _place_milestones(base: PackFile, ext: PackFile) -> list[Milestone]:
    """The base's milestones with the extension's: one of the same name replaces it in place; a new one goes where
    its ``after``/``before`` says (next to a base milestone), else at the end."""
    names = [m.name for m in base.milestone]
    merged = list(base.milestone)
    for m in ext.milestone:
        if m.name in names and m.after is None and m.before is None:
            merged[[x.name for x in merged].index(m.name)] = m
            continue
        if m.name in [x.name for x in merged]:
            merged = [x for x in merged if x.name != m.name]
        anchor = m.after or m.before
        if anchor is None:
            merged.append(m)
            continue
        current = [x.name for x in merged]
        if anchor not in current:
            raise UsageError(
                f"pack {ext.name}: milestone {m.name!r} is placed {'after' if m.after else 'before'} {anchor!r}, "
                f"which pack {base.name} does not have (its milestones: {', '.join(current) or 'none'}); fix the name"
            )
        at = current.index(anchor) + (1 if m.after else 0)
        merged.insert(at, m)
    return merged


def _merge_frames(base: Frames | None, ext: Frames | None) -> Frames | None:
    """An extending pack's groups replace the base's of the same name or add to them; its skip regexes add to
    the base's; its frame, pc, start and rename lists replace the base's when given."""
    if base is None or ext is None:
        return ext or base
    groups = {g.name: g for g in ext.group}
    merged = [groups.pop(g.name, g) for g in base.group] + list(groups.values())
    return base.model_copy(
        update={
            "regex": ext.regex or base.regex,
            "pc": ext.pc or base.pc,
            "start": ext.start or base.start,
            "skip": [*base.skip, *ext.skip],
            "group": merged,
            "rename": ext.rename or base.rename,
        }
    )


def resolve_pack(name: str, dirs: list[Path], _seen: tuple[str, ...] = ()) -> PackFile:
    """The pack called ``name``: the first file on the search path, merged onto its ``extends`` base."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UsageError(f"pack name {name!r} is not valid; use letters, digits, '.', '_' or '-'")
    for i, d in enumerate(dirs):
        path = d / f"{name}.toml"
        if path.is_file():
            pack = read_pack_file(path)
            if pack.extends is None:
                return pack
            if pack.extends in (*_seen, name) and pack.extends == name:
                base = resolve_pack(name, dirs[i + 1 :], (*_seen, name))
            elif pack.extends in _seen:
                raise UsageError(f"pack {path}: extends {pack.extends!r} makes a cycle; fix `extends`")
            else:
                base = resolve_pack(pack.extends, dirs, (*_seen, name))
            return _merge(base, pack)
    raise _unknown_pack(name, dirs)


def _anonymous(regex: str) -> str:
    """Named groups repeat across signatures; the prefilter alternation needs them unnamed."""
    return re.sub(r"\(\?P<\w+>", "(?:", regex)


def required_literals(regex: str) -> frozenset[str] | None:
    """Substrings one of which every match of ``regex`` contains, or None when none can be relied on.

    Why: the observer runs on every console line, and most lines match nothing. One alternation of every
    signature regex costs a try of each alternative at each position of the line; a search for plain
    substrings that every match must contain (``Kernel panic - not syncing: ``, ``BUG: KASAN: ``) skips those
    lines at C speed, and the regexes run only on the few lines left. The literals come from the regex's own
    parse tree (literal runs that every match passes through); a regex that can match without one, or that
    changes case sensitivity, gets None and is always tried.
    """
    from re import _constants as sre  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]

    try:
        tree = sre_parse.parse(regex)
    except (re.error, RecursionError):
        return None
    if tree.state.flags & (re.IGNORECASE | re.VERBOSE):
        return None

    def required(seq: Any) -> frozenset[str] | None:
        candidates: list[frozenset[str]] = []
        run = ""
        for op, av in seq:
            if op is sre.LITERAL:
                run += chr(av)
                continue
            if run:
                candidates.append(frozenset({run}))
                run = ""
            found: frozenset[str] | None = None
            if op is sre.SUBPATTERN:
                if av[1] & re.IGNORECASE:
                    return None
                found = required(av[3])
            elif op is sre.BRANCH:
                branches = [required(b) for b in av[1]]
                if all(b is not None for b in branches):
                    found = frozenset().union(*[b for b in branches if b is not None])
            elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT) and av[0] >= 1:
                found = required(av[2])
            if found:
                candidates.append(found)
        if run:
            candidates.append(frozenset({run}))
        # the set whose shortest member is longest lets the fewest lines through
        return max(candidates, key=lambda c: min(len(x) for x in c), default=None)

    return required(tree)


@dataclass(frozen=True)
class Prefilter:
    """Whether a line may match any of a set of regexes: it contains one of their required literals (one
    alternation of plain strings, which the regex engine scans fast), or it matches one of the regexes that
    have none."""

    literals: re.Pattern[str] | None
    rest: re.Pattern[str] | None

    @classmethod
    def of(cls, regexes: list[str]) -> Prefilter | None:
        if not regexes:
            return None
        literals: set[str] = set()
        rest: list[str] = []
        for regex in regexes:
            found = required_literals(regex)
            if found is None:
                rest.append(regex)
            else:
                literals |= found
        return cls(
            literals=re.compile("|".join(re.escape(x) for x in sorted(literals))) if literals else None,
            rest=re.compile("|".join(f"(?:{_anonymous(r)})" for r in rest)) if rest else None,
        )

    def search(self, line: str) -> bool:
        return bool(
            (self.literals is not None and self.literals.search(line))
            or (self.rest is not None and self.rest.search(line))
        )


@functools.lru_cache(maxsize=256)
def _alternation(regexes: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern matching any of ``regexes``; compiled once per process for each set (signatures share sets)."""
    return re.compile("|".join(f"(?:{r})" for r in regexes)) if regexes else None


def _frame_rule(pack: PackFile, sig: Signature) -> FrameRule | None:
    """Resolve a signature's frame options against its pack's groups: the skip set is every ``skip_always``
    group, the pack's ``skip`` regexes and the groups the signature names; the helpers are the ``helper``
    groups it does not name."""
    if not sig.frame:
        return None
    from bootlab.packs.model import Frames

    frames = pack.frames or Frames()
    groups = {g.name: g for g in frames.group}
    unknown = [n for n in (*sig.frame_skip, *sig.frame_anchor) if n not in groups]
    if unknown:  # a pack that extends another, merged (a pack on its own is checked as it is read)
        raise UsageError(f"pack {pack.name}: signature {sig.id!r} {_unknown_group(unknown[0])}")
    skip = list(frames.skip)
    helpers: list[str] = []
    for g in frames.group:
        if g.skip_always or g.name in sig.frame_skip:
            skip += g.regex
        elif g.helper:
            helpers += g.regex
    return FrameRule(
        pick=sig.frame_pick,
        skip_regex=tuple(skip),
        helper_regex=tuple(helpers),
        anchor_regex=tuple((tuple(groups[name].regex), groups[name].title) for name in sig.frame_anchor),
        after_regex=sig.frame_after or None,
    )


def compile_packs(packs: list[PackFile]) -> PackSet:
    milestones: list[CompiledMilestone] = []
    sigs: list[CompiledSignature] = []
    stderr_sigs: list[CompiledSignature] = []
    inters: list[CompiledInteraction] = []
    login: list[GuardedPattern] = []
    shell: list[GuardedPattern] = []
    login_failed: list[GuardedPattern] = []
    prompts: list[re.Pattern[str]] = []
    frame_re: list[re.Pattern[str]] = []
    frame_pc: list[re.Pattern[str]] = []
    frame_start: list[str] = []
    frame_rename: list[tuple[re.Pattern[str], str]] = []
    context: re.Pattern[str] | None = None
    context_open: re.Pattern[str] | None = None
    shell_prompt: str | None = None
    variables: dict[str, str] = {}
    for pack in packs:
        variables.update(pack.vars)
        milestones += [CompiledMilestone(m, GuardedPattern.of(m.regex)) for m in pack.milestone]
        target = stderr_sigs if pack.stream == "stderr" else sigs
        for s in pack.signature:
            target.append(
                CompiledSignature(
                    spec=s,
                    pack=pack.name,
                    regex=re.compile(s.regex),
                    follow=tuple(re.compile(r) for r in s.follow_regex),
                    look_back=tuple(re.compile(r) for r in s.look_back_regex),
                    fatal_when=tuple((k, re.compile(r)) for k, r in s.fatal_when.items()),
                    dump_end=re.compile(s.dump_end) if s.dump_end else None,
                    frame=_frame_rule(pack, s),
                )
            )
        inters += [CompiledInteraction(i, GuardedPattern.of(i.regex)) for i in pack.interaction]
        if pack.ready is not None:
            login += [GuardedPattern.of(r) for r in pack.ready.login]
            shell += [GuardedPattern.of(r) for r in pack.ready.shell]
            login_failed += [GuardedPattern.of(r) for r in pack.ready.login_failed]
        prompts += [re.compile(p.regex) for p in pack.prompt]
        if pack.frames is not None:
            frame_re += [re.compile(r) for r in pack.frames.regex]
            frame_pc += [re.compile(r) for r in pack.frames.pc]
            frame_start += pack.frames.start
            frame_rename += [(re.compile(r.regex), r.to) for r in pack.frames.rename]
        if pack.context is not None:
            context = re.compile(pack.context.regex)
            context_open = re.compile(pack.context.open_after) if pack.context.open_after else None
        shell_prompt = pack.shell_prompt or shell_prompt
    prefilter = Prefilter.of([s.spec.regex for s in sigs])
    return PackSet(
        names=tuple(p.name for p in packs),
        milestones=tuple(milestones),
        login=tuple(login),
        shell=tuple(shell),
        shell_prompt=shell_prompt,
        signatures=tuple(sigs),
        stderr_signatures=tuple(stderr_sigs),
        interactions=tuple(inters),
        frame_regex=tuple(frame_re),
        vars=variables,
        prefilter=prefilter,
        frame_pc=tuple(frame_pc),
        frame_start=_alternation(tuple(frame_start)),
        frame_rename=tuple(frame_rename),
        context=context,
        context_open=context_open,
        consequences=frozenset((s.pack, s.spec.id) for s in sigs if s.spec.cause_window),
        look_back=max((s.spec.look_back for s in sigs), default=0),
        login_failed=tuple(login_failed),
        prompts=tuple(prompts),
    )


@functools.lru_cache(maxsize=32)
def _load_cached(names: tuple[str, ...], dirs: tuple[Path, ...]) -> PackSet:
    return compile_packs([resolve_pack(n, list(dirs)) for n in names])


def load_packs(names: list[str] | tuple[str, ...] | str, project_dir: Path | None = None) -> PackSet:
    """Compose the named packs (a list, or ``"edk2,redox"``) from the project's packs and the shipped ones."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise UsageError("no pack named; give one with --pack NAME or `pack = [...]` in the profile")
    return _load_cached(tuple(names), tuple(search_path(project_dir)))


def load_pack_file(path: Path, project_dir: Path | None = None, before: list[str] | tuple[str, ...] = ()) -> PackSet:
    """The pack in ``path``, merged onto its ``extends`` base, composed after the packs named in ``before``
    (firmware first): what ``bootlab packs check FILE`` tries, without installing the file. Its ``extends`` is
    looked up beside it, then in the project's ``packs/``, then among the shipped packs. Not cached: the file is
    being edited."""
    if not path.is_file():
        raise UsageError(f"pack file {path} does not exist; give the path of a .toml pack")
    if path.suffix != ".toml":
        raise UsageError(f"pack file {path} is not a .toml file; packs are TOML files named <pack>.toml")
    dirs = [path.resolve().parent, *search_path(project_dir)]
    others = [resolve_pack(n, search_path(project_dir)) for n in before]
    return compile_packs([*others, resolve_pack(path.stem, dirs)])


def pack_warnings(packs: PackSet) -> list[str]:
    """What is valid but probably not meant, for a pack author (`bootlab packs check`): a title that names a
    capture no regex of its signature can fill (it would read ``?``), a set with no ready condition (its boots
    can never pass), an interaction that needs a var neither the pack nor, maybe, the profile gives."""
    out: list[str] = []
    if not packs.login and not packs.shell:
        out.append("no [ready] login or shell prompt: a boot read with this pack never passes")
    for sig in packs.signatures + packs.stderr_signatures:
        spec = sig.spec
        groups = set(sig.regex.groupindex)
        for rx in (*sig.follow, *sig.look_back):
            groups |= set(rx.groupindex)
        if spec.frame:
            groups.add("frame")
        missing = sorted(set(re.findall(r"\{(\w+)\}", spec.title)) - groups)
        if missing:
            fallback = f"; title_fallback {spec.title_fallback!r} is used" if spec.title_fallback else " (shown as ?)"
            out.append(
                f"[[signature]] {spec.id!r}: title uses {{{missing[0]}}}, which none of its regexes captures "
                f"(add (?P<{missing[0]}>...) to regex, follow_regex or look_back_regex){fallback}"
            )
    for inter in packs.interactions:
        for var in sorted(set(re.findall(r"\{(\w+)\}", inter.spec.send)) - set(packs.vars)):
            out.append(
                f"[[interaction]] {inter.spec.id!r}: send uses {{{var}}}, which the pack's [vars] lacks; it is "
                f"answered only when the profile sets vars.{var}"
            )
    return out
