"""Git repositories for the build, revision and bisect tests, and a snapshot that proves one was left as it was.

A test repository has one commit per entry of ``builds``; each commit writes the build's name into
``kernel.conf``, and the build script turns that into an image. Two scripts: ``SIM_BUILD`` copies the name into
``out/initrd`` (for simulated boots, which read it back), ``REDOX_BUILD`` appends a small cpio holding
``redoxsim/build`` to the real redox-sim initramfs (the guest reads it and faults at that build's known rate).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootlab.profile.model import Profile

SIM_BUILD = """set -e
mkdir -p out
cp kernel.conf out/initrd
"""

REDOX_BUILD = """set -e
mkdir -p out stage/redoxsim
cp kernel.conf stage/redoxsim/build
(cd stage && printf 'redoxsim/build\\n' | cpio -o -H newc -R 0:0 --quiet) | gzip -n > out/extra.cpio.gz
cat "$BASE_INITRD" out/extra.cpio.gz > out/initrd.cpio.gz
"""

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Tester",
    "GIT_AUTHOR_EMAIL": "ada@bootlab.invalid",
    "GIT_COMMITTER_NAME": "Ada Tester",
    "GIT_COMMITTER_EMAIL": "ada@bootlab.invalid",
    "GIT_AUTHOR_DATE": "2024-03-01T12:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-03-01T12:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_OPTIONAL_LOCKS": "0",  # `git status` must not refresh the index: snapshots compare its bytes
}


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def make_repo(root: Path, builds: list[str], *, script: str = SIM_BUILD, script_from: int = 1) -> Path:
    """A repository at ``root`` with one commit per build name ("commit N: NAME"), on branch main. The build
    script (executable) comes with commit ``script_from``: the commits before it have none."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("out/\nstage/\n")
    for i, name in enumerate(builds, start=1):
        if i == script_from:
            (root / "build.sh").write_text(script)
            (root / "build.sh").chmod(0o755)
        (root / "kernel.conf").write_text(name + "\n")
        (root / "counter").write_text(f"{i}\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"commit {i}: {name}")
    return root


def commits(repo: Path) -> list[str]:
    """Oldest first."""
    return git(repo, "rev-list", "--reverse", "HEAD").split()


def snapshot(repo: Path) -> dict[str, Any]:
    """Everything a user could notice: HEAD and branch, refs, index, status (ignored files included), worktrees,
    the content of every file in the tree, and every file of .git but its object stores (config, refs, reflogs,
    submodule repositories...) with its content."""
    files: dict[str, str] = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if rel.parts[0] == ".git" or not path.is_file():
            continue
        files[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    dotgit = {
        str(p.relative_to(repo / ".git")): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted((repo / ".git").rglob("*"))
        if "objects" not in p.relative_to(repo / ".git").parts
    }
    return {
        "head": (repo / ".git" / "HEAD").read_text(),
        "refs": git(repo, "for-each-ref"),
        "index": hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest(),
        "status": git(repo, "status", "--porcelain", "--ignored"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "files": files,
        "dotgit": dotgit,
    }


def build_name_in(initrd: Path) -> str:
    """The build name a REDOX_BUILD (or SIM_BUILD) image carries."""
    data = initrd.read_bytes()
    if not data.startswith(b"\x1f\x8b"):
        return data.decode().strip()
    raw = gzip.decompress(data)  # every member of the concatenated archive
    at = raw.rindex(b"redoxsim/build\x00") + len(b"redoxsim/build\x00")
    return raw[at:].lstrip(b"\x00").split(b"\n", 1)[0].decode()


def image_outcome(profile: Profile) -> tuple[bool, bool]:
    """What redox-sim does with the build baked into the image this profile boots (its initrd): (fatal,
    incident), from bootlab's port of the guest's own decision (bootlab.lab.simulate)."""
    from bootlab.lab.simulate import redox_sim_outcome

    assert profile.initrd is not None
    build = build_name_in(Path(profile.initrd))
    return redox_sim_outcome(profile.seed, cpu=profile.cpu_for("tcg") or "max", build=build)
