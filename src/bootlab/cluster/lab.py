"""A :class:`~bootlab.lab.lab.Lab` whose boots run on the cluster's workers.

Everything a trial, matrix or comparison does stays the Lab's: resolving and linting arms, recording them in the
local store, seeds, the runner, summaries. This class changes three things only:

- **check**: before anything is stored, each arm is placed (some worker must offer its accelerator resource,
  else one line, exit 3) and linted against the probe of a worker that will run it, not against this machine
  (a laptop driving KVM boxes lints for KVM);
- **run**: the runner's boot function is :meth:`ClusterRun.boot`, and ``jobs`` defaults to the boots the
  matching workers can run at once (their slots); which accelerator each profile asks for and which workers
  could not boot it are kept across runs (a bisect's batches are one run each);
- a run stopped because the scheduler went away raises one line (exit 3) once the trial (or bisect) is stored
  as interrupted, naming where its finished boots are.

A bisect's batches run through :meth:`Lab.run` like a trial's boots, so they fan out the same way; without
``-j`` a batch is as many boots as the matching workers' slots take at once (:meth:`default_jobs`).
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any, TextIO

from bootlab.cluster.client import ClusterRun
from bootlab.cluster.resources import Placement, WorkerView, capacity, place
from bootlab.errors import InfraError
from bootlab.lab.lab import ArmSpec, Checked, Lab
from bootlab.lab.runner import Arm, Progress, RunResult, run_arms

if TYPE_CHECKING:
    from bootlab.cluster.config import ClusterConfig
    from bootlab.host import Host
    from bootlab.lab.bisect import BisectSpec
    from bootlab.lab.results import ComparisonResult, MatrixResult, TrialResult
    from bootlab.profile.loader import Project
    from bootlab.profile.model import Profile
    from bootlab.source.revision import Revision
    from bootlab.store.db import Store


class ClusterLab(Lab):
    def __init__(
        self,
        project: Project,
        host: Host,
        store: Store | None,
        *,
        cluster: ClusterConfig,
        force: bool = False,
        quiet: bool = False,
        stream: TextIO | None = None,
        revision: Revision | None = None,
    ) -> None:
        super().__init__(project, host, store, force=force, revision=revision)
        self.cluster = cluster
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.lost: str | None = None
        self._workers: list[WorkerView] | None = None
        self._said: set[str] = set()
        # what the runs learn, kept across them (each run() is a new ClusterRun: a bisect's every batch)
        self._placements: dict[tuple[Any, ...], Placement] = {}
        self._banned: dict[str, dict[str, str]] = {}

    def workers(self) -> list[WorkerView]:
        """The bootlab workers there are now (asked once, before the first arm is checked)."""
        if self._workers is None:

            async def ask() -> list[WorkerView]:
                async with ClusterRun(self.cluster, self.project.root, stream=self.stream) as run:
                    return list(run.workers.values())

            self._workers = asyncio.run(ask())
        return self._workers

    def check(self, spec: ArmSpec, seed: int, host: Host | None = None) -> Checked:
        from bootlab.host import from_dict

        placement = place(self.resolve(spec, seed, 0), self.workers(), self.cluster.address)
        if not self.quiet and placement.reason not in self._said:
            self._said.add(placement.reason)
            names = ", ".join(w.name for w in placement.workers)
            print(f"{placement.reason}: {names}", file=self.stream)
        return super().check(spec, seed, host=host or from_dict(placement.workers[0].info["probe"]))

    def run(self, arms: list[Arm], *, jobs: int | None, progress: Progress | None) -> RunResult:
        return asyncio.run(self._run(arms, jobs, progress))

    def default_jobs(self, profile: Profile) -> int:
        """The boots of ``profile`` the workers that may run it take at once (their slots)."""
        return capacity([place(profile, self.workers(), self.cluster.address)])

    async def _run(self, arms: list[Arm], jobs: int | None, progress: Progress | None) -> RunResult:
        async with ClusterRun(
            self.cluster, self.project.root, stream=self.stream, placements=self._placements, banned=self._banned
        ) as run:
            run.main_task = asyncio.current_task()
            placements = [run.placement(arm.make_profile(0, arm.seed(0))) for arm in arms]
            result = await run_arms(
                arms,
                run.boot,
                jobs=jobs or capacity(placements),
                store=self.store,
                host=self.host,
                progress=progress,
            )
        if run.lost is not None:
            self.lost = run.lost
            result.interrupted = True
        return result

    def _checked(self, ref: str | None, then: str | None = None) -> None:
        """The scheduler went away: the result is stored (as interrupted); say so in one line, exit 3."""
        if self.lost is None:
            return
        then = then or f"`bootlab show {ref}`"
        kept = f"finished boots are kept in {ref} ({then})" if ref else "finished boots were not stored"
        raise InfraError(f"{self.lost}; {kept}")

    def trial(self, spec: ArmSpec, **kwargs: Any) -> TrialResult:
        result = super().trial(spec, **kwargs)
        self._checked(result.trial)
        return result

    def matrix(self, profile: str, sets: list[str], axes: list[str], **kwargs: Any) -> MatrixResult:
        result = super().matrix(profile, sets, axes, **kwargs)
        self._checked(result.matrix)
        return result

    def compare(self, a: ArmSpec, b: ArmSpec, **kwargs: Any) -> ComparisonResult:
        result = super().compare(a, b, **kwargs)
        self._checked(result.comparison)
        return result

    def bisect(self, spec: BisectSpec, **kwargs: Any) -> dict[str, Any]:
        result = super().bisect(spec, **kwargs)
        self._checked(result["bisect"], f"`bootlab bisect --resume {result['bisect']}` carries on")
        return result

    def resume_bisect(self, bisect_id: int, **kwargs: Any) -> dict[str, Any]:
        result = super().resume_bisect(bisect_id, **kwargs)
        self._checked(result["bisect"], f"`bootlab bisect --resume {result['bisect']}` carries on")
        return result
