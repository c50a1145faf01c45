"""`bootlab boot PROFILE`: one observed boot, a short timeline and the verdict.

Exit codes are the scripting contract: 0 pass, 1 the guest failed (crash, hang, timeout), 3 bootlab or QEMU
could not run the boot (qemu-error, infra-error), 2 bad input. The timeline goes to stderr as it happens (so
``--json`` output on stdout stays clean) and the verdict to stdout.
"""

from __future__ import annotations

import argparse

from bootlab.cli.common import add_profile_args


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be more than 0 seconds")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("boot", help="boot a profile once, observed: timeline and verdict (pass/crash/hang/...)")
    add_profile_args(p)
    p.add_argument("--timeout", type=_seconds, metavar="S", help="overall limit (default: the profile's)")
    p.add_argument("--quiet-timeout", type=_seconds, metavar="S", help="silence that counts as a hang")
    p.add_argument("--log", type=str, metavar="FILE", help="write the raw console log here")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument("--force", action="store_true", help="boot even when lint reports errors")
    p.add_argument("--no-store", action="store_true", help="do not record this boot in the results store")
    p.set_defaults(func=run_boot)


def run_boot(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from bootlab.cli.common import prepare
    from bootlab.lab.boot import BootOptions, boot

    if args.timeout is not None:
        args.sets = [*args.sets, f"timeout={args.timeout}"]
    if args.quiet_timeout is not None:
        args.sets = [*args.sets, f"quiet_timeout={args.quiet_timeout}"]
    res, inv = prepare(args, force=args.force, quiet=False)
    profile = res.profile
    err = sys.stderr

    def on_event(kind: str, text: str, t: float) -> None:
        if kind == "stage":
            print(f"  {t:7.2f}s  {text}", file=err, flush=True)
        elif kind == "fatal":
            print(f"  {t:7.2f}s  FATAL  {text}", file=err, flush=True)
        elif kind == "send":
            print(f"  {t:7.2f}s  (answered {text})", file=err, flush=True)

    print(f"bootlab: booting {profile.name} ({inv.accel_reason}; seed {profile.seed})", file=err, flush=True)
    opts = BootOptions(
        log_path=Path(args.log) if args.log else None,
        project_dir=res.project.root,
        on_event=on_event,
    )
    verdict = boot(profile, host=res.host, options=opts)
    if not args.no_store:
        from bootlab.store import record_boot

        ref = record_boot(verdict, profile, res.host, project=res.project)
        print(f"bootlab: stored as {ref} (bootlab show {ref})", file=err, flush=True)
    if args.json:
        print(verdict.model_dump_json(indent=2))
        return verdict.exit_code()
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True)
    style = {"pass": "bold green", "crash": "bold red", "hang": "bold yellow", "timeout": "bold yellow"}.get(
        verdict.outcome, "bold magenta"
    )
    dur = f"{verdict.duration_s:.2f}s" if verdict.duration_s is not None else "?"
    out.print(f"[{style}]{verdict.outcome}[/] at stage [bold]{verdict.stage or '-'}[/] after {dur}")
    if verdict.title:
        out.print(f"  title: {verdict.title}", markup=False)
    if verdict.fatal_line:
        t = f" (t={verdict.fatal_t:.2f}s)" if verdict.fatal_t is not None else ""
        out.print(f"  fatal line{t}: {verdict.fatal_line}", markup=False)
    for inc in verdict.incidents:
        out.print(f"  incident [{inc.kind}] {inc.title}", markup=False)
    for r in verdict.registers:
        sym = "  ".join(f"{k}={v}" for k, v in r.symbols.items())
        out.print(f"  cpu{r.cpu}: pc={r.pc} sp={r.sp} lr={r.lr} {sym}".rstrip(), markup=False)
    out.print(f"  log: {verdict.log}", markup=False)
    return verdict.exit_code()
