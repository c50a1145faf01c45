"""Stores filled for report tests (no tests here): trials whose boots replay recorded redox-sim console logs.

Each simulated boot picks a console log recorded from the real redox-sim guest (tests/packs/redox: a clean boot,
a boot with daemon incidents, four kinds of crash), classifies it with the real observer and redox pack (so
title, fatal line, stage and incidents are the ones a live boot gets), gives the stages seeded times, and writes
the log where the runner asks, so the store keeps it like a real boot's. Outcomes and times follow the profile:
``vars.build`` sets the pass rate, ``vars.slow`` adds seconds to every stage after the bootloader, ``vars.broken``
makes every boot an infra-error, ``smp`` > 1
with ``cpu = max`` always crashes (so a matrix has an all-failed cell), as the redox-sim guest does. Seeded:
a trial with the same seed base stores the same boots.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from test_trial_support import make_project

from bootlab.console.classify import classify_text
from bootlab.host import Host
from bootlab.lab.lab import Lab
from bootlab.lab.runner import BootFn
from bootlab.packs.loader import load_packs
from bootlab.profile.loader import load_project
from bootlab.profile.model import Profile
from bootlab.store.db import Store
from bootlab.verdict import StageTime, VcpuRegisters, Verdict

SAMPLES = Path(__file__).resolve().parent.parent / "packs" / "redox"
PASS_LOGS = ["guest-redox-sim-none.log", "guest-redox-sim-pcid-panic.log"]
CRASH_LOGS = [
    "guest-redox-sim-kernel-panic.log",
    "guest-redox-sim-el1-exception.log",
    "guest-redox-sim-lacks-grant.log",
    "guest-redox-sim-init-died.log",
]
RATES = {"isb-barriers": 1.0, "dsb-wfi": 0.6, "icache-fix": 0.2, "never": 0.0}
BASE_T = {"bootloader": 1.8, "menu": 1.95, "kernel": 2.15, "userspace": 2.2, "drivers": 2.5, "disk": 2.9, "login": 3.3}
PC = "ffffa1486a4da26c"


def rate_of(profile: Profile) -> float:
    if profile.smp > 1 and profile.cpu_for("tcg") == "max":
        return 0.0
    if profile.cpu_for("tcg") != "max":
        return 1.0
    return RATES.get(profile.vars.get("build", "isb-barriers"), 1.0)


def image_rate(profile: Profile) -> float:
    """A bisect's boots: the pass rate of the build baked into the image (the commit decides it), under -cpu max."""
    from gitrepo import build_name_in

    assert profile.initrd is not None
    return RATES[build_name_in(Path(profile.initrd))] if profile.cpu_for("tcg") == "max" else 1.0


def replay_boot_fn(rate: Callable[[Profile], float] = rate_of) -> BootFn:
    """Boots replaying recorded logs; ``rate(profile)`` is the share that pass (default: from ``vars.build``)."""
    packs = load_packs(["redox"])
    texts = {name: (SAMPLES / name).read_text() for name in PASS_LOGS + CRASH_LOGS}
    classified: dict[str, Verdict] = {}  # the observer's verdict depends on the text only: classify each once

    async def run(profile: Profile, log_path: Path) -> Verdict:
        if profile.vars.get("broken"):  # bootlab cannot run the boot at all: an infra-error, excluded from the rate
            raise RuntimeError(f"cannot start QEMU: {profile.vars['broken']}")
        rng = random.Random(profile.seed)
        ok = rng.random() < rate(profile)
        hang = not ok and rng.random() < 0.15
        if ok or hang:
            name = PASS_LOGS[0] if rng.random() < 0.7 else PASS_LOGS[1]
        else:
            name = CRASH_LOGS[min(len(CRASH_LOGS) - 1, int(rng.random() ** 2 * len(CRASH_LOGS)))]
        text = texts[name]
        if hang:  # the console goes quiet after the drivers start: cut the clean log there
            text = text[: text.index("pcid")]
        log_path.write_text(text)
        if text not in classified:
            classified[text] = classify_text(text, packs)
        v = classified[text]
        slow = float(profile.vars.get("slow", "0") or 0)
        stages = []
        for s in v.stages:
            base = BASE_T.get(s.name, 2.0) + (slow if s.name not in ("bootloader", "menu") else 0.0)
            stages.append(StageTime(name=s.name, t=round(base + rng.gauss(0, 0.04) + 0.1 * rng.random() ** 4, 3)))
        last = stages[-1].t if stages and stages[-1].t is not None else 2.0
        fatal_t = round(last + 0.01, 3) if v.fatal_line else None
        outcome = "pass" if ok else ("hang" if hang else "crash")
        registers = []
        if outcome != "pass":
            raw = f"PC={PC} X00=0000000000000000\nSP_EL1=ffffa1486b4b3d50\n"
            registers = [VcpuRegisters(cpu=0, pc=PC, sp="ffffa1486b4b3d50", lr="ffffa1486a4da284", raw=raw)]
        return v.model_copy(
            update={
                "outcome": outcome,
                "stage": v.stage,
                "stages": stages,
                "fatal_t": fatal_t,
                "duration_s": round(last + (0.4 if outcome == "crash" else 30.0 if hang else 0.2), 3),
                "log": str(log_path),
                "seed": profile.seed,
                "accel": "tcg",
                "registers": registers,
                "argv": [
                    "qemu-system-aarch64",
                    "-M",
                    "virt",
                    "-cpu",
                    profile.cpu_for("tcg") or "max",
                    "-append",
                    profile.append or "",
                ],
                "title": v.title if outcome == "crash" else ("hang after " + (v.stage or "start") if hang else None),
            }
        )

    return run


def make_report_lab(root: Path, host: Host) -> Lab:
    """A project with the `sim` profile, a store under ``root/store`` and boots replaying recorded logs."""
    config = make_project(root)
    return Lab(load_project(config), host, Store(root / "store"), boot_fn=replay_boot_fn())


def make_bisect_lab(root: Path, host: Host, builds: list[str], script: str | None = None) -> tuple[Lab, list[str]]:
    """A git repository with one commit per build name (its build bakes the name into the image), the bisect
    project (bisect_support: profile ``sim`` builds it), a store under ``root/store``, boots replaying recorded
    logs at the rate of the image's build. Builds go to ``$BOOTLAB_CACHE``: point it under ``root`` first."""
    from bisect_support import make_bisect_project

    from gitrepo import commits

    config, repo = make_bisect_project(root, builds, **({"script": script} if script else {}))
    lab = Lab(load_project(config), host, Store(root / "store"), boot_fn=replay_boot_fn(image_rate))
    return lab, commits(repo)
