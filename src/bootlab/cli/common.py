"""What the commands share: their options (--config, --set, --json, --seed...), the argparse types that read numbers
(whole numbers, seconds, rates, seeds: one wording of each error), and the resolve/lint/lock steps."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from bootlab.host import Host
    from bootlab.profile.loader import Project
    from bootlab.profile.model import Profile
    from bootlab.qemu.invocation import Invocation
    from bootlab.qemu.runtime import RuntimeDir


#: ``--config`` of a command that reads profiles, and of one that only opens the store.
CONFIG_HELP = "project file (default: bootlab.toml here or above)"
STORE_CONFIG_HELP = "project file (decides where the store is)"
SET_HELP = "override a profile field (dotted keys: cpu=max, machine.highmem=off, vars.build=x); repeatable"


def add_config_arg(parser: argparse.ArgumentParser, help: str | None = CONFIG_HELP) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help=help)


def add_set_arg(
    parser: argparse.ArgumentParser, help: str | None = SET_HELP, *, metavar: str = "KEY=VALUE", default: bool = True
) -> None:
    """``--set KEY=VALUE`` into ``args.sets`` (``default=False``: no default, for a second parser that fills the
    namespace the first one made)."""
    parser.add_argument(
        "--set", dest="sets", action="append", default=[] if default else None, metavar=metavar, help=help
    )


def add_json_arg(parser: argparse.ArgumentParser, help: str | None = "print the result as JSON") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def project_dir(config: Path | None) -> Path:
    """Where a command that reads packs (``classify``, ``packs``) finds the project's ``packs/``: beside the project
    file (``--config``, else bootlab.toml here or above), else here, as a boot without a project file looks for
    them (its project root is the current directory). The file is not parsed: reading logs needs no profile."""
    if config is not None:
        return config.resolve().parent
    from bootlab.profile.loader import find_project_file

    found = find_project_file()
    return found.parent if found is not None else Path.cwd()


def add_profile_args(parser: argparse.ArgumentParser, *, seed: bool = True) -> None:
    parser.add_argument("profile", metavar="PROFILE", help="a profile from bootlab.toml or a preset")
    add_config_arg(parser)
    add_set_arg(parser)
    if seed:
        parser.add_argument("--seed", type=_seed, metavar="N", help="the boot's 32-bit seed (replays a boot)")


def add_check_args(parser: argparse.ArgumentParser) -> None:
    """``--check NAME=COMMAND`` and ``--check-script FILE``: checks added to the profile's own, as ``--set
    checks.NAME={...}`` overrides (so a trial stores them with its other overrides, its replay command carries
    them, and ``--set checks.NAME.timeout=S`` tunes one)."""
    parser.add_argument(
        "--check",
        dest="sets",
        action="append",
        type=check_option,
        metavar="NAME=COMMAND",
        help="after the boot is ready, run COMMAND (shell text) in the guest; the boot fails (check-failed) if it "
        "exits non-zero or outlives its timeout (60 s; --set checks.NAME.timeout=S); repeatable",
    )
    parser.add_argument(
        "--check-script",
        dest="sets",
        action="append",
        type=check_script_option,
        metavar="FILE",
        help="send a host shell script to the guest over the console and run it with sh, as a check named after "
        "the file; repeatable",
    )


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (JSON's escapes are TOML's, except DEL, which TOML wants escaped)."""
    import json

    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007F")


def _check_name(name: str, given: str) -> str:
    from bootlab.profile.model import CHECK_NAME

    if not CHECK_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(f"{given!r}: check name {name!r} must be 1-64 letters, digits, '_' or '-'")
    return name


def check_option(text: str) -> str:
    """An argparse type: ``NAME=COMMAND`` -> the ``--set`` that adds that check."""
    name, sep, command = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=COMMAND, e.g. --check 'kernel=uname -a'")
    _check_name(name, text)
    if not command.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: check {name} has no command after '='; e.g. --check '{name}=true'")
    return f"checks.{name}={{command = {toml_string(command)}}}"


def check_script_option(text: str) -> str:
    """An argparse type: a script file -> the ``--set`` that adds a check named after it (``net-up.sh``:
    ``net-up``), with the file's absolute path (the script is read, and checked readable, before the boot)."""
    import re

    path = Path(text).expanduser()
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-")[:64] or "script"
    _check_name(name, text)
    return f"checks.{name}={{script = {toml_string(str(path.resolve()))}}}"


def stage_line(text: str, t: float | None) -> str:
    """One line of a live boot timeline (`bootlab boot`, `vm launch`): seconds since QEMU started, then what."""
    return f"  {t:7.2f}s  {text}" if t is not None else f"     ?     {text}"


def seconds(text: str) -> float:
    """An argparse type: a duration in seconds, 0 allowed (`--grace 0`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a time limit in seconds, more than 0 (`--timeout`)."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 must be more than 0 seconds")
    return value


def _number(text: str) -> int:
    """A whole number as Python writes one (``42``, ``0x2a``)."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _seed(text: str) -> int:
    value = _number(text)
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"{value} is not a 32-bit unsigned seed (0..4294967295)")
    return value


def seed_base(text: str) -> int:
    """An argparse type: ``--seed-base S``, any non-negative number (each boot's seed is derived from it)."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: the seed base is a non-negative number")
    return value


def whole_number(unit: str, example: str) -> Callable[[str], int]:
    """An argparse type: a whole number of ``unit`` (boots, vCPUs), at least 1; ``example`` shows one.

    ``unit`` is plural; the error for 0 names it in the singular ("needs at least 1 slot")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of {unit} (e.g. {example})") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{value}: needs at least 1 {unit.removesuffix('s')}")
        return value

    return parse


#: ``-n``, ``-j``, ``--max-boots``: boots.
count = whole_number("boots", "-n 10")


def fraction(text: str) -> float:
    """An argparse type: a share written ``0.9`` or ``90%`` (its range is the caller's: see :func:`rate`; a
    bisect's ``--confidence`` is checked where a library caller's is too, in ``lab.bisect.check_spec``)."""
    try:
        return float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give 0.9 or 90%") from None


def rate(text: str) -> float:
    """An argparse type: a pass rate or a width of one, in (0, 1] (``--target``, ``--width``, ``--margin``)."""
    value = fraction(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: a rate is between 0 and 1 (or 0% and 100%), e.g. 0.9")
    return value


@dataclass
class Resolved:
    """A profile resolved and preflighted for one boot (:func:`prepare`), with its project and host."""

    project: Project
    profile: Profile
    host: Host


def prepare(
    args: argparse.Namespace,
    *,
    runtime: RuntimeDir | None = None,
    force: bool = False,
    quiet: bool = False,
    observed: bool = True,
) -> tuple[Resolved, Invocation]:
    """Preflight (lock, profile, packs, fallback, argv, files, lint); print lint warnings; refuse lint errors
    unless --force. ``observed=False`` for `bootlab run`, which does not read the console."""
    from bootlab.lab.preflight import preflight
    from bootlab.profile.loader import load_project

    project = load_project(args.config)
    pf = preflight(
        project, args.profile, sets=args.sets, seed=getattr(args, "seed", None), runtime=runtime, observed=observed
    )
    if not quiet:
        pf.warn(sys.stderr)
    pf.refuse_on_errors(force)
    return Resolved(project=project, profile=pf.profile, host=pf.host), pf.invocation
