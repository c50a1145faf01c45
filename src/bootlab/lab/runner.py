"""Run the boots of one or more trials ("arms") concurrently, store each as it finishes, stop cleanly.

Trials, matrices and comparisons are all "some arms, each a profile + overrides + a boot cap", so they share
this engine:

- **Interleaved.** The next boot to start is taken round-robin over the arms that still need boots, so in a
  comparison A and B alternate and any drift of the host (thermal throttling, a build running next door) hits
  both alike; in a matrix every cell progresses together.
- **Budgeted.** At most ``jobs`` boots run at once, and (when ``jobs`` was not given) their vCPUs together stay
  within the host's cores: a 4-vCPU cell takes the whole budget of a 4-core host, so it is not slowed by a
  neighbour and its timing stays comparable.
- **One event loop, no threads.** Boots are :func:`bootlab.lab.boot.boot_async` coroutines. Cancelling one (Ctrl-C,
  or an arm that has just become confident) stops its QEMU through the boot's own clean-up. Store writes happen
  on the loop thread, one transaction per finished boot.
- **Interrupt.** The first Ctrl-C cancels the running boots (their VMs are stopped), keeps every finished boot,
  and returns with ``interrupted`` set; the caller marks the trials interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bootlab.lab.summary import BootRecord, Stopper, Tally, derive_seed
from bootlab.verdict import Verdict

if TYPE_CHECKING:
    from bootlab.host import Host
    from bootlab.profile.model import Profile
    from bootlab.source.revision import Revision
    from bootlab.store.db import Store

#: (profile, log path) -> verdict. The real one wraps boot_async; tests pass simulated guests.
BootFn = Callable[["Profile", Path], Awaitable[Verdict]]
#: (boot index, seed) -> the resolved profile of that boot.
ProfileFn = Callable[[int, int], "Profile"]


class Progress(Protocol):
    def start(self, arms: list[Arm]) -> None: ...
    def update(self, arm: Arm, record: BootRecord | None) -> None: ...
    def stop(self) -> None: ...


class NullProgress:
    def start(self, arms: list[Arm]) -> None:
        pass

    def update(self, arm: Arm, record: BootRecord | None) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class Arm:
    """One trial being run: how to make each boot's profile, how many boots at most, when to stop early."""

    label: str
    make_profile: ProfileFn
    n: int
    seed_base: int
    cap: int = 0  # the -n given; ``n`` shrinks to the boots started when an early stop decides
    seed_salt: str = ""
    strict: bool = False
    smp: int = 1
    trial_id: int | None = None
    stopper: Stopper | None = None  # may be shared by several arms (a comparison decides for both at once)
    revision: Revision | None = None  # where the images came from (a --rev build); None: asked of git per boot
    records: list[BootRecord] = field(default_factory=list)
    started: int = 0
    running: int = 0
    durations: list[float] = field(default_factory=list)
    stopped_early: bool = False

    def seed(self, idx: int) -> int:
        return derive_seed(self.seed_base, idx, self.seed_salt)

    @property
    def wants_more(self) -> bool:
        return self.started < self.n

    def tally(self) -> Tally:
        """The boots finished so far, counted as the trial's summary will count them."""
        return Tally.of((r.verdict for r in self.records), strict=self.strict)


def default_jobs(smp: int) -> int:
    """What the host can run without slowing each boot: cores // vCPUs, at least 1."""
    return max(1, (os.cpu_count() or 1) // max(1, smp))


def real_boot_fn(host: Host, project_dir: Path | None = None) -> BootFn:
    """The boot function trials use: one observed boot, its log written where the runner says."""
    from bootlab.lab.boot import BootOptions, boot_async

    async def run(profile: Profile, log_path: Path) -> Verdict:
        return await boot_async(profile, host=host, options=BootOptions(log_path=log_path, project_dir=project_dir))

    return run


@dataclass
class RunResult:
    interrupted: bool = False


async def _run_one(arm: Arm, idx: int, seed: int, boot_fn: BootFn, log_dir: Path) -> tuple[Arm, BootRecord, Any]:
    try:
        profile = arm.make_profile(idx, seed)
    except Exception as exc:  # a profile that resolved for boot 0 but not for this one: report, do not crash
        return arm, BootRecord(idx, seed, Verdict(outcome="infra-error", seed=seed, title=str(exc))), None
    log_path = log_dir / f"{arm.label.replace('/', '_').replace(' ', '_')}-{idx}.log"
    try:
        verdict = await boot_fn(profile, log_path)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # bootlab failed to run this boot: not the guest's fault, excluded from the rate
        verdict = Verdict(outcome="infra-error", seed=seed, title=f"bootlab: {exc}", log=str(log_path))
    if verdict.seed is None:
        verdict = verdict.model_copy(update={"seed": seed})
    return arm, BootRecord(idx, seed, verdict), profile


async def run_arms(
    arms: list[Arm],
    boot_fn: BootFn,
    *,
    jobs: int | None = None,
    store: Store | None = None,
    host: Host | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run every arm to its cap (or its early stop); store each boot as it finishes. Cancellation-safe."""
    progress = progress or NullProgress()
    cores = os.cpu_count() or 1
    limit = jobs if jobs is not None else default_jobs(min((a.smp for a in arms), default=1))
    budget = None if jobs is not None else cores
    # raw logs live here until the store keeps a compressed copy; the directory goes when the run ends, with or
    # without a store, interrupted or not
    scratch = tempfile.TemporaryDirectory(prefix="bootlab-trial-", ignore_cleanup_errors=True)
    log_dir = Path(scratch.name)
    running: dict[asyncio.Task[tuple[Arm, BootRecord, Any]], Arm] = {}
    vcpus_in_use = 0
    result = RunResult()
    rr = 0  # round-robin cursor
    progress.start(arms)

    def next_arm() -> Arm | None:
        nonlocal rr
        for k in range(len(arms)):
            arm = arms[(rr + k) % len(arms)]
            if arm.wants_more:
                need = min(arm.smp, cores)
                if budget is not None and running and vcpus_in_use + need > budget:
                    return None  # wait for room rather than overtake: keeps the interleaving fair
                rr = (rr + k + 1) % len(arms)
                return arm
        return None

    try:
        while True:
            while len(running) < limit:
                arm = next_arm()
                if arm is None:
                    break
                idx = arm.started
                arm.started += 1
                arm.running += 1
                vcpus_in_use += min(arm.smp, cores)
                task = asyncio.create_task(_run_one(arm, idx, arm.seed(idx), boot_fn, log_dir))
                running[task] = arm
            if not running:
                break
            done, _pending = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                arm = running.pop(task)
                arm.running -= 1
                vcpus_in_use -= min(arm.smp, cores)
                if task.cancelled():
                    continue  # a boot of an arm that became confident: its VM is stopped, it is not counted
                _, record, profile = task.result()
                if store is not None and profile is not None:
                    boot_id = store.record_boot(
                        record.verdict, profile, host, trial_id=arm.trial_id, idx=record.idx, revision=arm.revision
                    )
                    record.ref = f"b{boot_id}"
                    _drop_raw_log(record.verdict, log_dir)
                if _in_dir(record.verdict.log, log_dir):
                    # the raw log goes with the temp dir (a store keeps its own copy): do not point to it
                    record.verdict = record.verdict.model_copy(update={"log": None})
                arm.records.append(record)
                if record.verdict.duration_s is not None:
                    arm.durations.append(record.verdict.duration_s)
                if arm.stopper is not None and arm.stopper.decision is None:
                    tally = arm.tally()
                    if arm.stopper.check(tally.passed, tally.failed):
                        decided = [a for a in arms if a.stopper is arm.stopper]  # a shared stopper settles all
                        for a in decided:
                            a.stopped_early = a.started < a.n or a.running > 0
                            a.n = a.started  # start no more boots for this arm
                        # the decision is made: boots of these arms still running would not change it
                        for t, a in running.items():
                            if a in decided:
                                t.cancel()
                progress.update(arm, record)
    except asyncio.CancelledError:
        result.interrupted = True
        for t in running:
            t.cancel()
        # wait for every boot to stop its VM (each boot's own clean-up kills QEMU's process group)
        await asyncio.gather(*running, return_exceptions=True)
        for a in running.values():
            a.running = 0
        running.clear()
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    finally:
        progress.stop()
        scratch.cleanup()
    return result


def _in_dir(log: str | None, log_dir: Path) -> bool:
    return log is not None and Path(log).parent == log_dir


def _drop_raw_log(verdict: Verdict, log_dir: Path) -> None:
    """The store keeps a compressed copy; the raw log and its time index in the run's temp dir can go."""
    if verdict.log is None or not _in_dir(verdict.log, log_dir):
        return
    raw = Path(verdict.log)
    with contextlib.suppress(OSError):
        raw.unlink()
        raw.with_suffix(".times").unlink(missing_ok=True)
