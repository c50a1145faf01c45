"""Classify a saved console log with the same observer a live boot uses (``bootlab classify``).

Offline there is no clock and no QEMU: times are unknown, nothing is sent, and the log may end anywhere, so
the outcome is ``pass`` (ready reached, no fatal line), ``crash`` (a fatal line), ``login-failed`` (the guest
refused the login before ready: only when the log is read as one that logs in, ``wait_for_shell``) or
``incomplete`` (none of these).
Pasted transcripts carry prose and shell commands around the console text; signatures are searched per line,
so the noise costs nothing but a few lines that match nothing.
"""

from __future__ import annotations

from pathlib import Path

from bootlab.console.observer import Observer
from bootlab.errors import UsageError
from bootlab.packs.loader import PackSet
from bootlab.verdict import Verdict


def classify_text(text: str, packs: PackSet, *, wait_for_shell: bool = False) -> Verdict:
    obs = Observer(packs, wait_for_shell=wait_for_shell)
    obs.feed_text(text)
    obs.finish()
    if obs.fatal is not None:
        outcome = "crash"
    elif obs.login_failed is not None and wait_for_shell:
        outcome = "login-failed"
    elif obs.ready:
        outcome = "pass"
    else:
        outcome = "incomplete"
    return Verdict(outcome=outcome, **obs.verdict_fields())  # type: ignore[arg-type]


def classify_file(path: Path, packs: PackSet) -> Verdict:
    """Classify one log file; a missing or unreadable file is a usage error naming it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"log file {path} does not exist; check the path") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{path} is a directory; give console log files") from exc
    except OSError as exc:
        raise UsageError(f"cannot read log file {path}: {exc.strerror}") from exc
    verdict = classify_text(data.decode("utf-8", errors="replace"), packs)
    verdict.log = str(path)
    return verdict
