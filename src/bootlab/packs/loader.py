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

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bootlab.errors import UsageError
from bootlab.packs.model import Interaction, Milestone, PackFile, Signature

SHIPPED_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class CompiledSignature:
    spec: Signature
    pack: str
    regex: re.Pattern[str]
    follow: tuple[re.Pattern[str], ...]
    look_back: tuple[re.Pattern[str], ...]
    fatal_when: tuple[tuple[str, re.Pattern[str]], ...]
    dump_end: re.Pattern[str] | None = None


@dataclass(frozen=True)
class CompiledInteraction:
    spec: Interaction
    regex: re.Pattern[str]


@dataclass(frozen=True)
class CompiledMilestone:
    spec: Milestone
    regex: re.Pattern[str]


@dataclass(frozen=True)
class PackSet:
    """Packs composed and compiled, ready for the observer. Immutable, so one instance serves many boots."""

    names: tuple[str, ...]
    milestones: tuple[CompiledMilestone, ...]
    login: tuple[re.Pattern[str], ...]
    shell: tuple[re.Pattern[str], ...]
    shell_prompt: str | None
    signatures: tuple[CompiledSignature, ...]
    stderr_signatures: tuple[CompiledSignature, ...]
    interactions: tuple[CompiledInteraction, ...]
    frame_regex: tuple[re.Pattern[str], ...]
    frame_skip: tuple[re.Pattern[str], ...]
    vars: dict[str, str] = field(default_factory=dict)
    # one alternation of every serial signature regex: a line that misses it is skipped in one scan
    prefilter: re.Pattern[str] | None = None
    # the most lines any serial signature looks back at (the observer keeps that many)
    look_back: int = 0


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


def read_pack_file(path: Path) -> PackFile:
    """Parse and validate one pack file; any problem is one line naming the file and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read pack {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"pack {path} is not valid TOML: {exc}; fix the file") from exc
    data.setdefault("name", path.stem)
    try:
        pack = PackFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise UsageError(f"pack {path}: {where}: {err['msg']}; fix the file") from exc
    if pack.name != path.stem:
        raise UsageError(f"pack {path} says name = {pack.name!r}; it must match the file name {path.stem!r}")
    return pack


def _merge(base: PackFile, ext: PackFile) -> PackFile:
    def by_key(old: list[Any], new: list[Any], key: str) -> list[Any]:
        replaced = {getattr(n, key): n for n in new}
        merged = [replaced.pop(getattr(o, key), o) for o in old]
        return merged + [n for n in new if getattr(n, key) in replaced]

    return base.model_copy(
        update={
            "description": ext.description,
            "vars": {**base.vars, **ext.vars},
            "milestone": by_key(base.milestone, ext.milestone, "name"),
            "ready": ext.ready or base.ready,
            "shell_prompt": ext.shell_prompt or base.shell_prompt,
            "signature": by_key(base.signature, ext.signature, "id"),
            "interaction": by_key(base.interaction, ext.interaction, "id"),
            "frames": ext.frames or base.frames,
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
    known = ", ".join(available(dirs)) or "none"
    raise UsageError(f"unknown pack {name!r} (known: {known}); add packs/{name}.toml to the project or fix the name")


def _anonymous(regex: str) -> str:
    """Named groups repeat across signatures; the prefilter alternation needs them unnamed."""
    return re.sub(r"\(\?P<\w+>", "(?:", regex)


def compile_packs(packs: list[PackFile]) -> PackSet:
    milestones: list[CompiledMilestone] = []
    sigs: list[CompiledSignature] = []
    stderr_sigs: list[CompiledSignature] = []
    inters: list[CompiledInteraction] = []
    login: list[re.Pattern[str]] = []
    shell: list[re.Pattern[str]] = []
    frame_re: list[re.Pattern[str]] = []
    frame_skip: list[re.Pattern[str]] = []
    shell_prompt: str | None = None
    variables: dict[str, str] = {}
    for pack in packs:
        variables.update(pack.vars)
        milestones += [CompiledMilestone(m, re.compile(m.regex)) for m in pack.milestone]
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
                )
            )
        inters += [CompiledInteraction(i, re.compile(i.regex)) for i in pack.interaction]
        if pack.ready is not None:
            login += [re.compile(r) for r in pack.ready.login]
            shell += [re.compile(r) for r in pack.ready.shell]
        if pack.frames is not None:
            frame_re += [re.compile(r) for r in pack.frames.regex]
            frame_skip += [re.compile(r) for r in pack.frames.skip]
        shell_prompt = pack.shell_prompt or shell_prompt
    prefilter = re.compile("|".join(f"(?:{_anonymous(s.spec.regex)})" for s in sigs)) if sigs else None
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
        frame_skip=tuple(frame_skip),
        vars=variables,
        prefilter=prefilter,
        look_back=max((s.spec.look_back for s in sigs), default=0),
    )


@lru_cache(maxsize=32)
def _load_cached(names: tuple[str, ...], dirs: tuple[Path, ...]) -> PackSet:
    return compile_packs([resolve_pack(n, list(dirs)) for n in names])


def load_packs(names: list[str] | tuple[str, ...] | str, project_dir: Path | None = None) -> PackSet:
    """Compose the named packs (a list, or ``"edk2,redox"``) from the project's packs and the shipped ones."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise UsageError("no pack named; give one with --pack NAME or `pack = [...]` in the profile")
    return _load_cached(tuple(names), tuple(search_path(project_dir)))
