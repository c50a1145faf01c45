"""`bootlab run PROFILE`: a foreground boot with the console on this terminal, as a run script would do it.

Ctrl-A X quits (QEMU's own stdio mux); the exit code is QEMU's. QEMU dies with bootlab, also when bootlab is
SIGKILLed: it runs in its own session with a parent-death signal. For the interactive case that signal is
SIGTERM, so QEMU still restores the terminal from raw mode on its way out.
"""

from __future__ import annotations

import argparse
import signal
import sys

from bootlab.cli.common import add_profile_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="boot a profile in the foreground, console on this terminal (Ctrl-A X quits)")
    add_profile_args(p)
    p.add_argument("--force", action="store_true", help="boot even when lint reports errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bootlab.cli.common import prepare
    from bootlab.qemu.process import QemuProcess, exit_status

    res, inv = prepare(args, force=args.force, observed=False)
    print(
        f"bootlab: {res.profile.name}: {inv.accel_reason}; seed {res.profile.seed}; Ctrl-A X quits",
        file=sys.stderr,
    )
    sys.stderr.flush()
    proc = QemuProcess(inv.argv, stdin=None, stdout=None, death_signal=signal.SIGTERM)

    def forward(signum: int, _frame: object) -> None:
        proc.terminate()
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    with proc:
        try:
            return exit_status(proc.wait())
        except KeyboardInterrupt:
            proc.terminate()
            return 130
