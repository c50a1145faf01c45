"""Locked profiles: the user's "NEVER MODIFY" run-backup.sh, enforced.

`bootlab lock PROFILE` records the profile's canonical argv (console on stdio, `{seed}`/`{boot}` left as
placeholders, so the lock does not change from boot to boot) and its sha256 in `bootlab.lock` beside the project
file. Any later run of that profile whose canonical argv differs, through an edit, a preset change or a `--set`,
is refused with the difference shown; `bootlab lock PROFILE --update` relocks on purpose.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from bootlab.errors import UsageError
from bootlab.paths import atomic_write
from bootlab.profile.loader import Project

LOCK_FILE = "bootlab.lock"


def lock_path(project: Project) -> Path:
    return project.root / LOCK_FILE


def read_locks(project: Project) -> dict[str, Any]:
    path = lock_path(project)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable lock file ({exc}); restore it from version control") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles", {}), dict):
        raise UsageError(f"{path}: not a bootlab lock file; restore it from version control")
    profiles: dict[str, Any] = data.get("profiles", {})
    return profiles


def write_lock(project: Project, name: str, argv: list[str], sha256: str) -> Path:
    path = lock_path(project)
    profiles = read_locks(project)
    profiles[name] = {"argv": argv, "sha256": sha256}
    atomic_write(path, json.dumps({"version": 1, "profiles": dict(sorted(profiles.items()))}, indent=2) + "\n")
    return path


def argv_diff(locked: list[str], current: list[str]) -> str:
    """What changed, option by option: `-cpu cortex-a72 -> -cpu max`, `- -nographic`, `+ -smp 2`."""
    from bootlab.qemu.invocation import option_groups

    old = [" ".join(g) for g in option_groups(locked)]
    new = [" ".join(g) for g in option_groups(current)]
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op == "replace" and i2 - i1 == j2 - j1:
            parts += [f"{a} -> {b}" for a, b in zip(old[i1:i2], new[j1:j2], strict=True)]
        elif op != "equal":
            parts += [f"- {a}" for a in old[i1:i2]] + [f"+ {b}" for b in new[j1:j2]]
    return "; ".join(parts)


def check_lock(project: Project, name: str, argv: list[str], sha256: str) -> None:
    """Refuse a locked profile whose canonical argv changed."""
    entry = read_locks(project).get(name)
    if entry is None or entry.get("sha256") == sha256:
        return
    raise UsageError(
        f"profile {name} is locked in {lock_path(project)} and its command line changed "
        f"({argv_diff(list(entry.get('argv', [])), argv)}); undo the change, or relock on purpose with "
        f"`bootlab lock {name} --update`"
    )
