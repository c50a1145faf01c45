"""Fallback: when a profile's boot ends in ``crash`` or ``hang``, retry once under ``profile.fallback``.

The user's notes: HVF crashes at random, the cortex-a72 TCG config boots; so the ``redox-aarch64`` preset names
``redox-aarch64-tcg`` as its fallback. Only guest failures that another configuration may avoid trigger it:
``crash`` and ``hang``, never ``qemu-error``/``infra-error`` (QEMU refusing its arguments is not fixed by other
arguments of the same kind) and never ``timeout``. Both verdicts are kept, and the switch is announced loudly.
Trials never fall back: they measure one profile.

:func:`boot_with_fallback` is the one place that applies the rule: ``bootlab boot --fallback`` passes an
observed boot, ``bootlab vm launch`` a boot of the named VM (its overlay reset between attempts, see
:func:`bootlab.vm.manager.launch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootlab.profile.model import Profile
    from bootlab.verdict import Verdict

FALLBACK_OUTCOMES = frozenset({"crash", "hang"})


def should_fall_back(profile: Profile, verdict: Verdict) -> bool:
    return bool(profile.fallback) and verdict.outcome in FALLBACK_OUTCOMES


def announcement(profile: Profile, verdict: Verdict) -> str:
    title = f": {verdict.title}" if verdict.title else ""
    return (
        f"FALLBACK: {profile.name} ended in {verdict.outcome}{title}; "
        f"retrying once under its fallback profile {profile.fallback}"
    )


@dataclass
class Attempt:
    profile: Profile
    verdict: Verdict


def boot_with_fallback(
    profile: Profile,
    boot: Callable[[Profile], Verdict],
    resolve: Callable[[str], Profile],
    announce: Callable[[str], None],
) -> list[Attempt]:
    """Boot ``profile``; on crash/hang with a ``fallback``, announce and boot the fallback once.

    ``resolve(name)`` must resolve the fallback with the same ``--set`` overrides and seed as the first;
    the last attempt's verdict is the result (exit code), the list keeps both for the report/JSON.
    """
    first = Attempt(profile, boot(profile))
    if not should_fall_back(profile, first.verdict):
        return [first]
    announce(announcement(profile, first.verdict))
    fb = resolve(profile.fallback or "")
    return [first, Attempt(fb, boot(fb))]
