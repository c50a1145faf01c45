"""Lint a QEMU invocation against what is known to break (rules as data in ``rules/*.toml``).

Entry points:

- :func:`lint` -- facts (from :func:`bootlab.qemu.argv_parser.parse_argv`) plus context -> findings.
- :func:`check_argv` -- a raw command line, e.g. the user's run script pasted after ``bootlab lint --``.
- :func:`check_invocation` -- what ``run``/``boot`` call before every boot: the builder's argv plus what the
  profile and host probe know (QEMU version, pack, ``persistent`` drives, firmware the probe could not find).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bootlab.host import host_arch, host_os
from bootlab.lint.engine import Finding, LintContext, Rule, fact_view, lint, load_rules, version_tuple
from bootlab.qemu.argv_parser import Facts, parse_argv

__all__ = [
    "Facts",
    "Finding",
    "LintContext",
    "Rule",
    "check_argv",
    "check_invocation",
    "fact_view",
    "has_errors",
    "lint",
    "load_rules",
    "profile_facts",
]


def has_errors(findings: Iterable[Finding]) -> bool:
    """True when any finding is error-level: the boot must be refused unless ``--force``."""
    return any(f.severity == "error" for f in findings)


def check_argv(
    argv: list[str],
    *,
    qemu_version: tuple[int, ...] | None = None,
    host_os: str | None = None,
    host_arch: str | None = None,
    profile_facts: Mapping[str, Any] | None = None,
    rule_dirs: Iterable[Path] = (),
) -> list[Finding]:
    """Parse ``argv`` and lint it. Host facts left as ``None`` are unknown, and rules needing them stay
    quiet."""
    context = LintContext(qemu_version=qemu_version, host_os=host_os, host_arch=host_arch, profile_facts=profile_facts)
    return lint(parse_argv(argv), context, rule_dirs=rule_dirs)


def profile_facts(profile: Any, invocation: Any | None = None) -> dict[str, Any]:
    """Profile-level facts the argv cannot carry: name, packs, which drives may be written, missing firmware.

    Reads the profile duck-typed (``name``, ``pack``, ``drives[].file/.persistent``, ``persistent``) so
    that lint does not depend on the profile model's internals; ``invocation.problems`` with id
    ``firmware-missing`` (the builder's record of a firmware name the host probe could not find) become
    ``firmware_missing``.
    """
    facts: dict[str, Any] = {}
    name = getattr(profile, "name", None)
    if name:
        facts["profile"] = name
    pack = getattr(profile, "pack", None)
    if pack:
        facts["pack"] = [pack] if isinstance(pack, str) else list(pack)
    everything_persistent = bool(getattr(profile, "persistent", False))
    facts["drives"] = [
        {"file": str(d.file), "persistent": bool(getattr(d, "persistent", False)) or everything_persistent}
        for d in getattr(profile, "drives", []) or []
    ]
    if invocation is not None:
        problems = getattr(invocation, "problems", [])
        missing = [p.subject for p in problems if p.id == "firmware-missing"]
        if missing:
            facts["firmware_missing"] = missing[0]
    return facts


def check_invocation(invocation: Any, profile: Any, host: Any, *, rule_dirs: Iterable[Path] = ()) -> list[Finding]:
    """Lint what is about to run: the builder's argv with the host probe's and the profile's knowledge.

    ``run``/``boot`` print warnings and refuse on errors (unless ``--force``). The QEMU version comes from
    ``host.qemu[arch].version_tuple`` (or ``.version``), the host from ``host.os``/``host.arch``.
    """
    argv = list(invocation.argv)
    facts = parse_argv(argv)
    arch = getattr(profile, "arch", None) or facts.arch
    binary = (getattr(host, "qemu", None) or {}).get(arch) if arch else None
    version: tuple[int, ...] | None = None
    if binary is not None:
        raw = getattr(binary, "version_tuple", None) or getattr(binary, "version", None)
        version = version_tuple(raw)
    context = LintContext(
        qemu_version=version,
        host_os=getattr(host, "os", None) or host_os(),
        host_arch=getattr(host, "arch", None) or host_arch(),
        profile_facts=profile_facts(profile, invocation),
    )
    return lint(facts, context, rule_dirs=rule_dirs)
