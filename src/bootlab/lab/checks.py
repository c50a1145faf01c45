"""Checks after boot: the profile's ``checks``, run in the guest's shell once the boot is ready, so that a trial,
comparison or bisect measures "boots and works", not only "boots".

Each check runs in order through a :class:`~bootlab.console.session.ShellSession` (exact framing, exit status,
timeouts that Ctrl-C the command and resynchronise the shell) while the boot loop keeps watching the console: a
guest that crashes during a check has crashed, and the boot's verdict is that crash. Every check's text is staged
into a guest file and run with ``sh FILE`` (see :mod:`bootlab.console.shell`): nothing of it is typed in clear,
so its echo cannot look like a failure to the observer, and a command or script of any length runs the same way.

What fails a check: a non-zero exit status, outliving its timeout, output without its ``expect`` text, or a shell
that stops answering. The first failed check titles the boot (``check NAME failed (exit N)``); later checks still
run (each result is reported), unless the shell is gone.

When bootlab cannot run a check, no check fails: the boot is ``infra-error`` (left out of a trial's rates, exit 3).
That is a guest whose shell is not a POSIX sh (it answers bootlab's framing in its own way: Redox's ion), titled
``checks need a POSIX sh: the guest answered ...`` (``vm exec`` on such a guest exits 3 too), and a script that
could not be read where the boot ran (see :func:`_not_run`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bootlab.console.shell import CommandTooLong, ExecAborted, ExecOutcome, NotPosixShell, ShellError
from bootlab.verdict import CHECK_OUTPUT_CAP, CheckResult

if TYPE_CHECKING:
    from bootlab.console.loop import EventHook
    from bootlab.console.session import ShellSession
    from bootlab.profile.model import Check, Profile


@dataclass
class ChecksRun:
    """What running a profile's checks came to: each check's result, the title of the first failure (None: all
    passed), whether the watch ended while they ran (the guest crashed, or QEMU exited), and why bootlab could
    not run one (``cannot_run``: the guest has no POSIX sh, a script could not be read; the boot is then an
    infra-error)."""

    results: list[CheckResult] = field(default_factory=list)
    title: str | None = None
    interrupted_by: str | None = None  # the check running when the watch ended
    cannot_run: str | None = None

    @property
    def failed(self) -> bool:
        return self.title is not None


def capped(output: bytes, cap: int = CHECK_OUTPUT_CAP) -> str:
    """``output`` as text, at most ``cap`` bytes of it: the first quarter and the last three quarters (where an
    error usually is) with a line saying how much was cut between them."""
    if len(output) <= cap:
        return output.decode(errors="replace")
    head, tail = output[: cap // 4], output[len(output) - (cap - cap // 4) :]
    cut = len(output) - len(head) - len(tail)
    return f"{head.decode(errors='replace')}\n[... {cut} bytes cut by bootlab ...]\n{tail.decode(errors='replace')}"


def _seconds(value: float) -> str:
    return f"{value:g}s"


def judge(check: Check, out: ExecOutcome) -> tuple[str, str | None, str | None]:
    """(status, reason, title) of a finished check."""
    if out.timed_out:
        why = f"timed out after {_seconds(check.timeout)}"
        return "timeout", f"{why} (interrupted with Ctrl-C)", f"check {check.name} {why}"
    if out.exit_code != 0:
        return "fail", f"exit {out.exit_code}", f"check {check.name} failed (exit {out.exit_code})"
    if check.expect is not None and check.expect.encode() not in out.output:
        why = f"output lacks {check.expect!r}"
        return "fail", why, f"check {check.name} failed ({why})"
    return "pass", None, None


async def run_checks(session: ShellSession, profile: Profile, on_event: EventHook | None = None) -> ChecksRun:
    """Run ``profile.checks`` in order; ``on_event`` gets ("check", "NAME: pass (0.41s)", t) as each ends."""
    run = ChecksRun()
    clock = session.hub
    gone: str | None = None  # why later checks are not run
    for check in profile.checks:
        base = CheckResult(
            name=check.name, command=check.text(), expect=check.expect, t=round(clock.now(), 3), status="skipped"
        )
        if gone is not None:
            run.results.append(base.model_copy(update={"reason": gone}))
            continue
        started = time.monotonic()
        try:
            if check.script is not None:
                out = await session.run_script(check.script_bytes(), check.timeout)
            else:
                assert check.command is not None
                out = await session.run(check.command, check.timeout, stage=True)
        except ExecAborted:  # the watch ended: a crash (or QEMU's exit) decides the boot, not this check
            run.interrupted_by = check.name
            why = "the guest crashed (or QEMU exited) while it ran"
            run.results.append(base.model_copy(update={"status": "crash", "reason": why, **_took(started)}))
            gone = f"the guest crashed during check {check.name}"
            continue
        except NotPosixShell as exc:  # not the guest failing: bootlab cannot run checks in this shell
            answered = f"answered {exc.answer!r}" if exc.answer else "answered bootlab's framing in its own way"
            run.cannot_run = f"checks need a POSIX sh: the guest {answered}"
            run.results.append(base.model_copy(update={"reason": str(exc), **_took(started)}))
            gone = "the guest has no POSIX sh"
            _event(on_event, f"{check.name}: not run, {run.cannot_run}", clock.now())
            continue
        except (OSError, CommandTooLong) as exc:  # the host's script, read where no preflight had (see below)
            why = _not_run(exc)
            run.cannot_run = run.cannot_run or f"check {check.name} could not run ({why})"
            run.results.append(base.model_copy(update={"reason": str(exc), **_took(started)}))
            _event(on_event, f"{check.name}: not run, {why}", clock.now())
            continue
        except ShellError as exc:
            run.results.append(base.model_copy(update={"status": "fail", "reason": str(exc), **_took(started)}))
            run.title = run.title or f"check {check.name} could not run (shell error)"
            gone = f"the guest's shell failed at check {check.name}"
            _event(on_event, f"{check.name}: FAILED, shell error", clock.now())
            continue
        status, reason, title = judge(check, out)
        update = {
            "status": status,
            "exit_code": None if out.timed_out else out.exit_code,
            "duration_s": out.duration_s,
            "reason": reason,
            "output": capped(out.output),
            "output_bytes": len(out.output),
        }
        run.results.append(base.model_copy(update=update))
        if title is not None and run.title is None:
            run.title = title
        said = "pass" if status == "pass" else f"FAILED, {reason}"
        _event(on_event, f"{check.name}: {said} ({_seconds(out.duration_s)})", clock.now())
        if out.timed_out and not session.shell.synced:
            gone = f"the shell did not come back after check {check.name} timed out"
    return run


def _not_run(exc: Exception) -> str:
    """Why a check's script could not be sent. The preflight reads each script once and the boots send that text;
    a boot that reads it itself (in a held boot's supervisor, on a cluster worker) finds it changed or gone only
    when the user changed it meanwhile: the host's doing, so the boot is an infra-error, not a failed check."""
    if isinstance(exc, CommandTooLong):
        return "its script is too big"
    return "its script could not be read"


def _took(started: float) -> dict[str, float]:
    return {"duration_s": round(time.monotonic() - started, 3)}


def _event(hook: EventHook | None, text: str, t: float) -> None:
    if hook is not None:
        hook("check", text, t)
