"""`bootlab lint`: check a profile or a raw QEMU command line against what is known to break.

Two forms, one rule set (both become facts via :func:`bootlab.qemu.argv_parser.parse_argv`):

- ``bootlab lint PROFILE [--config F] [--set k=v]...`` lints exactly the argv ``run`` would use, with what the
  profile knows (pack, persistent drives) and what the host probe knows (QEMU version, firmware).
- ``bootlab lint -- qemu-system-aarch64 ARGS...`` lints a command line as pasted from a run script (one quoted
  string works too), and ``--script run.sh`` reads the command out of a script (as ``profiles import`` does).

Exit codes: 1 when an error-level rule fires, 0 otherwise, 2 on bad input. Heavy imports live in handlers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootlab.cli.common import add_config_arg, add_json_arg, add_set_arg
from bootlab.errors import EXIT_GUEST_FAILED, EXIT_PASS, UsageError

if TYPE_CHECKING:
    from bootlab.lint import Finding
    from bootlab.qemu.argv_parser import Facts


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lint",
        help="check a profile or a QEMU command line against known problems",
        description="bootlab lint PROFILE [--set k=v]...   or   bootlab lint -- qemu-system-ARCH ARGS...",
    )
    p.add_argument(
        "target",
        nargs="*",
        metavar="PROFILE | -- QEMU ARGS",
        help="a profile, or a QEMU command line after --",
    )
    add_config_arg(p)
    add_set_arg(p)
    p.add_argument("--script", type=Path, metavar="FILE", help="lint the qemu-system command found in a sh script")
    p.add_argument("--mode", metavar="M", help="with --script: the script's first argument (its `case` over modes)")
    p.add_argument("--rules", type=Path, action="append", default=[], metavar="DIR", help="extra rule folder (*.toml)")
    p.add_argument(
        "--no-host",
        action="store_true",
        help="ignore this machine (its OS, arch, QEMU version, firmware): lint the command line on its own",
    )
    add_json_arg(p, 'print [{"id", "severity", "message", "fix", "reference"}]')
    p.set_defaults(func=run)


def _is_qemu(word: str) -> bool:
    return Path(word).name.startswith("qemu-")


def command_from_script(text: str, where: str, mode: str | None = None) -> list[str]:
    """The ``qemu-system-*`` command a sh script runs (with ``mode`` as its first argument), its variables
    resolved as far as bootlab can without running it (see :mod:`bootlab.profile.script_reader`); with several
    paths through the script, the first."""
    from bootlab.profile.script_reader import read_script

    return read_script(text, where, args=[mode] if mode else []).commands[0].argv


def _raw_argv(target: list[str]) -> list[str]:
    from bootlab.profile.script_reader import split_command_line

    return split_command_line(target)


def _project_rule_dirs(config: Path | None) -> list[Path]:
    """``<project>/lint`` next to bootlab.toml (``--config`` or found from here upwards), when it exists."""
    from bootlab.lab.preflight import lint_rule_dirs
    from bootlab.profile.loader import find_project_file

    return lint_rule_dirs(config if config is not None else find_project_file())


def _missing_firmware(facts: Facts, host: Any) -> str | None:
    """The first firmware file of a raw command line not found (as a path, or by QEMU's name search)."""
    for fw in facts.firmware:
        if not fw.file or "$" in fw.file:
            continue
        if Path(fw.file).exists():
            continue
        if fw.kind == "bios" and "/" not in fw.file and host is not None and host.find_firmware(fw.file):
            continue
        return fw.file
    return None


def lint_raw(argv: list[str], *, use_host: bool, rule_dirs: list[Path]) -> list[Finding]:
    """Lint a raw command line; with ``use_host`` the probe adds the OS, arch, QEMU version and firmware."""
    from bootlab.lint import LintContext, lint
    from bootlab.qemu.argv_parser import parse_argv

    if not argv:
        raise UsageError(
            "nothing to lint: give a PROFILE, or a command line after -- (bootlab lint -- qemu-system-...)"
        )
    facts = parse_argv(argv)
    if facts.binary is not None and not _is_qemu(facts.binary):
        raise UsageError(f"{facts.binary}: not a QEMU binary; expected `bootlab lint -- qemu-system-ARCH ARGS...`")
    if not use_host:
        return lint(facts, LintContext(), rule_dirs=rule_dirs)
    from bootlab.host import probe

    host = probe()
    binary = host.qemu.get(facts.arch) if facts.arch else None
    extra: dict[str, Any] = {}
    missing = _missing_firmware(facts, host)
    if missing:
        extra["firmware_missing"] = missing
    context = LintContext(
        qemu_version=binary.version_tuple if binary is not None else None,
        host_os=host.os,
        host_arch=host.arch,
        profile_facts=extra,
    )
    return lint(facts, context, rule_dirs=rule_dirs)


def lint_profile(args: argparse.Namespace, rule_dirs: list[Path]) -> list[Finding]:
    """Lint the argv that `bootlab run PROFILE` would use: the canonical one that `lock` and `script` record
    (console on stdio, `{seed}` and `{boot}` left unfilled)."""
    from bootlab.host import probe
    from bootlab.lab.preflight import canonical_invocation, check_fallback
    from bootlab.lint import check_invocation
    from bootlab.packs.loader import check_pack_names
    from bootlab.profile.loader import load_project

    project = load_project(args.config)
    host = probe()
    invocation = canonical_invocation(project, args.target[0], args.sets, host)
    profile = invocation.profile
    if profile.pack:
        check_pack_names(profile.pack, project.root)  # an unknown pack is bad input, as at boot
    check_fallback(profile, project, args.sets)
    return check_invocation(invocation, profile, host, rule_dirs=rule_dirs)


def format_finding(finding: Finding) -> str:
    """One line per finding, then its fix indented under it: readable in a terminal and in CI logs."""
    return f"{finding.severity:<7} {finding.id}: {finding.message}\n        fix: {finding.fix}"


def run(args: argparse.Namespace) -> int:
    target: list[str] = list(args.target)
    rule_dirs = _project_rule_dirs(args.config) + list(args.rules)
    for folder in args.rules:
        if not folder.is_dir():
            raise UsageError(f"--rules {folder}: not a folder")
    if args.mode is not None and args.script is None:
        raise UsageError("--mode picks a mode of a --script; give the script too (--script run.sh --mode hvf)")
    if args.script is not None:
        if target:
            raise UsageError("give either --script FILE or a PROFILE / command line, not both")
        try:
            text = args.script.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--script {args.script}: cannot read: {exc.strerror}") from None
        argv = command_from_script(text, str(args.script), args.mode)
        findings = lint_raw(argv, use_host=not args.no_host, rule_dirs=rule_dirs)
    elif len(target) == 1 and not target[0].startswith("-") and not _is_qemu(target[0]) and " " not in target[0]:
        findings = lint_profile(args, rule_dirs)
    else:
        if args.sets:
            raise UsageError("--set applies to a PROFILE, not to a raw command line")
        argv = _raw_argv(target)
        if argv and not argv[0].startswith("-") and not _is_qemu(argv[0]) and "=" not in argv[0]:
            given = " ".join(shlex.quote(a) for a in target)
            raise UsageError(f"expected one PROFILE or `-- qemu-system-ARCH ARGS...`, got {given}")
        findings = lint_raw(argv, use_host=not args.no_host, rule_dirs=rule_dirs)
    if args.json:
        print(json.dumps([f.to_dict() for f in findings], indent=2))
    else:
        for finding in findings:
            print(format_finding(finding))
        counts = {sev: sum(f.severity == sev for f in findings) for sev in ("error", "warning", "info")}
        print(
            f"lint: {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info",
            file=sys.stderr,
        )
    return EXIT_GUEST_FAILED if any(f.severity == "error" for f in findings) else EXIT_PASS
