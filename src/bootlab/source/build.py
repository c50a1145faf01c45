"""Builds: run a profile's ``build`` command, in the user's tree or in bootlab's checkout of a revision.

``bootlab build PROFILE`` builds in place (the user's tree, as ``make`` would). ``--rev REV`` (trial, compare,
matrix) and ``bootlab bisect`` build a revision in a :class:`~bootlab.source.checkout.Checkout` and copy its
outputs into the cache (``builds/KEY``, KEY from the repository, the commit and the build table), so booting
it never reads the user's tree, a later command at the same revision reuses it, and a bisect that comes back to
a commit does not rebuild it. The profile then boots the copies: every path of the profile that is a build
output is redirected (``Project.path_map``); any other path of the profile inside the repository is refused,
because it would silently come from the user's tree instead of the revision.

A failing build is a ``build-error`` (:class:`BuildError`, exit code 3), never a failed boot: the command's
whole output is in its log and the error names the log and the last line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bootlab.environ import for_user_commands
from bootlab.errors import InfraError, UsageError
from bootlab.source.revision import Revision

if TYPE_CHECKING:
    from bootlab.profile.loader import Project
    from bootlab.profile.model import Build, Profile
    from bootlab.source.checkout import Checkout


class BuildError(InfraError):
    """The build command failed or did not produce its outputs: nothing to boot (exit code 3)."""

    kind = "build-error"


@dataclass
class Built:
    """What a build left to boot: where each output is, and the project that boots those files."""

    profile: str
    revision: Revision | None
    outputs: dict[str, str]  # output as listed in build.outputs -> absolute path of the file to boot
    path_map: dict[str, str] = field(default_factory=dict)
    log: str | None = None
    seconds: float = 0.0
    cached: bool = False

    def project(self, project: Project) -> Project:
        """``project`` with the profile's output paths redirected to this build's files."""
        if not self.path_map:
            return project
        return dataclasses.replace(project, path_map={**project.path_map, **self.path_map})

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "revision": self.revision.to_json() if self.revision else None,
            "outputs": self.outputs,
            "log": self.log,
            "seconds": round(self.seconds, 3),
            "cached": self.cached,
        }


def build_profile(project: Project, name: str, sets: list[str]) -> Profile:
    """The profile resolved for building; one without a ``build`` table is a usage error."""
    from bootlab.profile.loader import resolve_profile

    profile = resolve_profile(name, project=project, sets=sets, seed=0)
    if profile.build is None:
        where = f"{project.path}: " if project.path else ""
        raise UsageError(
            f"{where}profile {name} has no build table, so bootlab cannot build it; add [profiles.{name}.build] "
            f'with command, dir and outputs (e.g. command = ["make", "image"], outputs = ["build/image.img"])'
        )
    return profile


def repository(profile: Profile) -> Path:
    """The git repository holding the profile's build directory (needed for revisions)."""
    from bootlab.source.git import toplevel

    assert profile.build is not None
    where = Path(profile.build.dir)
    if not where.is_dir():
        raise UsageError(f"profile {profile.name}: build.dir {where} does not exist; fix build.dir in the profile")
    repo = toplevel(where)
    if repo is None:
        raise UsageError(
            f"profile {profile.name}: build.dir {where} is not in a git repository; revisions (--rev, bisect) "
            f"need one (`git init` there, or point build.dir at your checkout)"
        )
    return repo


def profile_paths(profile: Profile) -> dict[str, str]:
    """Every host path the profile reads: what it boots, its symbols, its 9p shares."""
    paths = dict(profile.files())
    if profile.symbols:
        paths["symbols"] = profile.symbols
    for i, share in enumerate(profile.shares):
        paths[f"share{i}"] = share.path
    return paths


def output_map(profile: Profile, repo: Path, artifacts: Path) -> dict[str, str]:
    """Profile path -> its copy in ``artifacts``, for every profile path that is a build output.

    A profile path inside the repository that is not an output is refused: it would be read from the user's
    tree, not from the revision being booted.
    """
    assert profile.build is not None
    build_dir = Path(profile.build.dir).resolve()
    outputs = {(build_dir / o).resolve(): o for o in profile.build.outputs}
    mapping: dict[str, str] = {}
    for role, value in profile_paths(profile).items():
        real = Path(value).resolve()
        hit = next((o for path, o in outputs.items() if real == path or path in real.parents), None)
        if hit is not None:
            rel = real.relative_to(build_dir)
            mapping[value] = str(artifacts / rel)
        elif real == repo or repo in real.parents:
            raise UsageError(
                f"profile {profile.name}: {role} {value} is inside the repository {repo} but is not a build output, "
                f"so it would come from your working tree, not from the revision; add it to build.outputs"
            )
    if not mapping:
        raise UsageError(
            f"profile {profile.name}: none of its files is a build output ({', '.join(profile.build.outputs)}), so "
            f"a build would change nothing it boots; point kernel/initrd/drives at the outputs"
        )
    return mapping


def _state_log(name: str) -> Path:
    from bootlab.paths import state_dir

    folder = state_dir() / "builds"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


def run_command(
    build: Build,
    cwd: Path,
    log: Path,
    *,
    what: str,
    stream: IO[str] | None = None,
    env: dict[str, str] | None = None,
    on_start: Callable[[int | None], None] | None = None,
    at_revision: bool = False,
) -> float:
    """Run the build command in ``cwd``, its output (stdout and stderr) to ``log`` and, line by line, to
    ``stream``. It runs in its own process group with a parent-death signal, and the group is stopped on any
    exit of ours (Ctrl-C included). Returns the seconds it took; a failure is a :class:`BuildError`.

    A command that is missing or not executable is the user's to fix (:class:`UsageError`), except a file of the
    tree (a path such as ``./build.sh``) ``at_revision``: in a checkout of a commit (``--rev``, a bisect, or the
    commit `git bisect run` put in place) it is what that commit contains, a build error of that commit. A
    program looked up on PATH (``make``, ``cargo``) that is not installed is missing at every commit alike."""
    from bootlab.qemu.process import child_setup

    argv = ["sh", "-c", build.command] if isinstance(build.command, str) else list(build.command)
    full_env = {**for_user_commands(), **build.env, **(env or {})}
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    last = ""
    with log.open("w", encoding="utf-8", errors="replace") as out:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=child_setup(os.getpid(), signal.SIGKILL, umask=None),
            )
        except (FileNotFoundError, PermissionError) as exc:
            problem = "not found" if isinstance(exc, FileNotFoundError) else "is not executable"
            if not (at_revision and "/" in argv[0]):
                fix = "fix build.command or install it" if problem == "not found" else "fix build.command"
                raise UsageError(f"{what}: build command {argv[0]!r} {problem} (in {cwd}); {fix}") from None
            # a property of the commit (one from before its build script existed, say): that commit cannot be
            # built, which a bisect skips, rather than a mistake of the user's that ends the whole command
            message = f"{what}: build command {argv[0]!r} {problem} at this revision (in {cwd}); log: {log}"
            out.write(message + "\n")
            raise BuildError(message) from None
        if on_start is not None:
            on_start(proc.pid)
        timer = None
        timed_out = threading.Event()
        if build.timeout:

            def expire() -> None:
                timed_out.set()
                _stop(proc)

            timer = threading.Timer(build.timeout, expire)
            timer.daemon = True
            timer.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", errors="replace")
                out.write(line)
                out.flush()
                if line.strip():
                    last = line.strip()
                if stream is not None:
                    stream.write(line)
                    stream.flush()
            code = proc.wait()
        except BaseException:
            _stop(proc)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if on_start is not None:
                on_start(None)
            _stop(proc)  # the command's own children may outlive it: the group goes with the build
    seconds = time.monotonic() - started
    if timed_out.is_set():
        raise BuildError(f"{what}: the build ran out of its {build.timeout:g} s timeout in {cwd}; log: {log}")
    if code != 0:
        from bootlab.qemu.process import exit_status

        tail = f": {last[:200]}" if last else ""
        raise BuildError(
            f"{what}: the build failed (exit {exit_status(code)}) after {seconds:.1f} s in {cwd}{tail}; log: {log}"
        )
    missing = [o for o in build.outputs if not (cwd / o).exists()]
    if missing:
        raise BuildError(
            f"{what}: the build succeeded but did not produce {', '.join(missing)} (in {cwd}); fix the build or "
            f"build.outputs; log: {log}"
        )
    return seconds


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the build's process group: SIGTERM, then SIGKILL after 3 s."""
    from bootlab.qemu.process import kill_group

    if proc.poll() is None:
        kill_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(3)
    kill_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def build_in_place(
    project: Project, name: str, sets: list[str], *, stream: IO[str] | None = None, at_revision: bool = False
) -> Built:
    """``bootlab build``: run the build in the user's tree; the profile then boots the outputs where they are.
    ``at_revision``: the tree is a commit someone else picked (`git bisect run`), see :func:`run_command`."""
    from bootlab.source.revision import revision_of

    profile = build_profile(project, name, sets)
    assert profile.build is not None
    cwd = Path(profile.build.dir)
    if not cwd.is_dir():
        raise UsageError(f"profile {name}: build.dir {cwd} does not exist; fix build.dir in the profile")
    log = _state_log(name)
    revision = revision_of(profile)
    env = {"BOOTLAB_COMMIT": revision.commit} if revision and revision.commit else {}
    seconds = run_command(
        profile.build, cwd, log, what=f"build of {name}", stream=stream, env=env, at_revision=at_revision
    )
    outputs = {o: str(cwd / o) for o in profile.build.outputs}
    return Built(name, revision_of(profile), outputs, log=str(log), seconds=seconds)


def _cache_key(profile: Profile, repo: Path, commit: str) -> str:
    assert profile.build is not None
    table = profile.build.model_dump(mode="json")
    table["dir"] = str(Path(profile.build.dir).resolve().relative_to(repo))
    blob = json.dumps({"repo": str(repo), "commit": commit, "build": table}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def builds_root() -> Path:
    from bootlab.paths import cache_dir

    return cache_dir() / "builds"


def build_revision(
    project: Project,
    name: str,
    sets: list[str],
    *,
    commit: str,
    rev: str | None,
    checkout: Callable[[], Checkout],
    stream: IO[str] | None = None,
    rebuild: bool = False,
    announce: Callable[[str], None] | None = None,
) -> Built:
    """The build of ``commit``: from the cache when this commit was built with this build table before, else
    checked out in ``checkout()`` (called only then, so a cached build needs no worktree), built there and its
    outputs copied into the cache."""
    profile = build_profile(project, name, sets)
    assert profile.build is not None
    repo = repository(profile)
    key = _cache_key(profile, repo, commit)
    final = builds_root() / key
    mapping = output_map(profile, repo, final / "files")
    revision = Revision(dir=profile.build.dir, commit=commit, rev=rev, checkout=True)
    meta = final / "build.json"
    what = f"build of {name} at {commit[:12]}" + (f" ({rev})" if rev and not commit.startswith(rev) else "")
    outputs = {o: str(final / "files" / o) for o in profile.build.outputs}
    if meta.is_file() and not rebuild and all(Path(p).exists() for p in outputs.values()):
        return Built(name, revision, outputs, mapping, str(final / "build.log"), 0.0, cached=True)
    rel = Path(profile.build.dir).resolve().relative_to(repo)
    tree = checkout()
    if announce is not None:
        announce(f"building {name} at {commit[:12]} in {tree.path}")
    tree.switch(commit)
    cwd = tree.path / rel
    if not cwd.is_dir():
        raise BuildError(f"{what}: build.dir {rel} does not exist at this revision")
    staging = builds_root() / f"{key}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log = builds_root() / f"{key}.log"  # stays here when the build fails (the error names it)
    env = {"BOOTLAB_COMMIT": commit, "BOOTLAB_REV": rev or commit}
    try:
        seconds = run_command(
            profile.build, cwd, log, what=what, stream=stream, env=env, on_start=tree.building, at_revision=True
        )
        log.replace(staging / "build.log")
        for out in profile.build.outputs:
            src, dst = cwd / out, staging / "files" / out
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, symlinks=True)
            else:
                shutil.copy2(src, dst)
        meta_data = {"commit": commit, "profile": name, "built": time.time(), "seconds": seconds}
        (staging / "build.json").write_text(json.dumps(meta_data))
        _install(staging, final, replace=rebuild)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Built(name, revision, outputs, mapping, str(final / "build.log"), seconds)


def _install(staging: Path, final: Path, *, replace: bool) -> None:
    """Move a finished build into place. Another bootlab may have built the same commit meanwhile and be booting
    from it: a complete build already there is kept (ours is dropped) unless ``replace`` (``--rebuild``)."""
    if (final / "build.json").is_file() and not replace:
        shutil.rmtree(staging, ignore_errors=True)
        return
    if final.exists():
        old = final.with_name(f"{final.name}.old-{os.getpid()}")
        final.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    staging.rename(final)


def build_at(
    project: Project,
    name: str,
    sets: list[str],
    rev: str,
    *,
    what: str = "--rev",
    stream: IO[str] | None = None,
    announce: Callable[[str], None] | None = None,
    rebuild: bool = False,
) -> Built:
    """Build revision ``rev`` (as the user named it) of the profile's repository, in a checkout that is gone
    when this returns (also on errors and Ctrl-C)."""
    from bootlab.source import git
    from bootlab.source.checkout import Checkout

    profile = build_profile(project, name, sets)
    repo = repository(profile)
    commit = git.resolve(repo, rev, what=what)
    with contextlib.ExitStack() as stack:

        def open_checkout() -> Checkout:
            return stack.enter_context(Checkout(repo))

        return build_revision(
            project,
            name,
            sets,
            commit=commit,
            rev=rev,
            checkout=open_checkout,
            stream=stream,
            rebuild=rebuild,
            announce=announce,
        )
