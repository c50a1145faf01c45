"""Find the project file, merge `extends` chains over the shipped presets, apply `--set`, fill templates, validate.

Order matters and is fixed: (1) the raw tables of the chain are merged base-first, (2) `--set` overrides are
applied, (3) `{var}` templates are filled with `vars` plus the built-ins `{seed}` and `{boot}`, (4) relative
paths are made absolute against the directory of the project file, (5) pydantic validates the result. Every
error is one :class:`UsageError` line naming the file, the key and the fix.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootlab.errors import UsageError
from bootlab.profile.templating import render_tree

if TYPE_CHECKING:  # the model (pydantic) is imported when a profile is validated: `profiles` lists without it
    from pydantic import ValidationError

    from bootlab.profile.model import Profile

PROJECT_FILE = "bootlab.toml"
PROJECT_KEYS = {"profiles", "store", "packs", "cluster"}
PATH_FIELDS = ("kernel", "initrd", "symbols")


@dataclass
class Project:
    """A parsed `bootlab.toml` (or none: presets only, paths relative to the current directory)."""

    path: Path | None
    root: Path
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    #: absolute path -> the path to use instead: a build's outputs, read from bootlab's build of a revision
    #: rather than from the user's tree (see bootlab.source.build); empty for the user's own files
    path_map: dict[str, str] = field(default_factory=dict)


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; a missing or malformed file is one line naming it."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}; fix the syntax there") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text; save it as UTF-8") from None


def find_project_file(start: Path | None = None) -> Path | None:
    """`bootlab.toml` in ``start`` (default: the current directory) or the nearest parent that has one."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def load_project(config: Path | None = None, cwd: Path | None = None) -> Project:
    """Load ``config`` (``--config FILE``) or the project file found from ``cwd``; no file means presets only."""
    path = config if config is not None else find_project_file(cwd)
    if path is None:
        return Project(path=None, root=(cwd or Path.cwd()).resolve())
    path = path.resolve() if path.exists() else path
    data = read_toml(path)
    unknown = sorted(set(data) - PROJECT_KEYS)
    if unknown:
        raise UsageError(
            f"{path}: unknown top-level key `{unknown[0]}`; expected [profiles.NAME] tables "
            f"(allowed: {', '.join(sorted(PROJECT_KEYS))})"
        )
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise UsageError(f"{path}: `profiles` must hold tables, e.g. [profiles.my-guest]")
    settings = {k: v for k, v in data.items() if k != "profiles"}
    return Project(path=path, root=path.parent, profiles=profiles, settings=settings)


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("bootlab.profile.presets").iterdir() if p.name.endswith(".toml"))


def _preset_table(name: str) -> dict[str, Any] | None:
    res = resources.files("bootlab.profile.presets") / f"{name}.toml"
    if not res.is_file():
        return None
    return tomllib.loads(res.read_text(encoding="utf-8"))


def _normalise(table: dict[str, Any]) -> dict[str, Any]:
    """Bring short forms into the shape `--set` and merging work on (machine string -> table)."""
    out = dict(table)
    if isinstance(out.get("machine"), str):
        out["machine"] = {"type": out["machine"]}
    checks = out.get("checks")
    if isinstance(checks, list) and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in checks):
        # [[profiles.x.checks]] with names: keyed by name, so checks merge through `extends` and `--check` adds one
        out["checks"] = {c["name"]: {k: v for k, v in c.items() if k != "name"} for c in checks}
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge tables: child keys win, nested tables merge, lists and scalars are replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _where(project: Project, name: str, is_preset: bool) -> str:
    return f"preset {name}" if is_preset else f"{project.path}: profiles.{name}"


def raw_profile(project: Project, name: str) -> dict[str, Any]:
    """The merged raw table for ``name`` (project profile or preset), `extends` resolved, before overrides."""

    def lookup(target: str, from_name: str | None, chain: list[str]) -> dict[str, Any]:
        # A project profile may extend the preset of the same name (to tweak a preset in place).
        is_preset = not (target in project.profiles and target != from_name)
        key = f"preset {target}" if is_preset else target
        if key in chain:
            raise UsageError(f"profile {target}: `extends` loop ({' -> '.join([*chain, key])}); break the cycle")
        if is_preset:
            preset = _preset_table(target)
            if preset is None and target == from_name:
                raise UsageError(
                    f"{project.path}: profiles.{target}.extends names the profile itself; a profile may extend a "
                    f"preset of the same name, but there is no preset `{target}`"
                )
            if preset is None:
                known = sorted(set(project.profiles) | set(preset_names()))
                where = f"{project.path}: " if project.path else ""
                src = f"profiles.{from_name}.extends" if from_name else "profile"
                raise UsageError(f"{where}{src}: unknown profile or preset `{target}` (known: {', '.join(known)})")
            table = preset
        else:
            table = project.profiles[target]
        table = _normalise(table)
        parent = table.pop("extends", None)
        if parent is None:
            return table
        if not isinstance(parent, str):
            raise UsageError(f"{_where(project, target, is_preset)}.extends must be a profile or preset name")
        return _merge(lookup(parent, None if is_preset else target, [*chain, key]), table)

    return lookup(name, None, [])


def parse_set(item: str) -> tuple[list[str], Any]:
    """`key=value` with a dotted key; the value is read as TOML when it parses (4, true, [..]) else as a string."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set cpu=max or --set machine.highmem=off")
    parts = key.split(".")
    if any(not p for p in parts):
        raise UsageError(f"--set {item!r}: malformed key `{key}`; use dotted names like vars.build")
    try:
        value: Any = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return parts, value


def apply_sets(table: dict[str, Any], sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    out = json.loads(json.dumps(table))  # deep copy of plain TOML data
    for item in sets:
        parts, value = parse_set(item)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, str) and i == 0 and part == "machine":
                child = node[part] = {"type": child}
            elif isinstance(child, str | list) and i == 1 and parts[0] == "checks":
                child = node[part] = {"command": child}  # a check's short form is its command: `checks.x.timeout=5`
            elif not isinstance(child, dict):
                raise UsageError(
                    f"--set {item}: `{'.'.join(parts[: i + 1])}` is not a table, so it has no `{parts[i + 1]}`"
                )
            node = child
        node[parts[-1]] = value
    return out


def _absolutise(table: dict[str, Any], root: Path, path_map: dict[str, str] | None = None) -> dict[str, Any]:
    """Relative paths are relative to the project file's directory (the current directory without one); a path
    in ``path_map`` (a build output of another revision) is replaced by where that revision's file is."""

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute():
            value = str((root / value).resolve())
        if isinstance(value, str) and path_map:
            return path_map.get(value, value)
        return value

    out = dict(table)
    for key in PATH_FIELDS:
        if key in out:
            out[key] = fix(out[key])
    if isinstance(out.get("drives"), list):
        out["drives"] = [
            {**d, "file": fix(d.get("file"))} if isinstance(d, dict) and "file" in d else d for d in out["drives"]
        ]
    shares = out.get("shares")
    if isinstance(shares, list):
        out["shares"] = [
            {**s, "path": fix(s.get("path"))} if isinstance(s, dict) and "path" in s else s for s in shares
        ]
    elif isinstance(shares, dict):
        out["shares"] = {fix(k): v for k, v in shares.items()}
    checks = out.get("checks")
    if isinstance(checks, dict):
        out["checks"] = {
            k: {**c, "script": fix(c["script"])} if isinstance(c, dict) and isinstance(c.get("script"), str) else c
            for k, c in checks.items()
        }
    build = out.get("build")
    if isinstance(build, dict):
        out["build"] = {**build, "dir": str((root / str(build.get("dir", "."))).resolve())}
    fw = out.get("firmware")
    if isinstance(fw, dict):
        # A bare file name is a well-known name the host probe looks up, unless the project dir has that file.
        out["firmware"] = {
            k: (fix(v) if isinstance(v, str) and ("/" in v or (root / v).is_file()) else v) for k, v in fw.items()
        }
    return out


def _validation_message(exc: ValidationError, where: str, table: dict[str, Any] | None = None) -> str:
    from bootlab.profile.model import Profile

    err = exc.errors()[0]
    parts = list(err["loc"])
    checks = (table or {}).get("checks")
    if len(parts) > 1 and parts[0] == "checks" and isinstance(parts[1], int) and isinstance(checks, dict):
        names = list(checks)  # the model reads the table as a list: name the check, not its index
        parts[1] = names[parts[1]] if parts[1] < len(names) else parts[1]
    loc = ".".join(str(p) for p in parts)
    key = f"{where}.{loc}" if loc else where
    if err["type"] == "extra_forbidden":
        if len(err["loc"]) == 3 and err["loc"][0] == "checks":
            from bootlab.profile.model import Check

            known = ", ".join(k for k in Check.model_fields if k != "name")
            return f"{key}: unknown key; check keys are: {known}"
        known = ", ".join(sorted(Profile.model_fields))
        return f"{key}: unknown key; profile keys are: {known}"
    if err["type"] == "missing":
        return f"{key}: required key is missing; add it to the profile"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{key}: {msg}{shown}"


def _blame(exc: ValidationError, where: str, sets: list[str] | tuple[str, ...]) -> str:
    """Name the `--set` that put a bad value there rather than the file, when one did."""
    loc = [str(p) for p in exc.errors()[0]["loc"]]
    for item in reversed(sets):
        key = item.partition("=")[0].strip().split(".")
        if loc and key[0] == loc[0]:  # nested tables may be reshaped (machine.highmem -> machine.options.highmem)
            return f"--set {item}: {where}"
    return where


def random_seed() -> int:
    return secrets.randbits(32)


def resolve_profile(
    name: str,
    *,
    config: Path | None = None,
    sets: list[str] | tuple[str, ...] = (),
    seed: int | None = None,
    boot_index: int = 0,
    project: Project | None = None,
    keep_builtins: bool = False,
) -> Profile:
    """Resolve ``name`` into a validated :class:`Profile` for one boot.

    ``keep_builtins`` leaves `{seed}` and `{boot}` unfilled (as literal text): that is the form that `lock` and
    `script` record, since a locked profile must not change with every boot's seed.
    """
    project = project or load_project(config)
    table = apply_sets(raw_profile(project, name), sets)
    if seed is None:
        seed = random_seed()
    if not 0 <= seed <= 0xFFFFFFFF:
        raise UsageError(f"--seed {seed}: a seed is a 32-bit unsigned number (0..4294967295)")
    raw_vars = table.get("vars", {})
    if not isinstance(raw_vars, dict):
        raise UsageError(f'profile {name}: `vars` must be a table, e.g. vars = {{build = "x"}}')
    values = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw_vars.items()}
    values.update(
        {"seed": "{seed}", "boot": "{boot}"} if keep_builtins else {"seed": str(seed), "boot": str(boot_index)}
    )
    where = f"{project.path}: profiles.{name}" if name in project.profiles else f"preset {name}"
    table = render_tree(table, values, where)
    table = _absolutise(table, project.root, project.path_map)
    table.update(name=name, seed=seed, boot=boot_index)
    from pydantic import ValidationError

    from bootlab.profile.model import Profile

    try:
        return Profile.model_validate(table)
    except ValidationError as exc:
        raise UsageError(_validation_message(exc, _blame(exc, where, sets), table)) from None


def profile_hash(profile: Profile) -> str:
    """A short stable hash of what a profile means (seed and boot index excluded)."""
    data = profile.model_dump(mode="json", exclude={"seed", "boot"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def list_profiles(project: Project) -> list[tuple[str, str, str]]:
    """(name, source, description) for every project profile and preset."""
    rows: list[tuple[str, str, str]] = []
    for name, table in project.profiles.items():
        rows.append((name, str(project.path), str(table.get("description", ""))))
    for name in preset_names():
        if name not in project.profiles:
            rows.append((name, "preset", str((_preset_table(name) or {}).get("description", ""))))
    return rows
