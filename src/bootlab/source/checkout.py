"""Check revisions out without touching the user's working tree: a ``git worktree`` under bootlab's cache dir.

Why a separate worktree rather than refusing a dirty tree and checking out in place: the user's tree, index,
HEAD, branch and untracked files are never touched, so nothing can be lost whatever happens to bootlab, and the
user can keep working (and building) in their tree during a bisect that takes an hour. The cost is a second
checkout on disk and a first build from scratch there (later revisions of the same run build incrementally).

The only trace in the repository is git's own record of the worktree (``.git/worktrees/ID``), and it goes when
the checkout is closed: normally, after an error, after Ctrl-C. For a bootlab killed outright (SIGKILL, a crash,
a power cut) each checkout has a **journal** in the cache directory naming its owner (pid and start time), the
repository, the worktree and the build running in it; the next bootlab command of this user finds journals whose
owner is dead, stops the build they name (by its recorded process group, after checking its start time: never
by name) and removes the worktree, saying so in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from types import TracebackType
from typing import TextIO

from bootlab.paths import atomic_write


def journal_dir() -> Path:
    from bootlab.paths import cache_dir

    return cache_dir() / "checkouts"


def _start_time(pid: int) -> int | None:
    from bootlab.vm.registry import process_start_time

    return process_start_time(pid)


class Checkout:
    """A detached worktree of ``repo`` for this process; a context manager that always removes it.

    ``switch(commit)`` checks a commit out (forcefully: the worktree is bootlab's own), with its submodules.
    ``path`` is the worktree's top; ``building(pid)`` records the build running in it, for recovery.
    """

    def __init__(self, repo: Path) -> None:
        import hashlib

        self.repo = repo.resolve()
        tag = hashlib.sha256(str(self.repo).encode()).hexdigest()[:8]
        self.name = f"{self.repo.name}-{tag}-{os.getpid()}"
        self.path = journal_dir() / self.name
        self.journal = journal_dir() / f"{self.name}.json"
        self.admin: str | None = None
        self.commit: str | None = None
        self.open = False

    # -- journal ------------------------------------------------------------------------------------------------

    def _write_journal(self, build: tuple[int, int | None] | None = None) -> None:
        data = {
            "version": 1,
            "pid": os.getpid(),
            "start": _start_time(os.getpid()),
            "repo": str(self.repo),
            "worktree": str(self.path),
            "admin": self.admin,
            "build": {"pid": build[0], "start": build[1]} if build else None,
            "created": time.time(),
        }
        atomic_write(self.journal, json.dumps(data))

    def building(self, pid: int | None) -> None:
        """Record (or clear, with None) the process group of the build running in this checkout."""
        self._write_journal((pid, _start_time(pid)) if pid else None)

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def __enter__(self) -> Checkout:
        from bootlab.source.git import git

        journal_dir().mkdir(parents=True, exist_ok=True)
        self._write_journal()  # first: a kill during `worktree add` is then recoverable too
        self.open = True
        if self.path.exists():
            shutil.rmtree(self.path)
        git(["worktree", "add", "--detach", "--no-checkout", str(self.path), "HEAD"], self.repo)
        gitfile = self.path / ".git"
        with contextlib.suppress(OSError):
            self.admin = gitfile.read_text().split("gitdir:", 1)[1].strip()
        self._write_journal()
        return self

    def switch(self, commit: str) -> None:
        """Check ``commit`` out, with the submodules that are initialised in the user's clone.

        Not ``submodule update --init``: initialising writes the submodule's URL into the repository's shared
        config, which would change the user's repository. A submodule the user never initialised stays empty
        here too, as it is in their tree."""
        from bootlab.source.git import git

        git(["checkout", "--detach", "--force", "--quiet", commit], self.path)
        if (self.path / ".gitmodules").is_file():
            git(["submodule", "update", "--recursive", "--force", "--quiet"], self.path)
        self.commit = commit

    def close(self) -> None:
        if not self.open:
            return
        remove_worktree(self.repo, self.path, self.admin)
        with contextlib.suppress(FileNotFoundError):
            self.journal.unlink()
        self.open = False

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def remove_worktree(repo: Path, path: Path, admin: str | None) -> None:
    """Remove bootlab's worktree and git's record of it, and nothing else of the repository.

    ``git worktree remove`` does both. When the worktree directory is already gone, git's record of it is
    removed directly (only that one record: ``git worktree prune`` would also drop records of the user's own
    worktrees that happen to be unreachable, e.g. on an unmounted disk).
    """
    from bootlab.source.git import git

    if path.exists() and repo.is_dir():
        proc = git(["worktree", "remove", "--force", "--force", str(path)], repo, check=False)
        if proc.returncode == 0 and not path.exists():
            admin = None  # git removed its record
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    if admin:
        record = Path(admin)
        gitdir_file = record / "gitdir"
        with contextlib.suppress(OSError):
            points_to = Path(gitdir_file.read_text().strip()).parent
            if points_to == path and record.parent.name == "worktrees":
                shutil.rmtree(record, ignore_errors=True)
                with contextlib.suppress(OSError):
                    record.parent.rmdir()  # git removes an empty .git/worktrees too


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _ours(pid: int, start: int | None) -> bool:
    """Is process group ``pid`` still the build bootlab recorded? Either its leader is alive with the recorded
    start time, or the leader is gone but the group still has members: the kernel never hands out a number that
    is still in use as a process group id, so a group whose leader died cannot have been recycled."""
    from bootlab.vm.registry import process_start_time, verified_process

    if verified_process(pid, start):
        return True
    return process_start_time(pid) is None and _group_exists(pid)


def _stop_group(pid: int, start: int | None) -> bool:
    """SIGTERM then SIGKILL a recorded build's process group (the build command's children included: it leads
    its own session), only if it is provably the same group. Never by name."""
    if not _ours(pid, start):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _group_exists(pid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    return True


def recover(stream: TextIO | None = None) -> list[str]:
    """Undo the checkouts of bootlab processes that died without closing them; say what was done.

    Cheap when there is nothing to do (one directory listing, nothing heavy imported): every command calls it.
    """
    folder = journal_dir()
    try:
        journals = [p for p in folder.iterdir() if p.suffix == ".json"]
    except OSError:
        return []
    from bootlab.vm.registry import same_process

    done: list[str] = []
    for journal in journals:
        try:
            data = json.loads(journal.read_text())
        except (OSError, ValueError):
            continue
        if same_process(data.get("pid"), data.get("start")):
            continue  # its owner is alive: not ours to touch
        claimed = journal.with_suffix(f".recovering-{os.getpid()}")
        try:
            journal.rename(claimed)  # two bootlab commands starting at once: only one recovers
        except OSError:
            continue
        build = data.get("build") or {}
        stopped = bool(build.get("pid")) and _stop_group(int(build["pid"]), build.get("start"))
        repo, path = Path(data.get("repo", "")), Path(data.get("worktree", ""))
        if path.name and path.parent == folder:
            remove_worktree(repo, path, data.get("admin"))
        with contextlib.suppress(OSError):
            claimed.unlink()
        what = f"bootlab: removed the checkout a killed bootlab (pid {data.get('pid')}) left of {repo}"
        done.append(what + (" and stopped its build" if stopped else ""))
    if stream is not None:
        for line in done:
            print(line, file=stream)
    return done
