"""`bootlab boot PROFILE`: one observed boot, a short timeline and the verdict.

Exit codes are the scripting contract: 0 pass, 1 the guest failed (crash, hang, timeout, login-failed, check-failed),
3 bootlab or QEMU could not run the boot (qemu-error, infra-error), 2 bad input. The timeline (stages, then each
check as it ends) goes to stderr as it happens (so ``--json`` output on stdout stays clean) and the verdict to
stdout.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bootlab.cli.common import add_check_args, add_json_arg, add_profile_args, positive_seconds

if TYPE_CHECKING:
    from bootlab.cli.common import Resolved
    from bootlab.profile.model import Profile
    from bootlab.qemu.invocation import Invocation
    from bootlab.verdict import Verdict
    from bootlab.vm.hold import GdbTarget


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("boot", help="boot a profile once, observed: timeline and verdict (pass/crash/hang/...)")
    add_profile_args(p)
    add_check_args(p)
    p.add_argument("--timeout", type=positive_seconds, metavar="S", help="overall limit (default: the profile's)")
    p.add_argument("--quiet-timeout", type=positive_seconds, metavar="S", help="silence that counts as a hang")
    p.add_argument("--log", type=str, metavar="FILE", help="write the raw console log here")
    add_json_arg(p, "print the verdict as JSON")
    p.add_argument("--force", action="store_true", help="boot even when lint reports errors")
    p.add_argument("--no-store", action="store_true", help="do not record this boot in the results store")
    p.add_argument(
        "--fallback",
        action="store_true",
        help="on crash or hang, boot once more under the profile's `fallback` (both verdicts kept)",
    )
    p.add_argument(
        "--hold-on-crash",
        action="store_true",
        help="on crash or hang, keep the VM paused as a named VM with a gdb stub, and print how to attach",
    )
    p.add_argument("--name", metavar="NAME", help="with --hold-on-crash: the held VM's name (default: PROFILE-N)")
    p.set_defaults(func=run_boot)


def run_boot(args: argparse.Namespace) -> int:
    import json
    import sys

    from bootlab.cli.common import prepare
    from bootlab.errors import UsageError
    from bootlab.lab.fallback import Attempt, boot_with_fallback

    if args.name is not None and not args.hold_on_crash:
        raise UsageError("--name names a held VM: it goes with --hold-on-crash")
    if args.hold_on_crash and args.fallback:
        raise UsageError("--hold-on-crash keeps the crash, --fallback boots past it: give one of them")
    if args.name is not None:
        from bootlab.vm.registry import validate_name

        validate_name(args.name)

    if args.timeout is not None:
        args.sets = [*args.sets, f"timeout={args.timeout}"]
    if args.quiet_timeout is not None:
        args.sets = [*args.sets, f"quiet_timeout={args.quiet_timeout}"]
    res, inv = prepare(args, force=args.force, quiet=False)
    prepared: dict[str, tuple[Resolved, Invocation]] = {res.profile.name: (res, inv)}
    holds: dict[int, dict[str, object]] = {}

    def boot_one(profile: Profile) -> Verdict:
        first = len(prepared) == 1
        r, i = prepared[profile.name]
        log = args.log if first or not args.log else f"{args.log}.fallback"
        verdict, held = _observed_boot(args, r, i, log)
        if not args.json:
            _show(args, verdict)
            if held is not None:
                from bootlab.vm.hold import held_lines

                for line in held_lines(held, verdict):
                    print(line, flush=True)
        elif held is not None:
            holds[id(verdict)] = held.to_json()
        return verdict

    def resolve_fallback(name: str) -> Profile:
        # the fallback boots with the same --set overrides and the same seed, so the two attempts are comparable
        fb_args = argparse.Namespace(**{**vars(args), "profile": name, "seed": res.profile.seed})
        fb_res, fb_inv = prepare(fb_args, force=args.force, quiet=False)
        prepared[fb_res.profile.name] = (fb_res, fb_inv)
        return fb_res.profile

    def announce(text: str) -> None:
        print(f"bootlab: *** {text} ***", file=sys.stderr, flush=True)

    if args.fallback:
        attempts = boot_with_fallback(res.profile, boot_one, resolve_fallback, announce)
    else:
        attempts = [Attempt(res.profile, boot_one(res.profile))]
    last = attempts[-1].verdict
    if args.json:
        data = last.model_dump(mode="json")
        if len(attempts) > 1:
            data["fallback_from"] = {"profile": attempts[0].profile.name, **attempts[0].verdict.model_dump(mode="json")}
        if args.hold_on_crash:
            data["held"] = holds.get(id(last))
        print(json.dumps(data, indent=2))
    return last.exit_code()


def _observed_boot(
    args: argparse.Namespace, res: Resolved, inv: Invocation, log: str | None
) -> tuple[Verdict, GdbTarget | None]:
    """One observed boot with the live timeline on stderr, stored unless --no-store; with --hold-on-crash it
    runs in a one-shot VM supervisor (:mod:`bootlab.vm.hold`), which keeps a crash or hang as a held VM."""
    import sys
    from pathlib import Path

    from bootlab.cli.common import stage_line
    from bootlab.lab.boot import BootOptions, boot

    profile = res.profile
    err = sys.stderr

    def on_event(kind: str, text: str, t: float) -> None:
        if kind == "stage":
            print(stage_line(text, t), file=err, flush=True)
        elif kind == "fatal":
            print(stage_line(f"FATAL  {text}", t), file=err, flush=True)
        elif kind == "send":
            print(stage_line(f"(answered {text})", t), file=err, flush=True)
        elif kind == "check":
            print(stage_line(f"check {text}", t), file=err, flush=True)

    print(f"bootlab: booting {profile.name} ({inv.accel_reason}; seed {profile.seed})", file=err, flush=True)
    held = None
    if args.hold_on_crash:
        from bootlab.lab.boot import default_log_path
        from bootlab.vm.hold import boot_held, hold_crashes

        log_path = Path(log) if log else default_log_path(profile)
        done = boot_held(
            profile,
            log_path=log_path,
            project_dir=res.project.root,
            hold=hold_crashes,
            name=args.name,
            on_event=on_event,
        )
        verdict, held = done.verdict, done.held
    else:
        opts = BootOptions(log_path=Path(log) if log else None, project_dir=res.project.root, on_event=on_event)
        verdict = boot(profile, host=res.host, options=opts)
    if not args.no_store:
        from bootlab.store import record_boot

        ref = record_boot(verdict, profile, res.host, project=res.project, sets=list(args.sets))
        print(f"bootlab: stored as {ref} (bootlab show {ref})", file=err, flush=True)
    return verdict, held


def _show(args: argparse.Namespace, verdict: Verdict) -> None:
    if args.json:
        print(verdict.model_dump_json(indent=2))
        return
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True)
    style = {
        "pass": "bold green",
        "crash": "bold red",
        "login-failed": "bold red",
        "hang": "bold yellow",
        "timeout": "bold yellow",
        "check-failed": "bold red",
    }.get(verdict.outcome, "bold magenta")
    dur = f"{verdict.duration_s:.2f}s" if verdict.duration_s is not None else "?"
    out.print(f"[{style}]{verdict.outcome}[/] at stage [bold]{verdict.stage or '-'}[/] after {dur}")
    from bootlab.report.text import verdict_lines

    for line in verdict_lines(verdict.model_dump(mode="json")):
        out.print(line, markup=False)
    out.print(f"  log: {verdict.log}", markup=False)
