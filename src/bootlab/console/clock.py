"""The clocks of an observed boot, shared by `bootlab boot` and the named-VM supervisor.

Three limits decide when to stop reading and what to call it: the overall ``timeout`` (seconds since QEMU
start); ``quiet_timeout`` without any console output is a hang (rule ``quiet``); output that goes on without
progress for twice ``quiet_timeout`` is a hang too (rule ``no-progress``). Progress is a new milestone, ready, or
a console line not seen before (numbers, addresses and clocks aside): a guest stuck printing the same thing (a
flood, a status line redrawn with the time) is not progressing, a slow systemd boot printing one distinct status
line after another is. Once a fatal line is seen, only the crash dump is waited for: until the console has been
quiet for ``grace`` seconds, ``max_grace`` at most after the fatal line, so a crash verdict lands within a
fraction of a second of its fatal line.

A hang or timeout says where it stopped (:meth:`BootClock.stopped`): the rule that fired, whether output was
still flowing, the last lines and the prompt the console stopped on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bootlab.console.observer import Observer, Stage
from bootlab.verdict import Stopped

GRACE = 0.3
MAX_GRACE = 2.0

Rule = Literal["quiet", "no-progress", "timeout"]


@dataclass
class Step:
    """What one chunk of console output changed: stages newly reached, and whether a fatal line just appeared."""

    stages: list[Stage] = field(default_factory=list)
    progressed: bool = False
    fatal_new: bool = False


@dataclass
class BootClock:
    timeout: float
    quiet_timeout: float
    start: float = 0.0
    grace: float = GRACE
    max_grace: float = MAX_GRACE
    fatal_at: float | None = None

    def __post_init__(self) -> None:
        self.last_output = self.start
        self.last_progress = self.start
        self.rule: Rule | None = None  # which limit ended the boot (set by expired())
        self._mark: tuple[int, bool] = (0, False)
        self._distinct = 0
        self._progress_lines = 0

    def observe(self, t: float, obs: Observer, *, watch_fatal: bool = True) -> Step:
        """Account for output that arrived at ``t`` (after it was fed to ``obs``)."""
        self.last_output = t
        step = Step()
        mark = (len(obs.stages), obs.ready)
        if mark != self._mark:
            step.stages = obs.stages[self._mark[0] :]
            step.progressed = True
            self._mark = mark
        if obs.distinct_lines != self._distinct:
            self._distinct = obs.distinct_lines
            step.progressed = True
        if step.progressed:
            self.last_progress = t
            self._progress_lines = obs.lines
        if watch_fatal and obs.fatal_seen and self.fatal_at is None:
            self.fatal_at = t
            step.fatal_new = True
        return step

    def wait(self, now: float, *, booting: bool = True) -> float | None:
        """Seconds until the next limit runs out; None when nothing is being timed (a ready VM with no crash)."""
        if self.fatal_at is not None:
            left = min(self.last_output + self.grace, self.fatal_at + self.max_grace) - now
        elif booting:
            left = min(
                self.timeout - now,
                self.last_output + self.quiet_timeout - now,
                self.last_progress + 2 * self.quiet_timeout - now,
            )
        else:
            return None
        return max(left, 0.0)

    def expired(self, now: float) -> str:
        """The outcome when :meth:`wait` ran out: the crash dump is complete, the overall limit, or a hang (and
        :attr:`rule` says which limit)."""
        if self.fatal_at is not None:
            return "crash"
        if now >= self.timeout:
            self.rule = "timeout"
            return "timeout"
        self.rule = "quiet" if now >= self.last_output + self.quiet_timeout else "no-progress"
        return "hang"

    def stopped(self, obs: Observer, now: float, outcome: str = "hang") -> Stopped:
        """Where the boot stopped, for the verdict of a hang or timeout."""
        lines, prompt = obs.stopped_view()
        silent = max(0.0, now - self.last_output)
        rule: Rule = "quiet"
        if outcome == "timeout":
            rule = "timeout"
        elif self.rule == "no-progress":
            rule = "no-progress"
        return Stopped(
            rule=rule,
            flowing=silent < self.quiet_timeout / 2,
            silent_s=round(silent, 3),
            progress_t=round(self.last_progress, 3),
            lines_since_progress=max(0, obs.lines - self._progress_lines),
            last_lines=lines,
            prompt=prompt,
        )
