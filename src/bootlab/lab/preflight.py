"""Everything checked before a boot starts, in one place for every caller (`run`, `boot`, trials, named VMs).

In order: the lock (a locked profile whose command line changed is refused), the profile itself, its packs (an
unknown pack name is a usage error now, not an infra-error on every boot of a trial), its `fallback` (a wrong
name is found before the first boot, not after it crashed), the QEMU argv, the files it names, and lint with the
project's own rules. Lint errors are returned, not raised: the CLI refuses unless `--force`, a matrix shows the
cell as refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bootlab.errors import UsageError

if TYPE_CHECKING:
    from bootlab.host import Host
    from bootlab.lint import Finding
    from bootlab.packs.loader import PackSet
    from bootlab.profile.loader import Project
    from bootlab.profile.model import Profile
    from bootlab.qemu.invocation import Invocation
    from bootlab.qemu.runtime import RuntimeDir


@dataclass
class Preflight:
    project: Project
    profile: Profile
    host: Host
    invocation: Invocation
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def warn(self, stream: TextIO) -> None:
        """Print what may break this boot (warnings and errors; `bootlab lint` shows the info notes too)."""
        for f in self.findings:
            if f.severity != "info":
                print(f"lint {f.severity}: [{f.id}] {f.message}", file=stream)

    def refuse_on_errors(self, force: bool = False) -> None:
        """The CLI's rule: lint errors refuse the boot unless --force."""
        if self.errors and not force:
            raise lint_refusal(f"profile {self.profile.name}", [f.id for f in self.errors])


def lint_refusal(what: str, rule_ids: list[str]) -> UsageError:
    """The one line that refuses to boot what lint found errors in (a boot, a trial's or comparison's arm)."""
    return UsageError(
        f"{what}: lint refuses to boot ({', '.join(rule_ids)}); fix the profile, or boot anyway with --force"
    )


def lint_rule_dirs(project_file: Path | None) -> list[Path]:
    """The project's own lint rules: `lint/*.toml` beside bootlab.toml."""
    if project_file is None:
        return []
    folder = project_file.resolve().parent / "lint"
    return [folder] if folder.is_dir() else []


def canonical_invocation(project: Project, name: str, sets: list[str] | tuple[str, ...], host: Host) -> Invocation:
    """The profile with `{seed}`/`{boot}` unfilled and the console on stdio: what scripts and locks record."""
    from bootlab.profile.loader import resolve_profile
    from bootlab.qemu.invocation import build_invocation

    return build_invocation(resolve_profile(name, project=project, sets=sets, keep_builtins=True), host)


def check_lock(project: Project, name: str, sets: list[str] | tuple[str, ...], host: Host) -> None:
    """Refuse a locked profile whose command line changed (nothing to do when no lock names it)."""
    from bootlab.profile.lock import check_lock as _check
    from bootlab.profile.lock import read_locks

    if name not in read_locks(project):
        return
    inv = canonical_invocation(project, name, sets, host)
    _check(project, name, inv.argv, inv.sha256)


def require_packs(profile: Profile, project_dir: Path | None) -> PackSet:
    """The packs that read an observed boot of ``profile``: it must name some, and they must exist (loaded and
    compiled once per process, then cached). A profile with checks needs a pack that knows its shell prompt:
    checks run at that prompt, once the packs have logged in."""
    from bootlab.packs.loader import load_packs

    if not profile.pack:
        raise UsageError(f'profile {profile.name} names no pack; add pack = ["linux"] (or redox, edk2, ...) to it')
    packs = load_packs(profile.pack, project_dir)
    if profile.checks and not packs.shell:
        raise UsageError(
            f"profile {profile.name} has checks ({', '.join(c.name for c in profile.checks)}), but its packs "
            f"({', '.join(profile.pack)}) know no shell prompt to run them at; add a pack with a [ready] shell "
            f"prompt (linux, redox, or your own), or drop the checks"
        )
    return packs


def require_checks_sendable(profile: Profile) -> Profile:
    """Every check must be able to reach the guest: its script a readable file, script or command no bigger than
    what bootlab sends over a console. Said now, not as an error in every boot of a trial. Returns ``profile``
    with each script's text read (:meth:`~bootlab.profile.model.Check.with_text`): the boots send that text, so a
    script edited or removed during a trial does not change its later boots."""
    if not profile.checks:
        return profile
    from bootlab.console.shell import MAX_STAGED, command_text

    checks = []
    for check in profile.checks:
        where = f"profile {profile.name}: check {check.name}"
        if check.script is None:
            size = len(command_text(check.command or []).encode())
        else:
            try:
                with open(check.script, "rb") as fh:
                    text = fh.read(MAX_STAGED + 1)
                    size = max(len(text), os.fstat(fh.fileno()).st_size)
            except OSError as exc:
                raise UsageError(
                    f"{where}: cannot read its script {check.script} ({exc.strerror or exc}); fix the path or its "
                    "permissions"
                ) from None
            check = check.with_text(text)
        if size > MAX_STAGED:
            raise UsageError(
                f"{where}: it is {size} bytes, more than bootlab sends over a console ({MAX_STAGED} bytes); put the "
                "work in a file the guest already has (its image, or a --mount share) and run that"
            )
        checks.append(check)
    return profile.model_copy(update={"checks": checks})


def check_fallback(profile: Profile, project: Project, sets: list[str] | tuple[str, ...]) -> None:
    from bootlab.profile.loader import resolve_profile

    if not profile.fallback:
        return
    try:
        resolve_profile(profile.fallback, project=project, sets=sets, seed=profile.seed)
    except UsageError as exc:
        raise UsageError(f"profile {profile.name}: fallback = {profile.fallback!r} does not resolve: {exc}") from None


def preflight(
    project: Project,
    name: str,
    *,
    sets: list[str] | tuple[str, ...] = (),
    seed: int | None = None,
    boot_index: int = 0,
    host: Host | None = None,
    runtime: RuntimeDir | None = None,
    observed: bool = True,
    booted: bool = True,
) -> Preflight:
    """Resolve and check ``name`` for one boot. ``observed`` (a boot bootlab watches) also checks the packs.

    ``booted=False`` is for `bootlab script`, which writes the command instead of running it: a missing file is
    left in ``invocation.problems`` (the script may run where the file is) and lint is `bootlab lint`'s job."""
    from bootlab.lint import check_invocation
    from bootlab.profile.loader import resolve_profile
    from bootlab.qemu.invocation import build_invocation

    if host is None:
        from bootlab.host import probe

        host = probe()
    check_lock(project, name, sets, host)
    profile = resolve_profile(name, project=project, sets=sets, seed=seed, boot_index=boot_index)
    if observed:
        require_packs(profile, project.root)
        profile = require_checks_sendable(profile)
    check_fallback(profile, project, sets)
    inv = build_invocation(profile, host, runtime)
    if not booted:
        return Preflight(project=project, profile=profile, host=host, invocation=inv)
    inv.require_runnable()  # a missing file is the clearer message, and --force cannot fix it
    findings = list(check_invocation(inv, profile, host, rule_dirs=lint_rule_dirs(project.path)))
    return Preflight(project=project, profile=profile, host=host, invocation=inv, findings=findings)
