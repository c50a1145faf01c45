"""What ``--rev REV`` and ``--build`` share across trial, compare and matrix: build first, then boot that build."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootlab.profile.loader import Project
    from bootlab.source.revision import Revision


def add_rev_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rev",
        metavar="REV",
        help="check REV out in bootlab's own worktree (your tree is untouched), build it, boot that build",
    )


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False) and not getattr(args, "json", False):
        print(f"bootlab: {text}", file=sys.stderr, flush=True)


def at_revision(
    args: argparse.Namespace, project: Project, profile: str, sets: list[str], rev: str, *, what: str = "--rev"
) -> tuple[Project, Revision | None]:
    """Build ``rev`` (or reuse its cached build) and return the project that boots it, with its revision."""
    from bootlab.source.build import build_at

    built = build_at(project, profile, sets, rev, what=what, announce=lambda text: _say(args, text))
    how = "cached build" if built.cached else f"built in {built.seconds:.1f} s"
    _say(args, f"{profile} at {built.revision.short() if built.revision else rev}: {how}")
    return built.project(project), built.revision


def build_here(args: argparse.Namespace, project: Project, profile: str, sets: list[str]) -> None:
    """``--build``: run the profile's build in place (the user's tree) before booting, output streamed."""
    from bootlab.source.build import build_in_place

    quiet = getattr(args, "quiet", False)
    built = build_in_place(
        project,
        profile,
        sets,
        stream=None if quiet else sys.stderr,
        at_revision=getattr(args, "bisect_exit", False),  # under `git bisect run`, a commit git put in place
    )
    _say(args, f"built {profile} in {built.seconds:.1f} s (log: {built.log})")
