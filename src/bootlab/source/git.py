"""The git questions bootlab asks: which repository, which commit, is it dirty, which commits lie between two.

Every call is read-only for the user's repository. ``git status`` runs with ``--no-optional-locks`` so that it
does not even refresh the index (plain ``git status`` may rewrite ``.git/index`` to cache stat data).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bootlab.errors import UsageError


class GitError(UsageError):
    """A git command failed on input the user gave (an unknown revision, not a repository)."""


def git(args: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``git ARGS`` in ``cwd``; a missing git is one clear line."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    env.pop("GIT_DIR", None)  # `git bisect run` exports nothing of the kind, but a hook might
    env.pop("GIT_WORK_TREE", None)
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise UsageError("git not found on PATH; install git (revisions and builds need it)") from None
    except NotADirectoryError:
        raise UsageError(f"{cwd}: not a directory") from None
    if check and proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise GitError(f"git {' '.join(args[:2])} in {cwd}: {msg}")
    return proc


def toplevel(path: Path) -> Path | None:
    """The top of the git working tree holding ``path`` (a file or directory), or None outside one."""
    here = path if path.is_dir() else path.parent
    if not here.is_dir():
        return None
    proc = git(["rev-parse", "--show-toplevel"], here, check=False)
    return Path(proc.stdout.strip()).resolve() if proc.returncode == 0 else None


def resolve(repo: Path, rev: str, *, what: str = "revision") -> str:
    """The full commit hash of ``rev`` (a hash, branch, tag, ``HEAD~3``); an unknown one is a usage error."""
    if not rev or rev.startswith("-"):
        raise UsageError(f"{what} {rev!r}: not a revision; give a commit, branch or tag (e.g. v1.2 or HEAD~3)")
    proc = git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], repo, check=False)
    if proc.returncode != 0:
        raise UsageError(f"{what} {rev!r}: unknown revision in {repo}; check it with `git log --oneline`")
    return proc.stdout.strip()


def is_ancestor(repo: Path, old: str, new: str) -> bool:
    return git(["merge-base", "--is-ancestor", old, new], repo, check=False).returncode == 0


def first_parent_line(repo: Path, old: str, new: str) -> list[str]:
    """``old`` then the first-parent commits from ``old`` (exclusive) to ``new`` (inclusive), oldest first.

    These are the commits a change can be pinned on: following first parents keeps the line linear through
    merges (a merged branch counts as its merge commit), as git bisect's ``--first-parent`` does.
    """
    out = git(["rev-list", "--first-parent", "--reverse", new, f"^{old}"], repo).stdout.split()
    return [old, *out]


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    subject: str
    author: str
    date: str  # ISO 8601, the author date

    @property
    def short(self) -> str:
        return self.sha[:12]


def commit_info(repo: Path, shas: list[str]) -> dict[str, CommitInfo]:
    """Subject, author and date of each commit, in one git call."""
    if not shas:
        return {}
    proc = subprocess.run(
        ["git", "log", "--no-walk=unsorted", "--format=%H%x1f%s%x1f%an <%ae>%x1f%aI%x1e", "--stdin"],
        cwd=repo,
        input="\n".join(shas),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
    )
    info: dict[str, CommitInfo] = {}
    for record in proc.stdout.split("\x1e"):
        parts = record.strip().split("\x1f")
        if len(parts) == 4:
            info[parts[0]] = CommitInfo(*parts)
    return info


@dataclass(frozen=True)
class TreeState:
    """What ``git status`` says about a working tree: its commit, whether tracked files changed, its branch."""

    commit: str | None
    dirty: bool
    branch: str | None


def tree_state(path: Path) -> TreeState | None:
    """The state of the working tree holding ``path``, or None outside git. Untracked files do not make a tree
    dirty (as ``git describe --dirty``): build outputs usually are untracked."""
    here = path if path.is_dir() else path.parent
    if not here.is_dir():
        return None
    proc = git(["status", "--porcelain=v2", "--branch", "--untracked-files=no"], here, check=False)
    if proc.returncode != 0:
        return None
    commit = branch = None
    dirty = False
    for line in proc.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split()[2]
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(maxsplit=2)[2]
            branch = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            dirty = True
    return TreeState(commit, dirty, branch)
