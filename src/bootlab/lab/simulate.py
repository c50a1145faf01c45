"""Simulated boots: verdicts without QEMU, for unit tests of the lab and for ``bench/sequential``.

:func:`redox_sim_outcome` is the redox-sim guest's own decision procedure (guests/rootfs/redoxsim/init and
rng.sh), ported to Python: given the VM it runs in and the seed, it says whether the boot dies and whether a
daemon incident shows. The E2E tests use it to pick seeds whose outcome is known before QEMU starts; the unit
tests and the sequential benchmark use :func:`sim_boot_fn` to run trials in milliseconds. Nothing here claims a
boot happened: simulated verdicts have no log and no argv.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bootlab.verdict import Incident, StageTime, Verdict

if TYPE_CHECKING:
    from bootlab.lab.runner import BootFn
    from bootlab.profile.model import Profile

M32 = 0xFFFFFFFF
THRESHOLDS = {"icache-fix": 800, "dsb-wfi": 400, "isb-barriers": 0}


def _mix32(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def draw(seed: int, k: int) -> int:
    """rng.sh's ``draw K``: lowbias32((seed ^ (K+1)*0x9E3779B9) mod 2^32) mod 1000."""
    return _mix32((seed ^ (((k + 1) * 0x9E3779B9) & M32)) & M32) % 1000


def redox_sim_outcome(
    seed: int, *, cpu: str, smp: int = 1, highmem: str = "on", build: str = "isb-barriers"
) -> tuple[bool, bool]:
    """(fatal, incident) exactly as the redox-sim init decides them."""
    d_fatal, d_incident, d_highmem = draw(seed, 1), draw(seed, 2), draw(seed, 3)
    fatal = cpu.split(",")[0] == "max" and (
        smp > 1 or d_fatal < THRESHOLDS.get(build, 0) or (highmem == "off" and d_highmem < 500)
    )
    return fatal, d_incident < 300


def profile_outcome(profile: Profile) -> tuple[bool, bool]:
    """redox_sim_outcome for a resolved redox-sim profile (cpu, smp, machine.highmem, vars.build, seed)."""
    cpu = profile.cpu_for("tcg") or "max"
    highmem = profile.machine.options.get("highmem", "on")
    build = profile.vars.get("build", "isb-barriers") or "isb-barriers"
    return redox_sim_outcome(profile.seed, cpu=cpu, smp=profile.smp, highmem=highmem, build=build)


def sim_verdict(seed: int, fatal: bool, incident: bool, duration: float = 0.0) -> Verdict:
    stages = [StageTime(name=n, t=t) for n, t in (("bootloader", 1.9), ("kernel", 2.2), ("userspace", 2.2))]
    incidents = (
        [Incident(kind="daemon", title="redox: pcid-spawner died", process="pcid-spawner", line="...", t=2.25)]
        if incident
        else []
    )
    if fatal:
        return Verdict(
            outcome="crash",
            stage="userspace",
            stages=stages,
            title="redox: UNHANDLED EXCEPTION in NUM",
            seed=seed,
            incidents=incidents,
            duration_s=duration,
        )
    stages.append(StageTime(name="login", t=2.4))
    return Verdict(outcome="pass", stage="login", stages=stages, seed=seed, incidents=incidents, duration_s=duration)


def sim_boot_fn(outcome: Callable[[Profile], tuple[bool, bool]] = profile_outcome, *, delay: float = 0.0) -> BootFn:
    """A boot function that answers from ``outcome(profile)`` instead of booting; ``delay`` simulates its length."""

    async def run(profile: Profile, log_path: Path) -> Verdict:
        if delay:
            await asyncio.sleep(delay)
        fatal, incident = outcome(profile)
        return sim_verdict(profile.seed, fatal, incident, delay)

    return run


def bernoulli_boot_fn(rate: float, *, delay: float = 0.0) -> BootFn:
    """A guest that passes with probability ``rate``, drawn from the boot's seed (so runs replay)."""

    async def run(profile: Profile, log_path: Path) -> Verdict:
        if delay:
            await asyncio.sleep(delay)
        ok = random.Random(profile.seed).random() < rate
        return sim_verdict(profile.seed, not ok, False, delay)

    return run
