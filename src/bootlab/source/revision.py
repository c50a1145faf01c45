"""The source revision an image came from, recorded with every stored boot.

Which directory: the profile's build directory when it has a ``build`` table, else the directory of the first
file it boots (kernel, else the first drive, else the initrd). Recorded: that directory, the commit checked out
there, whether tracked files were modified (``dirty``) and the branch. A boot of a ``--rev`` checkout records
the revision it was built from (never dirty, no branch) and the name the user gave (``rev``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootlab.profile.model import Profile


@dataclass(frozen=True)
class Revision:
    dir: str
    commit: str | None
    dirty: bool = False
    branch: str | None = None
    rev: str | None = None  # what the user named with --rev (a tag, a branch, HEAD~3)
    checkout: bool = False  # built in bootlab's own checkout, not in the user's tree

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Revision | None:
        if not data or not isinstance(data, dict):
            return None
        return cls(
            dir=str(data.get("dir") or ""),
            commit=data.get("commit"),
            dirty=bool(data.get("dirty")),
            branch=data.get("branch"),
            rev=data.get("rev"),
            checkout=bool(data.get("checkout")),
        )

    @property
    def built_apart(self) -> bool:
        """Built in bootlab's own checkout (``--rev``, a bisect): the user's tree does not hold these images."""
        return self.checkout and bool(self.commit)

    def short(self) -> str:
        """``abc123def456+dirty (main)``, ``abc123def456 (v1.2)``; ``-`` when not in git."""
        if not self.commit:
            return "-"
        text = self.commit[:12] + ("+dirty" if self.dirty else "")
        label = self.rev or self.branch
        return f"{text} ({label})" if label and not label.startswith(self.commit[:7]) else text


def source_dir(profile: Profile) -> Path | None:
    """The directory whose revision describes what ``profile`` boots."""
    if profile.build is not None:
        return Path(profile.build.dir)
    for f in (profile.kernel, *(d.file for d in profile.drives), profile.initrd):
        if f:
            return Path(f).parent
    return None


def revision_of(profile: Profile) -> Revision | None:
    """The revision of the profile's source directory now, or None when it is not in a git working tree."""
    from bootlab.source.git import tree_state

    where = source_dir(profile)
    if where is None:
        return None
    state = tree_state(where)
    if state is None:
        return None
    return Revision(dir=str(where), commit=state.commit, dirty=state.dirty, branch=state.branch)
