"""The syzkaller Linux dev set: real kernel console logs with the title syzkaller computes for each.

The logs are syzkaller's (``pkg/report/testdata/linux/report/``, Apache-2.0) and are not copied into this
project: they live in ``../shared/samples/linux-syzkaller/`` beside the repository (see :func:`samples_dir`), or
wherever ``BOOTLAB_LINUX_SAMPLES`` points. Each file is a header (``TITLE:``, ``ALT:``, ``TYPE:``, ``CORRUPTED:``, ...),
a blank line, then the log; no ``TITLE`` means the log holds no crash. Shared by the golden test
(``tests/unit/test_linux_syzkaller.py``) and the measurement (``bench/linux_titles.py``) so both read the set
the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bootlab.verdict import Verdict

ROOT = Path(__file__).resolve().parent.parent
ENV = "BOOTLAB_LINUX_SAMPLES"


def samples_dir() -> Path:
    """``$BOOTLAB_LINUX_SAMPLES``, else ``shared/samples/linux-syzkaller`` beside the repository root (for a
    linked git worktree, also beside the main checkout's root). The first candidate is returned when none
    exists, so a skip message can name where the set was looked for."""
    override = os.environ.get(ENV)
    if override:
        return Path(override)
    roots = [ROOT]
    git = ROOT / ".git"
    if git.is_file():  # a linked worktree: "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(git.read_text().partition("gitdir:")[2].strip())
        if gitdir.parent.name == "worktrees" and gitdir.parent.parent.name == ".git":
            roots.append(gitdir.parent.parent.parent)
    candidates = [r.parent / "shared" / "samples" / "linux-syzkaller" for r in roots]
    return next((c for c in candidates if c.is_dir()), candidates[0])


@dataclass
class Sample:
    name: str
    path: Path
    log: str
    header: dict[str, list[str]] = field(default_factory=dict)

    @property
    def title(self) -> str | None:
        """syzkaller's title: None for a log with no crash."""
        return self.header.get("TITLE", [None])[0]

    @property
    def corrupted(self) -> bool:
        return self.header.get("CORRUPTED", [""])[0] == "Y"


def read_sample(path: Path) -> Sample:
    """Split one file into its header (up to the first blank line) and the log after it."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    if text.startswith("\n"):
        head, log = "", text[1:]
    else:
        head, sep, log = text.partition("\n\n")
        if not sep:
            head, log = "", text
    header: dict[str, list[str]] = {}
    for line in head.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.isupper():
            header.setdefault(key, []).append(value.strip())
    return Sample(name=path.name, path=path, log=log, header=header)


def read_samples(directory: Path | None = None) -> list[Sample]:
    """Every sample in the set, in a stable order (syzkaller's file names are numbers)."""
    d = directory or samples_dir()
    files = [p for p in d.iterdir() if p.is_file() and p.name.isdigit()]
    return [read_sample(p) for p in sorted(files, key=lambda p: int(p.name))]


def report_title(verdict: Verdict) -> tuple[str, str | None]:
    """What bootlab reports for a log: (``fatal`` | ``incident`` | ``none``, title).

    A crash is titled by its verdict; a log without one by its first incident (a lockdep report, a hung task);
    a log where nothing fired has no title.
    """
    if verdict.outcome == "crash":
        return "fatal", verdict.title
    if verdict.incidents:
        return "incident", verdict.incidents[0].title
    return "none", None
