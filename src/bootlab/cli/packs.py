"""`bootlab packs`: the OS packs a project can use, a new pack to start from, and a pack tried on saved logs.

- ``bootlab packs`` lists the packs found (project ``packs/`` first, then the shipped ones) with what each is.
- ``bootlab packs new NAME [--extends BASE]`` writes ``packs/NAME.toml`` beside the project file: every field, each
  with a comment, ready to be filled in.
- ``bootlab packs check FILE [LOG...]`` validates a pack file (every problem at once), warns about what is valid
  but probably not meant, and reads each saved console log with it as a live boot would: stages (with their times
  when bootlab's ``.times`` index is beside the log), what would have been answered, the signatures that fired,
  the verdict, and, for a log that ends before a verdict, its last lines and the prompt it stopped on. Exit 0 when
  every log passed (or none was given), 1 when one did not, 2 for a bad pack or bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootlab.cli.common import add_config_arg, add_json_arg, add_set_arg, project_dir

if TYPE_CHECKING:
    from bootlab.console.classify import Checked
    from bootlab.packs.loader import PackSet


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("packs", help="list OS packs, start a new one, try one on saved console logs")
    add_config_arg(p, "project file whose packs/ directory to use")
    add_json_arg(p, "JSON output")
    p.set_defaults(func=list_packs)
    actions = p.add_subparsers(dest="action", metavar="ACTION")

    new = actions.add_parser("new", help="write packs/NAME.toml: every field, commented, to fill in")
    new.add_argument("name", metavar="NAME", help="the pack's name (letters, digits, '.', '_', '-')")
    new.add_argument("--extends", metavar="BASE", help="add to an existing pack (e.g. linux) instead of a new OS")
    new.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to write (default: packs/NAME.toml)")
    add_config_arg(new, "project file beside whose packs/ to write")
    new.add_argument("--force", action="store_true", help="replace an existing file")
    new.set_defaults(func=new_pack)

    check = actions.add_parser("check", help="validate a pack file and read saved console logs with it")
    check.add_argument("file", type=Path, metavar="FILE", help="the pack file (packs/NAME.toml)")
    check.add_argument("logs", nargs="*", type=Path, metavar="LOG", help="console logs (bootlab's --log files)")
    check.add_argument(
        "--with",
        dest="with_packs",
        default="",
        metavar="PACKS",
        help="packs read before this one, firmware first (e.g. edk2), as in a profile's pack list",
    )
    add_set_arg(
        check,
        "a profile var (vars.password=... makes the log a verified login: ready at the shell); repeatable",
        metavar="vars.NAME=VALUE",
    )
    add_config_arg(check, "project file whose packs/ directory to search")
    add_json_arg(check, "JSON: the pack, its warnings and each log's result")
    check.set_defaults(func=check_pack)


def list_packs(args: argparse.Namespace) -> int:
    import json
    import tomllib

    from bootlab.packs.loader import SHIPPED_DIR, search_path

    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for d in search_path(project_dir(args.config)):
        for path in sorted(d.glob("*.toml")) if d.is_dir() else []:
            if path.stem in seen:
                continue
            seen.add(path.stem)
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                data = {}
            rows.append(
                {
                    "name": path.stem,
                    "where": "shipped" if d == SHIPPED_DIR else "project",
                    "extends": data.get("extends"),
                    "description": data.get("description", "(not readable: `bootlab packs check` says why)"),
                    "file": str(path),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        ext = f" (extends {r['extends']})" if r["extends"] else ""
        print(f"{r['name']:<12} {r['where']:<8} {r['description']}{ext}")
    return 0


def new_pack(args: argparse.Namespace) -> int:
    import re
    from importlib import resources

    from bootlab.errors import UsageError

    name = args.name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UsageError(f"pack name {name!r} is not valid; use letters, digits, '.', '_' or '-'")
    if args.extends:
        from bootlab.packs.loader import check_pack_names

        check_pack_names([args.extends], project_dir(args.config))
    out = args.output if args.output is not None else project_dir(args.config) / "packs" / f"{name}.toml"
    if out.stem != name:
        raise UsageError(f"a pack file is named after its pack: {name}.toml, not {out.name}; fix -o")
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; edit it, or give --force to replace it")
    template = "pack-extends-template.toml" if args.extends else "pack-template.toml"
    text = (resources.files("bootlab.data") / template).read_text(encoding="utf-8")
    text = text.replace("@NAME@", name).replace("@BASE@", args.extends or "")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}: fill in the regexes, then `bootlab packs check {out} LOG...` on a saved console log")
    return 0


def check_pack(args: argparse.Namespace) -> int:
    import json

    from bootlab.console.classify import check_log
    from bootlab.console.observer import wants_shell
    from bootlab.errors import UsageError
    from bootlab.packs.loader import load_pack_file, pack_warnings

    variables: dict[str, str] = {}
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("vars.") or len(key) <= len("vars."):
            raise UsageError(f"--set {item!r}: packs check takes profile vars only, as vars.NAME=VALUE")
        variables[key.removeprefix("vars.")] = value
    before = [n.strip() for n in args.with_packs.split(",") if n.strip()]
    project = project_dir(args.config)
    packs = load_pack_file(args.file, project, before)
    warnings = pack_warnings(packs)
    shell = wants_shell(packs, variables) if variables else False
    results = [check_log(log, packs, wait_for_shell=shell, variables=variables) for log in args.logs]
    worst = max((r.verdict.exit_code() for r in results), default=0)
    if args.json:
        print(
            json.dumps(
                {"pack": _summary(packs), "warnings": warnings, "logs": [_log_json(r) for r in results]}, indent=2
            )
        )
        return worst
    _print_summary(args.file, packs, warnings)
    for r in results:
        _print_log(r, ready_at="the shell" if shell else "the login or shell prompt")
    return worst


def _summary(packs: PackSet) -> dict[str, Any]:
    return {
        "packs": list(packs.names),
        "milestones": [m.spec.name for m in packs.milestones],
        "ready": {"login": [p.regex.pattern for p in packs.login], "shell": [p.regex.pattern for p in packs.shell]},
        "login_failed": [p.regex.pattern for p in packs.login_failed],
        "signatures": [
            {"id": s.spec.id, "pack": s.pack, "kind": s.spec.kind, "fatal": s.spec.fatal} for s in packs.signatures
        ],
        "interactions": [{"id": i.spec.id, "send": i.spec.send, "max": i.spec.max} for i in packs.interactions],
        "prompts": [p.pattern for p in packs.prompts],
        "vars": packs.vars,
    }


def _print_summary(path: Path, packs: PackSet, warnings: list[str]) -> None:
    s = _summary(packs)
    fatal = sum(1 for x in s["signatures"] if x["fatal"])
    print(f"{path}: valid ({' + '.join(packs.names)})")
    print(f"  milestones: {' > '.join(s['milestones']) or '(none)'}")
    ready = [f"login {p!r}" for p in s["ready"]["login"]] + [f"shell {p!r}" for p in s["ready"]["shell"]]
    print(f"  ready: {', '.join(ready) or '(none)'}")
    print(f"  signatures: {len(s['signatures'])} ({fatal} fatal), interactions: {len(s['interactions'])}")
    for w in warnings:
        print(f"  warning: {w}")


def _print_log(r: Checked, *, ready_at: str) -> None:
    v = r.verdict

    def at(t: float | None) -> str:
        return f"{t:8.2f}s" if r.timed and t is not None else "       - "

    print(f"\n{v.log}: {v.outcome}" + (f"  {v.title}" if v.title else ""))
    if not r.timed:
        print("  (no .times index beside the log: times unknown)")
    for st in v.stages:
        print(f"  {at(st.t)}  stage {st.name}")
    for a in r.sent:
        print(f"  {at(a.t)}  would answer {a.interaction}: {a.send!r}")
    for inc in v.incidents:
        print(f"  {at(inc.t)}  incident [{inc.kind}] {inc.title}")
        print(f"             line: {inc.line}")
    if v.fatal_line:
        print(f"  {at(v.fatal_t)}  fatal: {v.title}")
        print(f"             line: {v.fatal_line}")
    if v.death:
        print(f"  {at(v.death.t)}  died of: {v.death.title}")
    if v.outcome == "incomplete":
        print(f"  the log ends before a verdict (ready is {ready_at}); its last lines:")
        for line in r.last_lines:
            print(f"    | {line}")
        if r.prompt:
            print(f'  a live boot stopping here would be a hang titled: stopped at prompt "{r.prompt}"')


def _log_json(r: Checked) -> dict[str, Any]:
    fields = ("outcome", "stage", "stages", "title", "fatal_line", "fatal_t", "incidents", "death")
    return {
        "file": r.verdict.log,
        **r.verdict.model_dump(mode="json", include=set(fields)),
        "timed": r.timed,
        "sent": [{"interaction": a.interaction, "send": a.send, "t": a.t} for a in r.sent],
        "last_lines": r.last_lines,
        "prompt": r.prompt,
    }
