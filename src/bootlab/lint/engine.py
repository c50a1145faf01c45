"""The lint engine: rules as data (TOML), a small matcher over facts, findings out.

Knowledge about what breaks QEMU guests lives in ``rules/*.toml`` (one file per topic), not in Python, so
adding "this combination crashes Redox" is a data change with a reference next to it. The matcher language is
deliberately tiny and declarative (no eval, no expressions): a rule fires when *all* of its constraints hold.

Rule shape::

    [[rule]]
    id = "hvf-smp"                      # lowercase, dashes; unique across all loaded files
    severity = "error"                  # error | warning | info
    message = "-smp {smp} under HVF ..." # {fact} placeholders, e.g. {smp}, {machine.highmem}, {drive.file}
    fix = "use -smp 1"
    reference = "user-qemu-notes.md: ..."
    [rule.when]                         # fact -> constraint; all must hold
    accel = { contains = "hvf" }
    smp = { gt = 1 }
    pack = { eq = "redox" }
    [rule.any_drive]                    # optional: fires once per drive for which all of these hold
    if = { eq = "virtio" }

Constraint operators: ``eq``, ``ne``, ``in``, ``not_in``, ``gt``, ``ge``, ``lt``, ``le`` (numbers),
``version_ge``/``version_lt`` (``"10.0"`` against a version tuple), ``contains``/``contains_any`` (list
facts), ``glob`` (shell pattern, e.g. ``"virt*"`` so that versioned machine types such as ``virt-9.2`` match),
``bool`` (QEMU boolean spelling: on/off/yes/no/true/false), ``exists`` (true/false; empty lists count as
absent). Several operators in one table must all hold. A fact that is absent (unknown) fails every operator
except ``exists = false``, unless the table says ``or_missing = true`` -- so a rule about QEMU 10 stays
quiet when the version is unknown, unless it opts in.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bootlab.arch import normalise_arch
from bootlab.errors import UsageError
from bootlab.qemu.argv_parser import Facts

__all__ = [
    "Constraint",
    "Finding",
    "LintContext",
    "Rule",
    "fact_view",
    "lint",
    "load_rules",
]

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}

# Facts a rule may name at top level. Dotted names below `machine.` are machine options (any option is
# allowed, since QEMU machines have many); drive facts are named without prefix inside `any_drive`.
TOP_FACTS = frozenset(
    {
        "binary", "arch", "accel", "accel_first", "cpu", "cpu_options", "smp", "memory_mb", "machine",
        "firmware", "bios", "pflash", "drives", "devices", "kernel", "initrd", "append", "dtb", "snapshot",
        "nographic", "serial", "netdevs", "shares", "qemu_version", "host_os", "host_arch",
        "arch_matches_host", "pack", "profile", "firmware_missing",
    }
)  # fmt: skip
DRIVE_FACTS = frozenset({"file", "if", "format", "snapshot", "readonly", "id", "media", "device", "persistent"})

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")
_MISSING = object()


@dataclass(frozen=True)
class Finding:
    """One rule that fired: what is wrong, how to fix it, and where that knowledge comes from."""

    id: str
    severity: str
    message: str
    fix: str
    reference: str

    def to_dict(self) -> dict[str, str]:
        """The ``--json`` shape (stable: scripts rely on these keys)."""
        return {
            "id": self.id,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "reference": self.reference,
        }


@dataclass(frozen=True)
class LintContext:
    """What the command line alone cannot say: the QEMU version, the host, and profile-level facts.

    ``profile_facts`` may carry ``pack`` (the OS pack, so Redox-only knowledge applies only to Redox),
    ``profile`` (its name), ``firmware_missing`` (a firmware name the host probe could not find) and
    ``drives``: a list of ``{"file": path, "persistent": bool}`` matched to the command line's drives by
    file name (by position when no file matches), so ``persistent = true`` silences the no-snapshot rule.
    """

    qemu_version: tuple[int, ...] | None = None
    host_os: str | None = None
    host_arch: str | None = None
    profile_facts: Mapping[str, Any] | None = None


class Constraint(BaseModel):
    """One fact's test. All operators given must hold; see the module docstring for the semantics."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    version_ge: str | None = None
    version_lt: str | None = None
    contains: Any = None
    contains_any: list[Any] | None = None
    glob: str | None = None
    bool_: bool | None = Field(default=None, alias="bool")
    exists: bool | None = None
    or_missing: bool = False

    @field_validator("version_ge", "version_lt")
    @classmethod
    def _version_syntax(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+(\.\d+)*", value):
            raise ValueError(f"version {value!r} must look like 10 or 10.0 or 7.2.0")
        return value

    @model_validator(mode="after")
    def _some_operator(self) -> Constraint:
        if not self.model_fields_set - {"or_missing"}:
            raise ValueError(
                "a constraint needs at least one operator (eq, ne, in, not_in, gt, ge, lt, le, "
                "version_ge, version_lt, contains, contains_any, glob, bool, exists)"
            )
        return self

    def holds(self, value: Any) -> bool:
        """Does ``value`` (``_MISSING`` when the fact is unknown) satisfy every operator given?"""
        missing = value is _MISSING or value is None or value == [] or value == {}
        if self.exists is not None and self.exists == missing:
            return False
        if missing:
            return self.or_missing or self.exists is False
        checks: list[bool] = []
        fields = self.model_fields_set
        if "eq" in fields:
            checks.append(_same(value, self.eq))
        if "ne" in fields:
            checks.append(not _same(value, self.ne))
        if self.in_ is not None:
            checks.append(any(_same(value, item) for item in self.in_))
        if self.not_in is not None:
            checks.append(not any(_same(value, item) for item in self.not_in))
        for op, bound in (("gt", self.gt), ("ge", self.ge), ("lt", self.lt), ("le", self.le)):
            if bound is not None:
                checks.append(_compare(value, op, bound))
        if self.version_ge is not None:
            checks.append(version_tuple(value) is not None and _cmp_version(value, self.version_ge) >= 0)
        if self.version_lt is not None:
            checks.append(version_tuple(value) is not None and _cmp_version(value, self.version_lt) < 0)
        if "contains" in fields:
            checks.append(isinstance(value, list) and any(_same(v, self.contains) for v in value))
        if self.contains_any is not None:
            checks.append(isinstance(value, list) and any(_same(v, c) for v in value for c in self.contains_any))
        if self.glob is not None:
            checks.append(isinstance(value, str) and fnmatch.fnmatchcase(value.lower(), self.glob.lower()))
        if self.bool_ is not None:
            checks.append(_as_bool(value) is self.bool_)
        return all(checks)


class Rule(BaseModel):
    """A rule as written in a TOML file; validated so that a typo is an error at load time, not a silent
    miss."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    severity: Severity
    message: str = Field(min_length=1)
    fix: str = Field(min_length=1)
    reference: str = Field(min_length=1)
    when: dict[str, Constraint] = Field(default_factory=dict)
    any_drive: dict[str, Constraint] | None = None
    source: str = ""  # filled by the loader: the file the rule came from

    @model_validator(mode="after")
    def _known_facts(self) -> Rule:
        for name in self.when:
            if not _known_top_fact(name):
                raise ValueError(f"unknown fact {name!r} in when (known: {', '.join(sorted(TOP_FACTS))})")
        for name in self.any_drive or {}:
            if name not in DRIVE_FACTS:
                raise ValueError(f"unknown drive fact {name!r} in any_drive (known: {', '.join(sorted(DRIVE_FACTS))})")
        for text in (self.message, self.fix):
            for name in _PLACEHOLDER.findall(text):
                if name.startswith("drive."):
                    if self.any_drive is None or name.removeprefix("drive.") not in DRIVE_FACTS:
                        raise ValueError(f"placeholder {{{name}}} needs an any_drive rule and a known drive fact")
                elif not _known_top_fact(name):
                    raise ValueError(f"unknown placeholder {{{name}}}")
        return self


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: list[dict[str, Any]] = Field(default_factory=list)


def _known_top_fact(name: str) -> bool:
    head, _, rest = name.partition(".")
    if head == "machine":
        return True
    return head in TOP_FACTS and not rest


# --- matching helpers ---------------------------------------------------------------------------------------


def _same(value: Any, expected: Any) -> bool:
    """Equality that treats QEMU's string options and TOML's numbers alike (``gic-version=3`` vs ``3``)."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return _as_bool(value) is _as_bool(expected) and _as_bool(value) is not None
    if isinstance(value, str) and isinstance(expected, str):
        return value.lower() == expected.lower()
    return value == expected or str(value).lower() == str(expected).lower()


def _compare(value: Any, op: str, bound: float) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return {"gt": number > bound, "ge": number >= bound, "lt": number < bound, "le": number <= bound}[op]


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in {"on", "yes", "true", "y"}:
            return True
        if low in {"off", "no", "false", "n"}:
            return False
    return None


def version_tuple(value: Any) -> tuple[int, ...] | None:
    """`(7, 2, 22)` or `"7.2.22"` -> `(7, 2, 22)`; anything else -> None (an unknown version)."""
    if isinstance(value, tuple | list) and all(isinstance(v, int) for v in value):
        return tuple(value)
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)*", value):
        return tuple(int(p) for p in value.split("."))
    return None


def _cmp_version(value: Any, spec: str) -> int:
    have = version_tuple(value) or ()
    want = tuple(int(p) for p in spec.split("."))
    width = max(len(have), len(want))
    a = have + (0,) * (width - len(have))
    b = want + (0,) * (width - len(want))
    return (a > b) - (a < b)


def _lookup(view: Mapping[str, Any], name: str) -> Any:
    current: Any = view
    for part in name.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _render_value(value: Any) -> str:
    if value is _MISSING or value is None:
        return "(not set)"
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return ".".join(str(v) for v in value)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _render(template: str, view: Mapping[str, Any]) -> str:
    """Fill ``{fact}`` placeholders by lookup only (no ``str.format`` attribute access, nothing evaluated)."""
    return _PLACEHOLDER.sub(lambda m: _render_value(_lookup(view, m.group(1))), template)


# --- loading ------------------------------------------------------------------------------------------------


def _parse_rule_file(name: str, text: str) -> list[Rule]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"lint rules {name}: invalid TOML: {exc}") from None
    try:
        raw = _RuleFile.model_validate(data).rule
    except ValidationError as exc:
        raise UsageError(f"lint rules {name}: {_first_error(exc)} (expected only [[rule]] tables)") from None
    rules: list[Rule] = []
    for index, entry in enumerate(raw):
        label = entry.get("id") if isinstance(entry.get("id"), str) else f"#{index + 1}"
        try:
            rule = Rule.model_validate({**entry, "source": name})
        except ValidationError as exc:
            raise UsageError(f"lint rules {name}: rule {label}: {_first_error(exc)}") from None
        rules.append(rule)
    return rules


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


@lru_cache(maxsize=1)
def _builtin_rules() -> tuple[Rule, ...]:
    folder = resources.files("bootlab.lint") / "rules"
    rules: list[Rule] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            rules.extend(_parse_rule_file(f"rules/{entry.name}", entry.read_text(encoding="utf-8")))
    return tuple(rules)


@lru_cache(maxsize=16)
def _dir_rules(folder: Path) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"lint rules {path}: cannot read: {exc.strerror}") from None
        rules.extend(_parse_rule_file(str(path), text))
    return tuple(rules)


def load_rules(search_path: Iterable[Path] = ()) -> tuple[Rule, ...]:
    """The built-in rules plus any ``*.toml`` in the given folders (e.g. ``<project>/lint``), loaded once.

    Rule ids must be unique across everything loaded, so a project rule cannot silently shadow a built-in one.
    """
    rules = list(_builtin_rules())
    for folder in search_path:
        if folder.is_dir():
            rules.extend(_dir_rules(folder.resolve()))
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.id in seen:
            raise UsageError(f"lint rules {rule.source}: rule {rule.id}: id already defined in {seen[rule.id]}")
        seen[rule.id] = rule.source
    return tuple(rules)


# --- evaluation ---------------------------------------------------------------------------------------------


def fact_view(facts: Facts, context: LintContext | None = None) -> dict[str, Any]:
    """Merge command-line facts and context into the one mapping rules are matched against."""
    ctx = context or LintContext()
    view = facts.as_dict()
    host_arch = normalise_arch(ctx.host_arch) if ctx.host_arch else None
    view["qemu_version"] = tuple(ctx.qemu_version) if ctx.qemu_version else None
    view["host_os"] = ctx.host_os.lower() if ctx.host_os else None
    view["host_arch"] = host_arch
    view["arch_matches_host"] = (
        None if host_arch is None or facts.arch is None else normalise_arch(facts.arch) == host_arch
    )
    profile = dict(ctx.profile_facts or {})
    profile_drives = profile.pop("drives", None) or []
    for key, value in profile.items():
        if key in TOP_FACTS:
            view[key] = value
    if isinstance(view.get("pack"), str):
        view["pack"] = [view["pack"]]  # a profile lists packs in order; rules use `contains`
    _merge_drive_persistence(view["drives"], profile_drives)
    return view


def _merge_drive_persistence(drives: list[dict[str, Any]], profile_drives: Sequence[Mapping[str, Any]]) -> None:
    """Mark command-line drives persistent when the profile says so (by file name; by position as
    fallback)."""
    unmatched: list[Mapping[str, Any]] = []
    for pd in profile_drives:
        target = next((d for d in drives if pd.get("file") and d["file"] == str(pd.get("file"))), None)
        if target is None:
            unmatched.append(pd)
        else:
            target["persistent"] = bool(pd.get("persistent"))
    rest = [d for d in drives if d["persistent"] is None and not d["readonly"]]
    for pd, drive in zip(unmatched, rest, strict=False):
        drive["persistent"] = bool(pd.get("persistent"))


def _matches(constraints: Mapping[str, Constraint], view: Mapping[str, Any]) -> bool:
    return all(constraint.holds(_lookup(view, name)) for name, constraint in constraints.items())


def lint(facts: Facts, context: LintContext | None = None, *, rule_dirs: Iterable[Path] = ()) -> list[Finding]:
    """Run every rule over the facts; errors first, then warnings, then info, each in rule-file order."""
    view = fact_view(facts, context)
    findings: list[Finding] = []
    for rule in load_rules(rule_dirs):
        if not _matches(rule.when, view):
            continue
        if rule.any_drive is None:
            findings.append(_finding(rule, view))
            continue
        for drive in view["drives"]:
            if _matches(rule.any_drive, drive):
                findings.append(_finding(rule, {**view, "drive": drive}))
    findings.sort(key=lambda f: SEVERITY_ORDER[f.severity])
    return findings


def _finding(rule: Rule, view: Mapping[str, Any]) -> Finding:
    return Finding(
        id=rule.id,
        severity=rule.severity,
        message=_render(rule.message, view),
        fix=_render(rule.fix, view),
        reference=rule.reference,
    )
