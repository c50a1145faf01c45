"""Classify a saved console log with the same observer a live boot uses (``bootlab classify``).

Offline there is no clock and no QEMU: times are unknown, nothing is sent, and the log may end anywhere, so
the outcome is ``pass`` (ready reached, no fatal line), ``crash`` (a fatal line), ``login-failed`` (the guest
refused a login before ready, as the live boot concludes: a pass never carries the title "login failed") or
``incomplete`` (none of these). :func:`classify_file` decides whether the log's boot logged in.
Pasted transcripts carry prose and shell commands around the console text; signatures are searched per line,
so the noise costs nothing but a few lines that match nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bootlab.console.observer import Action, Observer
from bootlab.errors import UsageError
from bootlab.packs.loader import PackSet
from bootlab.verdict import Verdict


def classify_text(text: str, packs: PackSet, *, wait_for_shell: bool = False) -> Verdict:
    obs = Observer(packs, wait_for_shell=wait_for_shell, count_distinct=False)  # no clocks offline
    obs.feed_text(text)
    obs.finish()
    return _verdict(obs)


def _verdict(obs: Observer) -> Verdict:
    if obs.fatal is not None:
        outcome = "crash"
    elif obs.login_failed is not None:  # refused before ready: whoever typed the login, it failed
        outcome = "login-failed"
    elif obs.ready:
        outcome = "pass"
    else:
        outcome = "incomplete"
    return Verdict(outcome=outcome, **obs.verdict_fields())  # type: ignore[arg-type]


@dataclass
class Checked:
    """One log read offline by `bootlab packs check`: the verdict, what bootlab would have sent, and where the log
    stopped (its last lines and prompt)."""

    verdict: Verdict
    sent: list[Action]
    last_lines: list[str]
    prompt: str | None
    timed: bool  # the log had its .times index: stage and finding times are real


def check_log(
    path: Path, packs: PackSet, *, wait_for_shell: bool = False, variables: dict[str, str] | None = None
) -> Checked:
    """Read one saved log as a live boot's observer would: chunk by chunk with their arrival times when bootlab's
    ``.times`` index is beside it, answering nothing but recording each answer a live boot would send."""
    from bootlab.console.rawlog import read_chunks, times_path

    _read(path)  # a missing or unreadable file is said the same way as by classify
    obs = Observer(packs, variables=variables, wait_for_shell=wait_for_shell, count_distinct=False)
    sent: list[Action] = []
    timed = times_path(path).is_file()
    if timed:
        for t, data in read_chunks(path):
            sent += obs.feed(data, t)
    else:
        sent += obs.feed_text(_read(path).decode("utf-8", errors="replace"))
    last_lines, prompt = obs.stopped_view()
    obs.finish()
    verdict = _verdict(obs)
    verdict.log = str(path)
    return Checked(verdict, sent, last_lines, prompt, timed)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"log file {path} does not exist; check the path") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{path} is a directory; give console log files") from exc
    except OSError as exc:
        raise UsageError(f"cannot read log file {path}: {exc.strerror}") from exc


def classify_file(path: Path, packs: PackSet) -> Verdict:
    """Classify one log file as `bootlab packs check` reads it (chunk by chunk with their times when the
    ``.times`` index is beside it, so a prompt counts where the boot stopped at it, even when commands were typed
    after it). A log does not say whether its boot meant to log in, so it is read as one that did first: a
    shell reached is a pass there, a refused login is ``login-failed``, a crash before the shell a crash; only a
    log that never gets that far is read again as a boot that is ready at its login prompt. A missing or
    unreadable file is a usage error naming it."""
    logged_in = check_log(path, packs, wait_for_shell=True).verdict
    if logged_in.outcome != "incomplete":
        return logged_in
    return check_log(path, packs).verdict
