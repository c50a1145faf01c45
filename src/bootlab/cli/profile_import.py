"""`bootlab profiles import NAME`: a QEMU command line or run script -> a profile in bootlab.toml, proven exact.

    bootlab profiles import backup -- qemu-system-aarch64 -M virt -cpu cortex-a72 ...
    bootlab profiles import dev --script run-dev.sh --mode hvf [--env IMAGE=x.img] [-- MORE SCRIPT ARGS]

The command (or the one the script runs, see :mod:`bootlab.profile.script_reader`) becomes profile fields
(:mod:`bootlab.profile.importer`), written into bootlab.toml with the user's comments kept
(:mod:`bootlab.profile.toml_writer`). Then bootlab builds the profile's argv with its own builder against this
host's probe and compares it with the source, option by option (:mod:`bootlab.qemu.equivalence`); ``--lock``
locks the profile at once. Exit 0 when the import is exact (and locked, with ``--lock``), 1 when some option
differs (printed) or ``--lock`` could not lock an exact import, 2 on bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootlab.cli.common import add_config_arg, add_json_arg
from bootlab.cli.profiles import SubParser
from bootlab.errors import EXIT_GUEST_FAILED, EXIT_PASS, UsageError

if TYPE_CHECKING:
    from bootlab.host import Host
    from bootlab.profile.importer import Imported
    from bootlab.profile.model import Profile
    from bootlab.profile.script_reader import Reading
    from bootlab.qemu.equivalence import Comparison

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def import_parser() -> argparse.ArgumentParser:
    p = SubParser(
        prog="bootlab profiles import",
        usage="%(prog)s NAME [options] [-- qemu-system-ARCH ARGS... | --script FILE [-- SCRIPT ARGS...]]",
        description="write [profiles.NAME] into bootlab.toml from a QEMU command line (after --) or from the "
        "qemu-system command a sh script runs (--script), then compare its argv with the source, option by option: "
        "exit 0 when they match (and, with --lock, it is locked), 1 when something differs or --lock could not "
        "lock, 2 on bad input",
    )
    p.add_argument("name", metavar="NAME", help="the profile to write (letters, digits, '.', '_', '-')")
    p.add_argument("--script", type=Path, metavar="FILE", help="read the qemu-system command from this sh script")
    p.add_argument("--mode", metavar="MODE", help='the script\'s first argument (its case "$1" mode switch)')
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="as if set in the environment")
    add_config_arg(p, "project file (default: found from here, else ./bootlab.toml)")
    p.add_argument("--extends", metavar="PROFILE", help="write only what differs from this profile or preset")
    p.add_argument("--replace", action="store_true", help="replace an existing profile of that name")
    p.add_argument("--lock", action="store_true", help="lock the imported profile at once (bootlab lock)")
    p.add_argument("--snapshot", action="store_true", help="run images the source writes on a snapshot instead")
    add_json_arg(p, "print the comparison, what was kept and the notes as JSON")
    return p


@dataclasses.dataclass
class _Source:
    commands: list[list[str]]
    bases: list[Path]
    label: str  # "run-dev.sh line 26" or "the command line"
    via: list[str]
    reading: Reading | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def _env(pairs: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    for item in pairs:
        key, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UsageError(f"--env {item!r}: expected NAME=VALUE, e.g. --env IMAGE=build/x.img")
        env[key] = value
    return env


def _existing(argv: list[str], base: Path) -> int:
    """How many of the files a command names exist relative to ``base``."""
    from bootlab.qemu.parts import dissect

    count = 0
    for part in dissect(argv, base).parts:
        path = part.value.get("path") if isinstance(part.value.get("path"), str) else None
        raw = part.value.get("file") or ""
        if path and raw and not os.path.isabs(raw) and os.path.exists(path):
            count += 1
    return count


def _source(opts: argparse.Namespace, tail: list[str]) -> _Source:
    from bootlab.profile.script_reader import read_script, split_command_line

    if opts.script is None:
        if opts.mode is not None or opts.env:
            raise UsageError("--mode and --env are for --script; a command line is imported as given")
        argv = split_command_line(tail)
        if not argv:
            raise UsageError(
                "nothing to import: give a command line after -- (bootlab profiles import NAME -- "
                "qemu-system-ARCH ARGS...) or --script FILE"
            )
        return _Source([argv], [Path.cwd()], "the command line", [])
    try:
        text = opts.script.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--script {opts.script}: not a text file; give a sh script") from None
    except OSError as exc:
        raise UsageError(f"--script {opts.script}: cannot read: {exc.strerror}") from None
    args = ([opts.mode] if opts.mode is not None else []) + tail
    reading = read_script(text, str(opts.script), args=args, env=_env(opts.env), cwd=Path.cwd())
    notes: list[str] = []
    if reading.modes and opts.mode is None:
        notes.append(
            f"the script has modes ({', '.join(reading.modes)}; case on line {reading.mode_line}): imported what it "
            "runs with no argument; import another mode with --mode MODE"
        )
    elif opts.mode is not None and not reading.modes:
        notes.append(f'the script has no case "$1" mode switch: --mode {opts.mode} was only passed as $1')
    bases = [c.base for c in reading.commands]
    script_dir = opts.script.resolve().parent
    for i, cmd in enumerate(reading.commands):
        if cmd.base != script_dir and _existing(cmd.argv, script_dir) > _existing(cmd.argv, cmd.base):
            bases[i] = script_dir
            if i == 0:
                notes.append(f"relative paths read from the script's directory {script_dir}, where its files are")
    first = reading.commands[0]
    return _Source([c.argv for c in reading.commands], bases, f"{opts.script} line {first.line}", first.via,
                   reading, notes)  # fmt: skip


def _project_file(config: Path | None) -> Path:
    from bootlab.profile.loader import PROJECT_FILE, find_project_file

    if config is not None:
        return config
    return find_project_file() or Path.cwd() / PROJECT_FILE


def _header(source: _Source) -> list[str]:
    """The comment that opens the imported table: where it came from and the source command, wrapped."""
    from bootlab.qemu.invocation import option_groups

    lines = [f"Imported by `bootlab profiles import` from {source.label}:"]
    line = ""
    for group in option_groups(source.commands[0]):
        text = " ".join(shlex.quote(w) for w in group)
        if line and len(line) + len(text) > 100:
            lines.append(line)
            line = "  "
        line = f"{line} {text}" if line.strip() else f"  {text}"
    lines.append(line)
    lines += [f"  (via {choice})" for choice in source.via]
    return lines


def _host_view(profile: Profile, host: Host) -> tuple[Host, str]:
    """The host to build the argv against: the real probe, or one that has what the profile needs, said so."""
    from bootlab.host import QemuBinary

    arch = profile.arch
    view = host
    notes: list[str] = []
    if arch not in host.qemu:
        view = dataclasses.replace(view, qemu={**host.qemu, arch: QemuBinary(arch, f"qemu-system-{arch}", "?", [])})
        notes.append(f"qemu-system-{arch} is not installed here")
    if not any(a in host.accelerators.get(arch, []) for a in profile.accel):
        view = dataclasses.replace(view, accelerators={**view.accelerators, arch: list(profile.accel)})
        why = host.unavailable.get(arch, {})
        notes.append(", ".join(f"{a} is not usable here ({why.get(a, 'not supported')})" for a in profile.accel))
    note = f"{'; '.join(notes)}: compared as if it were (this host cannot boot the profile)" if notes else ""
    return view, note


def _compare(profile: Profile, host: Host, source: list[str], base: Path, root: Path) -> tuple[Comparison, Any, str]:
    from bootlab.qemu.equivalence import compare
    from bootlab.qemu.invocation import build_invocation

    view, note = _host_view(profile, host)
    inv = build_invocation(profile, view)
    binary = host.qemu.get(profile.arch)
    datadir = Path(os.path.realpath(binary.path)).parent.parent / "share" / "qemu" if binary else None
    comparison = compare(
        source, inv.argv, source_base=base, profile_base=root, usable=view.accelerators.get(profile.arch, []),
        firmware=lambda name, pflash: host.find_firmware(name, pflash=pflash), datadir=datadir,
    )  # fmt: skip
    return comparison, inv, note


def _print_rows(comparison: Comparison, *, only_differences: bool = False) -> None:
    """One row per option: status and the source's spelling; the profile's on a second line when it differs."""
    for r in comparison.rows:
        if only_differences and r.status != "differs":
            continue
        note = f"   ({r.note})" if r.note else ""
        if r.profile == r.source:
            print(f"  {r.status:<9} {r.source}{note}")
        else:
            print(f"  {r.status:<9} {r.source or '(not given)'}")
            print(f"  {'':<9} -> {r.profile or '(not in the profile)'}{note}")
    if comparison.order:
        print(f"  warning   {comparison.order}")


def run_import(args: argparse.Namespace) -> int:
    from bootlab.host import probe
    from bootlab.profile.importer import import_commands
    from bootlab.profile.loader import load_project, resolve_profile
    from bootlab.profile.lock import read_locks, write_lock
    from bootlab.profile.toml_writer import add_profile

    rest = list(args.rest)
    head, tail = (rest[: rest.index("--")], rest[rest.index("--") + 1 :]) if "--" in rest else (rest, [])
    opts = import_parser().parse_args(head)
    opts.config = opts.config or args.config
    opts.json = opts.json or args.json
    if args.sets:
        raise UsageError("--set applies to an existing profile; edit the imported profile instead")
    if not _NAME.fullmatch(opts.name):
        raise UsageError(f"profile name {opts.name!r}: use letters, digits, '.', '_' and '-' (e.g. backup)")
    path = _project_file(opts.config)
    text = None
    if path.exists():
        project = load_project(path)  # a broken project file is reported before anything is written
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
        if opts.name in project.profiles and not opts.replace:
            raise UsageError(f"{path}: profile {opts.name} already exists; choose another name or pass --replace")
        if opts.name in read_locks(project) and not opts.lock:
            raise UsageError(
                f"profile {opts.name} is locked in {project.root / 'bootlab.lock'}; replacing it changes a locked "
                "profile: add --lock to relock the imported one"
            )
    root = path.resolve().parent
    source = _source(opts, tail)
    host = probe()
    imported = import_commands(source.commands, base=source.bases, root=root, host=host, snapshot=opts.snapshot)
    if imported.branches:
        source.via = []  # one profile for every branch: no single path through the script
    if opts.extends:
        from bootlab.profile.importer import extending
        from bootlab.profile.loader import Project, raw_profile

        here = load_project(path) if path.exists() else Project(path=path, root=root)
        extending(imported, opts.extends, raw_profile(here, opts.extends))
    new_text = add_profile(text, str(path), opts.name, imported, _header(source), replace=opts.replace)
    _write(path, new_text)
    try:
        project = load_project(path)
        profile = resolve_profile(opts.name, project=project, seed=0, keep_builtins=True)
    except UsageError as exc:
        _restore(path, text)
        raise UsageError(f"the imported profile does not load ({exc}); {path} is left as it was") from None
    results = []
    branches = imported.branches or {"": source.commands[0]}
    for i, (accel, argv) in enumerate(branches.items()):
        prof = profile.model_copy(update={"accel": [accel]}) if accel else profile
        comparison, inv, note = _compare(prof, host, argv, source.bases[i], root)
        results.append((accel, comparison, inv, note))
    chosen = _chosen(results, profile, host)
    exact = all(c.exact for _, c, _, _ in results)
    locked = False
    lock_note = ""
    if opts.lock:
        _, _, inv, note = results[chosen]
        if not exact:
            lock_note = "not locked: the import is not exact (see above); fix the profile, then `bootlab lock NAME`"
        elif note:
            lock_note = "not locked: this host cannot build the profile's argv; lock it on the host that runs it"
        else:
            canonical = _canonical(profile, host)
            write_lock(project, opts.name, canonical.argv, canonical.sha256)
            locked = True
    if opts.json:
        print(json.dumps(_json(opts.name, path, source, imported, results, exact, locked, lock_note), indent=2))
    else:
        _report(opts.name, path, source, imported, results, chosen, exact, locked, lock_note)
    return EXIT_PASS if exact and not lock_note else EXIT_GUEST_FAILED


def _chosen(results: list[tuple[str, Comparison, Any, str]], profile: Profile, host: Host) -> int:
    """The branch this host takes (the first usable accelerator), else the first."""
    usable = host.accelerators.get(profile.arch, [])
    return next((i for i, (accel, _, _, _) in enumerate(results) if accel in usable), 0)


def _canonical(profile: Profile, host: Host) -> Any:
    from bootlab.qemu.invocation import build_invocation

    return build_invocation(profile, host)


def _write(path: Path, text: str) -> None:
    from bootlab.paths import atomic_write

    try:
        atomic_write(path, text)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None


def _restore(path: Path, text: str | None) -> None:
    if text is None:
        path.unlink(missing_ok=True)
    else:
        _write(path, text)


def _report(
    name: str, path: Path, source: _Source, imported: Imported, results: list[tuple[str, Comparison, Any, str]],
    chosen: int, exact: bool, locked: bool, lock_note: str,
) -> None:  # fmt: skip
    print(f"imported profile {name} into {path} from {source.label}")
    for choice in source.via:
        print(f"  via {choice}")
    for note in [*source.notes, *imported.notes]:
        print(f"  {note}")
    if imported.kept:
        print("kept in extra_args (no profile field):")
        for text in imported.kept:
            print(f"  {text}")
    reading = source.reading
    if reading is not None:
        if reading.unfollowed:
            print("could not follow:")
            for n in reading.unfollowed:
                print(f"  {n}")
        if reading.not_run:
            print("not run (the profile does not do these):")
            for n in reading.not_run:
                print(f"  {n}")
        for var in reading.from_env:
            print(f"  ${var} taken from the environment")
        for var in reading.unset:
            print(f"  ${var} is not set: empty, as sh would leave it")
    accel, comparison, inv, note = results[chosen]
    title = f" (its {accel} branch)" if accel else ""
    print(f"source{title} vs the profile's argv, option by option:")
    if note:
        print(f"  note      {note}")
    _print_rows(comparison)
    for i, (other, comp, _, other_note) in enumerate(results):
        if i == chosen:
            continue
        verdict = "exact" if comp.exact else f"{comp.count('differs')} option(s) differ"
        print(
            f"its {other} branch vs the profile under {other}: {verdict}" + (f" ({other_note})" if other_note else "")
        )
        _print_rows(comp, only_differences=True)
    if exact:
        counts = ", ".join(f"{comparison.count(s)} {s}" for s in ("same", "equal", "replaced"))
        print(f"exact: {counts} (equal: same meaning, other spelling); argv sha256 {inv.sha256[:16]}")
    else:
        differs = sum(c.count("differs") for _, c, _, _ in results)
        print(f"NOT exact: {differs} option(s) differ (above); edit profiles.{name} in {path}")
    if locked:
        print(f"locked {name} in {path.resolve().parent / 'bootlab.lock'} (sha256 {inv.sha256[:16]})")
    if lock_note:
        print(lock_note, file=sys.stderr)


def _json(
    name: str, path: Path, source: _Source, imported: Imported, results: list[tuple[str, Comparison, Any, str]],
    exact: bool, locked: bool, lock_note: str,
) -> dict[str, Any]:  # fmt: skip
    reading = source.reading
    return {
        "profile": name,
        "file": str(path),
        "source": {"label": source.label, "argv": source.commands[0], "via": source.via},
        "table": imported.table,
        "kept": imported.kept,
        "replaced": [{"option": o, "why": w} for o, w in imported.replaced],
        "notes": [*source.notes, *imported.notes],
        "unfollowed": [str(n) for n in reading.unfollowed] if reading else [],
        "not_run": [str(n) for n in reading.not_run] if reading else [],
        "comparisons": [
            {"accel": accel or None, "argv": inv.argv, "note": note or None, **comp.to_dict()}
            for accel, comp, inv, note in results
        ],
        "exact": exact,
        "locked": locked,
        "lock_note": lock_note or None,
    }
