"""What every command that takes a profile shares: --config, --set, --seed, and the resolve/lint/lock steps."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootlab.host import Host
    from bootlab.lint import Finding
    from bootlab.profile.loader import Project
    from bootlab.profile.model import Profile
    from bootlab.qemu.argv import Invocation
    from bootlab.qemu.runtime import RuntimeDir


def add_profile_args(parser: argparse.ArgumentParser, *, seed: bool = True) -> None:
    parser.add_argument("profile", metavar="PROFILE", help="a profile from bootlab.toml or a preset")
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="project file (default: bootlab.toml here or above)"
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile field (dotted keys: cpu=max, machine.highmem=off, vars.build=x); repeatable",
    )
    if seed:
        parser.add_argument("--seed", type=_seed, metavar="N", help="the boot's 32-bit seed (replays a boot)")


def _seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"{value} is not a 32-bit unsigned seed (0..4294967295)")
    return value


@dataclass
class Resolved:
    project: Project
    profile: Profile
    host: Host


def resolve(args: argparse.Namespace, *, keep_builtins: bool = False, boot_index: int = 0) -> Resolved:
    from bootlab.host import probe
    from bootlab.profile.loader import load_project, resolve_profile

    project = load_project(args.config)
    profile = resolve_profile(
        args.profile,
        project=project,
        sets=args.sets,
        seed=getattr(args, "seed", None),
        boot_index=boot_index,
        keep_builtins=keep_builtins,
    )
    return Resolved(project=project, profile=profile, host=probe())


def canonical_invocation(args: argparse.Namespace) -> tuple[Resolved, Invocation]:
    """The profile with `{seed}`/`{boot}` unfilled and the console on stdio: what scripts and locks record."""
    from bootlab.qemu.argv import build_invocation

    res = resolve(args, keep_builtins=True)
    return res, build_invocation(res.profile, res.host)


def check_lock(args: argparse.Namespace) -> None:
    """Refuse to run a locked profile whose command line changed (nothing to do when no lock names it)."""
    from bootlab.profile.loader import load_project
    from bootlab.profile.lock import check_lock as _check
    from bootlab.profile.lock import read_locks

    if args.profile not in read_locks(load_project(args.config)):
        return
    res, inv = canonical_invocation(args)
    _check(res.project, res.profile.name, inv.argv, inv.sha256)


def prepare(
    args: argparse.Namespace, *, runtime: RuntimeDir | None = None, force: bool = False, quiet: bool = False
) -> tuple[Resolved, Invocation]:
    """Resolve, build the argv, check the lock, lint (warnings printed; errors refuse unless --force)."""
    from bootlab.errors import UsageError
    from bootlab.qemu.argv import build_invocation

    check_lock(args)
    res = resolve(args)
    inv = build_invocation(res.profile, res.host, runtime)
    inv.require_runnable()  # a missing file is the clearer message, and --force cannot fix it
    findings = lint_invocation(inv, res)
    errors = [f for f in findings if f.severity == "error"]
    if not quiet:
        for f in findings:
            if f.severity == "info":
                continue  # `bootlab lint` shows those; a boot only says what may break it
            print(f"lint {f.severity}: [{f.id}] {f.message}", file=sys.stderr)
    if errors and not force:
        raise UsageError(
            f"profile {res.profile.name}: lint refuses to boot ({', '.join(f.id for f in errors)}); "
            f"fix the profile, or boot anyway with --force"
        )
    return res, inv


def lint_invocation(inv: Invocation, res: Resolved) -> list[Finding]:
    """Lint findings for an invocation, with the project's own rules (`lint/*.toml` beside bootlab.toml)."""
    from bootlab.lint import check_invocation

    rule_dirs = [res.project.root / "lint"] if res.project.path else []
    return list(check_invocation(inv, res.profile, res.host, rule_dirs=rule_dirs))
