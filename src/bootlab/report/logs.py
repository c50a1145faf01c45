"""Console logs as a report shows them: cleaned text, and the excerpt around the fatal line.

The store keeps each boot's raw console bytes (gzip). A report needs what a person reads: escapes and carriage
returns removed (the same cleaning the observer's regexes see, so the fatal line found here is the one the
verdict names), long lines cut, and the few dozen lines around the fatal line, since a crash dump follows it.
"""

from __future__ import annotations

from typing import Any

from bootlab.console.clean import clean

#: Characters of one log line shown; a line longer than this (a binary blob, a progress bar) is cut.
MAX_LINE = 400


def log_lines(raw: bytes) -> list[str]:
    """Raw console bytes -> cleaned lines (invalid UTF-8 replaced, ANSI escapes and CR removed, long lines cut)."""
    text = clean(raw.decode("utf-8", errors="replace"))
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line if len(line) <= MAX_LINE else line[:MAX_LINE] + " …" for line in lines]


def fatal_index(lines: list[str], fatal_line: str | None, skip: int = 0) -> int | None:
    """The index of the verdict's fatal line in the log, or None. ``skip`` earlier occurrences of the same text
    are passed over: Redox prints "Lacks grant" for a daemon (an incident) and then for init (the fatal one)."""
    if not fatal_line:
        return None
    wanted = fatal_line.strip()
    found = [i for i, line in enumerate(lines) if wanted and wanted in line]
    if not found:
        return None
    return found[min(skip, len(found) - 1)]


def excerpt(
    lines: list[str], fatal_line: str | None, *, skip: int = 0, before: int = 12, after: int = 30
) -> dict[str, Any] | None:
    """The lines around the fatal line (numbered from 1, the fatal one flagged), or the end of the log when there
    is no fatal line (a hang or a timeout: what it printed last is the clue). None for an empty log."""
    if not lines:
        return None
    at = fatal_index(lines, fatal_line, skip)
    if at is None:
        start, end = max(0, len(lines) - (before + after)), len(lines)
    else:
        start, end = max(0, at - before), min(len(lines), at + after + 1)
    return {
        "lines": [{"n": i + 1, "text": lines[i], "fatal": i == at} for i in range(start, end)],
        "fatal": at is not None,
        "total": len(lines),
    }
