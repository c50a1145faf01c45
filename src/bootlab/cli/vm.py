"""`bootlab vm ...`: named, long-lived VMs (launch, list, console, exec, logs, stop, start, delete).

A thin layer over :mod:`bootlab.vm.manager`; the work happens in the VM's supervisor process. Exit codes:
``exec`` exits with the command's status (124 on --timeout, 1 with the verdict when the guest crashed);
``launch``/``start`` exit like ``bootlab boot`` (0 ready, 1 the boot failed, 3 QEMU/infra), 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bootlab.cli.common import add_config_arg, add_json_arg, add_set_arg, positive_seconds, seconds, stage_line


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("vm", help="named VMs in the background: launch, list, console, exec, logs, stop, delete")
    vsub = p.add_subparsers(dest="vm_command", metavar="VMCOMMAND", parser_class=type(p))

    def usage(_args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(func=usage)

    la = vsub.add_parser("launch", help="create a VM from a profile and boot it in the background")
    la.add_argument("name", metavar="NAME", help="the VM's name (lowercase letters, digits, '-')")
    la.add_argument("profile", metavar="PROFILE", help="a profile from bootlab.toml or a preset")
    add_config_arg(la)
    add_set_arg(la)
    la.add_argument(
        "--mount", dest="mounts", action="append", default=[], metavar="HOST_DIR:TAG", help="9p share; repeatable"
    )
    la.add_argument(
        "--forward",
        dest="forwards",
        action="append",
        default=[],
        metavar="HOST_PORT:GUEST_PORT",
        help="TCP port forward on 127.0.0.1 (user-mode networking), e.g. 2222:22; repeatable",
    )
    la.add_argument("--persistent", action="store_true", help="write to the profile's disk images (no overlay)")
    la.add_argument("--gdb", action="store_true", help="run QEMU's gdb stub on a private socket (see `vm gdb`)")
    la.add_argument("--no-wait", action="store_true", help="return at once; `bootlab vm list` shows progress")
    add_json_arg(la, "print the final state as JSON")
    la.set_defaults(func=cmd_launch)

    ls = vsub.add_parser("list", help="the VMs: state, profile, uptime, accel, forwards, pid")
    add_json_arg(ls, "print the VMs as JSON")
    ls.set_defaults(func=cmd_list)

    co = vsub.add_parser("console", help="attach this terminal to the VM's serial console (Ctrl-] detaches)")
    co.add_argument("name", metavar="NAME")
    co.set_defaults(func=cmd_console)

    ex = vsub.add_parser("exec", help="run a command in the guest's shell; exits with its status")
    ex.add_argument("name", metavar="NAME")
    ex.add_argument("--timeout", type=positive_seconds, metavar="S", help="interrupt it after S seconds (exit 124)")
    add_json_arg(ex, 'print {"stdout", "exit_code", "duration_s"}')
    # everything after NAME is taken as is; options given after NAME must end with `--` (see _exec_argv)
    ex.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    ex.set_defaults(func=cmd_exec)

    lo = vsub.add_parser("logs", help="print the VM's console log")
    lo.add_argument("name", metavar="NAME")
    lo.add_argument("-f", "--follow", action="store_true", help="keep printing as the guest writes")
    lo.set_defaults(func=cmd_logs)

    st = vsub.add_parser("stop", help="power the VM down (QMP system_powerdown, then quit after --grace)")
    st.add_argument("name", metavar="NAME")
    st.add_argument("--grace", type=seconds, default=10.0, metavar="S", help="seconds to wait for the guest")
    st.set_defaults(func=cmd_stop)

    sa = vsub.add_parser("start", help="boot a stopped VM again (same disk overlay)")
    sa.add_argument("name", metavar="NAME")
    sa.add_argument("--no-wait", action="store_true")
    add_json_arg(sa, "print the final state as JSON")
    sa.set_defaults(func=cmd_start)

    gd = vsub.add_parser("gdb", help="gdb on a VM's stub (a held crash, or launched with --gdb): run it or print how")
    gd.add_argument("name", metavar="NAME")
    gd.add_argument(
        "--backtrace", action="store_true", help="run gdb in batch mode: `bt` and `info registers`, then disconnect"
    )
    gd.add_argument("--gdb", dest="gdb_program", metavar="PROGRAM", help="the gdb to run (default: gdb-multiarch)")
    gd.add_argument("--print", dest="print_only", action="store_true", help="only print the command to attach")
    gd.set_defaults(func=cmd_gdb)

    de = vsub.add_parser("delete", help="stop the VM and remove it with its overlay and log")
    de.add_argument("name", metavar="NAME")
    de.set_defaults(func=cmd_delete)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _report(name: str, state: dict[str, Any], as_json: bool) -> int:
    """The boot timeline and where it ended; the exit code follows `bootlab boot`."""
    if as_json:
        print(json.dumps(state, indent=2))
    fb = state.get("fallback_from")
    if fb and not as_json:
        v = fb["verdict"]
        _err(f"first attempt ({fb['profile']}): {v.get('outcome')}" + (f": {v['title']}" if v.get("title") else ""))
    verdict = state.get("verdict") or {}
    if not as_json and not state.get("streamed"):
        for s in state.get("stages") or verdict.get("stages") or []:
            _err(stage_line(s["name"], s.get("t")))
    st = state.get("state")
    if st == "ready":
        if not as_json:
            _err(f"bootlab: vm {name} is ready ({state.get('profile')}, accel {state.get('accel')})")
        return 0
    if st == "booting":
        if not as_json:
            _err(f"bootlab: vm {name} is booting; `bootlab vm list` shows when it is ready")
        return 0
    outcome = verdict.get("outcome", "?")
    if not as_json:
        _err(f"bootlab: vm {name}: boot {outcome}" + (f": {verdict['title']}" if verdict.get("title") else ""))
        from bootlab.report.text import verdict_lines

        for line in verdict_lines(verdict, title=False):
            _err(line)
        _err(f"  the VM is stopped; its log: {state.get('log') or verdict.get('log')}")
    from bootlab.verdict import exit_code_of

    return exit_code_of(outcome)


def _print_stage(name: str, t: float | None) -> None:
    _err(stage_line(name, t))


def cmd_launch(args: argparse.Namespace) -> int:
    from bootlab.vm import manager
    from bootlab.vm.registry import validate_name

    validate_name(args.name)
    req = manager.LaunchRequest(
        name=args.name,
        profile=args.profile,
        config=args.config,
        sets=args.sets,
        mounts=args.mounts,
        forwards=args.forwards,
        persistent=args.persistent,
        gdb=args.gdb,
    )
    _err(f"bootlab: launching vm {args.name} from {args.profile}")
    state = manager.launch(
        req,
        wait=not args.no_wait,
        on_event=lambda text: _err(f"bootlab: *** {text} ***"),
        on_stage=None if args.json else _print_stage,
    )
    return _report(args.name, state, args.json)


def cmd_start(args: argparse.Namespace) -> int:
    from bootlab.vm import manager

    state = manager.start(args.name, wait=not args.no_wait, on_stage=None if args.json else _print_stage)
    return _report(args.name, state, args.json)


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def cmd_list(args: argparse.Namespace) -> int:
    from bootlab.vm import manager

    rows = manager.list_vms()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        _err("no VMs; create one with `bootlab vm launch NAME PROFILE`")
        return 0
    header = ("NAME", "PROFILE", "STATE", "UPTIME", "ACCEL", "FORWARDS", "PID")
    table = [
        (
            r["name"],
            r["profile"] or "-",
            r["state"]
            + (f" ({r['title']})" if r.get("title") and r["state"] in ("crashed", "held", "stopped") else ""),
            _uptime(r["uptime_s"]),
            r["accel"] or "-",
            ",".join(r["forwards"]) or "-",
            str(r["pid"] or "-"),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    for row in (header, *table):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for r in rows:
        if r["state"] == "died":
            _err(
                f"bootlab: vm {r['name']}: its supervisor died and QEMU with it (cleaned up); "
                f"`bootlab vm start {r['name']}` boots it again"
            )
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from bootlab.vm.attach import attach

    return attach(args.name)


def _exec_argv(args: argparse.Namespace) -> list[str]:
    """`vm exec dev -- ls -la` and `vm exec dev --timeout 5 --json -- ls`: bootlab's options may follow NAME
    when a `--` separates them from the command (argparse's REMAINDER would take them as the command)."""
    from bootlab.errors import UsageError

    argv = list(args.argv)
    if "--" not in argv:
        return argv
    i = argv.index("--")
    pre, cmd = argv[:i], argv[i + 1 :]
    while pre:
        opt = pre.pop(0)
        if opt == "--json":
            args.json = True
        elif opt == "--timeout" or opt.startswith("--timeout="):
            value = opt.partition("=")[2] if "=" in opt else (pre.pop(0) if pre else "")
            try:
                args.timeout = positive_seconds(value)
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"vm exec --timeout: {exc}") from None
        else:
            raise UsageError(f"vm exec: unknown option {opt!r} before `--` (options: --timeout S, --json)")
    return cmd


def cmd_exec(args: argparse.Namespace) -> int:
    from bootlab.vm import manager

    argv = _exec_argv(args)
    try:
        out = manager.exec_command(args.name, argv, timeout=args.timeout)
    except manager.GuestCrashed as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "verdict": exc.verdict}, indent=2))
        _err(f"bootlab: {exc}")
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "stdout": out.output.decode("utf-8", errors="replace"),
                    "exit_code": out.exit_code,
                    "duration_s": out.duration_s,
                }
            )
        )
    else:
        sys.stdout.buffer.write(out.output)
        sys.stdout.flush()
    if out.timed_out:
        _err(f"bootlab: vm exec: timed out after {args.timeout}s; the command was interrupted")
    return out.exit_code


def cmd_logs(args: argparse.Namespace) -> int:
    from bootlab.vm import manager

    try:
        for chunk in manager.follow_log(args.name, follow=args.follow):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from bootlab.vm import manager

    how = manager.stop(args.name, grace=args.grace)
    _err(f"bootlab: vm {args.name} stopped ({how})")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from bootlab.vm import manager

    manager.delete(args.name)
    _err(f"bootlab: vm {args.name} deleted")
    return 0


def cmd_gdb(args: argparse.Namespace) -> int:
    """Interactive gdb when it is installed and this is a terminal, else the command; ``--backtrace`` runs gdb in
    batch mode (which ends with ``disconnect``, so the guest stays as it is)."""
    import os
    import shutil
    import subprocess

    from bootlab.errors import InfraError
    from bootlab.vm import manager
    from bootlab.vm.hold import GDB

    target = manager.gdb_target(args.name)
    program = args.gdb_program or GDB
    gdb = shutil.which(program)
    if args.backtrace:
        if gdb is None:
            raise InfraError(
                f"{program} is not installed (Debian/Ubuntu: apt install gdb-multiarch; macOS: brew install gdb); "
                f"attach by hand with: {target.attach_command(program)}"
            )
        argv = target.gdb_argv(gdb, batch=("bt", "info registers"))
        was_running = manager.guest_running(args.name)  # gdb pauses a running guest as it attaches
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise InfraError(f"{program} did not finish within 120 s on vm {args.name}'s stub") from None
        finally:
            if was_running:
                manager.guest_running(args.name, resume=True)
        sys.stdout.write(done.stdout)
        if done.returncode != 0:
            _err(done.stderr.strip())
        return 0 if done.returncode == 0 else 3
    command = target.attach_command(program)
    if gdb is None or args.print_only or not sys.stdin.isatty():
        print(command)
        _err("bootlab: leave gdb with `disconnect`: `detach` and `quit` let the guest run on")
        return 0
    _err(f"bootlab: {command}")
    _err("bootlab: leave gdb with `disconnect`: `detach` and `quit` let the guest run on")
    sys.stderr.flush()
    os.execv(gdb, target.attach_argv(gdb))
