"""One run's connection to the cluster, and the boot function the lab's runner calls for each boot.

:meth:`ClusterRun.boot` has the runner's ``BootFn`` shape, ``(profile, log path) -> Verdict``: the runner still
chooses which boot starts next, stops arms early and handles Ctrl-C; this only decides where a boot runs and
brings its verdict and log back. Per boot:

1. place it: the resource of the accelerator chosen for its profile (see :mod:`.resources`), on the workers
   offering it, minus those that could not boot this profile before;
2. make sure those workers have its files (:mod:`.files`), sending what they lack once per content hash;
3. submit one task (seed, profile and file hashes chosen here, so the boot replays locally with ``--seed``);
4. await it; write the log where the runner asked; return the verdict with the worker's host, QEMU and clocks.

Faults, and what the client does:

- A worker dies mid-boot (its QEMU dies with it): Dask re-runs the task on another worker; the start events
  each boot publishes (topic ``bootlab-boot``) let the client count runs, name the lost worker in the verdict,
  and cancel a boot whose second worker died too (an infra-error, not a third run).
- A worker returns an infra-error (missing QEMU, firmware, accelerator): it gets no more of that profile's boots.
  When no worker is left for a profile, its remaining boots are infra-errors at once, not pending forever.
- The scheduler goes away: Dask cancels every future; the run stops like an interrupt (finished boots are already
  stored) and :attr:`ClusterRun.lost` says why; the caller turns that into one line and exit 3.
- The runner cancels a boot (Ctrl-C, or its arm became confident): the task is cancelled and the worker is asked
  to stop the boot, and answers once its QEMU is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bootlab import __version__
from bootlab.cluster.files import CHUNK, FileRef, Hasher, boot_files, project_packs
from bootlab.cluster.resources import Placement, WorkerView, place
from bootlab.cluster.worker import TOPIC
from bootlab.errors import InfraError
from bootlab.verdict import Verdict, WorkerInfo

if TYPE_CHECKING:
    from bootlab.cluster.config import ClusterConfig
    from bootlab.profile.model import Profile

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler
REFRESH = 2.0  # seconds between looks at which workers are there
STOP_TIMEOUT = 30.0  # seconds a worker has to stop a cancelled boot
MAX_RUNS = 2  # a boot whose worker dies is re-run once
WORKER_GRACE = 30.0  # seconds to wait for a worker to (re)join when every one that could boot a profile left
LOST_TWICE = "bootlab-lost-twice"


@dataclass
class _Submitted:
    """A boot handed to Dask: its task key and future, when it was sent, and where it started (and died)."""

    key: str
    profile: str
    future: Any
    dispatched: float
    starts: list[tuple[str, str]] = field(default_factory=list)  # (worker address, worker name)
    lost: list[str] = field(default_factory=list)


class ClusterRun:
    """A connection to the scheduler for one run of arms (``async with``); :meth:`boot` is the runner's BootFn."""

    def __init__(
        self,
        config: ClusterConfig,
        project_root: Path | None = None,
        *,
        stream: TextIO | None = None,
        placements: dict[tuple[Any, ...], Placement] | None = None,
        banned: dict[str, dict[str, str]] | None = None,
    ):
        """``placements`` and ``banned``, when given, are the lab's and outlive this run: a bisect runs one
        ClusterRun per batch, and its next batch must ask for the same accelerator and spare the workers that
        could not boot the profile."""
        self.config = config
        self.stream = stream or sys.stderr
        self.client: Any = None
        self.workers: dict[str, WorkerView] = {}
        self.ignored: set[str] = set()
        self.hasher = Hasher()
        self.packs = project_packs(project_root)
        self.placements: dict[tuple[Any, ...], Placement] = {} if placements is None else placements
        # profile name -> worker address -> why
        self.banned: dict[str, dict[str, str]] = {} if banned is None else banned
        self.staging: dict[tuple[str, str, str], asyncio.Future[None]] = {}
        self.submitted: dict[str, _Submitted] = {}
        self.lost: str | None = None
        self.main_task: asyncio.Task[Any] | None = None
        self._refreshed = 0.0
        self._background: set[asyncio.Future[Any]] = set()

    # -- connection -------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> ClusterRun:
        from distributed import Client

        security = self.config.security("client")
        try:
            self.client = await asyncio.wait_for(
                Client(
                    self.config.address,
                    security=security,
                    asynchronous=True,
                    timeout=CONNECT_TIMEOUT,
                    name="bootlab",
                    set_as_default=False,
                ),
                CONNECT_TIMEOUT + 5,
            )
        except (OSError, TimeoutError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InfraError(
                f"cannot reach the scheduler at {self.config.address} ({self.config.source}): {reason}; "
                f"is `dask scheduler` running there (README: Cluster)?"
            ) from None
        self.client.subscribe_topic(TOPIC, self._on_start)
        await self.refresh(force=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.staging.values():
            task.cancel()
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), 5)

    async def refresh(self, force: bool = False) -> None:
        """Learn which bootlab workers are there now (new ones describe themselves once)."""
        if not force and time.monotonic() - self._refreshed < REFRESH:
            return
        from bootlab.cluster.worker import describe

        self._refreshed = time.monotonic()
        identity = await self.client.scheduler.identity()  # every worker (the default)
        current: dict[str, Any] = identity.get("workers", {})
        for address in [a for a in self.workers if a not in current]:
            del self.workers[address]
        new = [a for a in current if a not in self.workers and a not in self.ignored]
        if not new:
            return
        described = await self.client.run(describe, workers=new, on_error="return")
        for address in new:
            info = described.get(address)
            name = str(current[address].get("name") or address)
            if not isinstance(info, dict) or "bootlab" not in info:
                self.ignored.add(address)  # a plain Dask worker: not ours to use
                continue
            if info["bootlab"] != __version__:
                self.ignored.add(address)
                print(
                    f"bootlab: warning: worker {name} runs bootlab {info['bootlab']}, this is {__version__}: "
                    f"it gets no boots (install the same version there)",
                    file=self.stream,
                )
                continue
            resources = {k: float(v) for k, v in (current[address].get("resources") or {}).items()}
            self.workers[address] = WorkerView(address, name, resources, info)

    # -- placement --------------------------------------------------------------------------------------------------

    def placement(self, profile: Profile) -> Placement:
        """The resource this profile's boots ask for, chosen once per run so every boot of an arm asks alike."""
        key = (profile.arch, tuple(profile.accel), profile.smp)
        if key not in self.placements:
            self.placements[key] = place(profile, list(self.workers.values()), self.config.address)
        return self.placements[key]

    def candidates(self, placement: Placement, profile: Profile) -> list[WorkerView]:
        banned = self.banned.get(profile.name, {})
        return [
            w
            for w in self.workers.values()
            if w.resources.get(placement.resource, 0) > 0 and w.slots >= placement.slots and w.address not in banned
        ]

    async def _candidates_soon(self, placement: Placement, profile: Profile) -> list[WorkerView]:
        """The workers for this boot; when all that could run it left (not refused it), wait a little for one to
        join again (a restarting worker), rather than failing every remaining boot of the trial at once."""
        deadline = time.monotonic() + WORKER_GRACE
        while True:
            workers = self.candidates(placement, profile)
            if workers or self.banned.get(profile.name) or time.monotonic() > deadline:
                return workers
            await asyncio.sleep(REFRESH)
            await self._refresh_or_lose()

    def ban(self, profile: str, address: str, why: str) -> None:
        self.banned.setdefault(profile, {})[address] = why

    def _nowhere(self, profile: Profile, placement: Placement) -> Verdict:
        banned = self.banned.get(profile.name, {})
        names = {a: (self.workers[a].name if a in self.workers else a) for a in banned}
        detail = "; ".join(f"{names[a]}: {why}" for a, why in banned.items()) or "every worker offering it left"
        return Verdict(
            outcome="infra-error",
            seed=profile.seed,
            title=f"cluster: no worker left that can boot {profile.name} ({placement.resource}): {detail}",
        )

    # -- files ------------------------------------------------------------------------------------------------------

    async def stage(self, files: list[FileRef], workers: list[WorkerView]) -> dict[str, str]:
        """Make sure every worker has every file; returns the workers that could not get one, and why."""
        failures: dict[str, str] = {}

        async def one(w: WorkerView) -> None:
            for f in files:
                key = (w.address, f.sha256, f.path)
                task = self.staging.get(key)
                if task is None:
                    task = self.staging[key] = asyncio.ensure_future(self._send(w, f))
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.staging.pop(key, None)
                    failures[w.address] = f"could not receive {f.role} {f.path}: {exc}"
                    return

        await asyncio.gather(*(one(w) for w in workers))
        return failures

    async def _send(self, w: WorkerView, f: FileRef) -> None:
        from bootlab.cluster.worker import have_files, receive_chunk

        have = await self.client.run(have_files, [(f.path, f.sha256)], workers=[w.address])
        if have[w.address][0]:
            return
        token = uuid.uuid4().hex
        with open(f.path, "rb") as fh:
            offset = 0
            while True:
                data = await asyncio.to_thread(fh.read, CHUNK)
                final = offset + len(data) >= f.size
                args = (f.sha256, f.name, token, offset, data, final)
                await self.client.run(receive_chunk, *args, workers=[w.address])
                offset += len(data)
                if final:
                    return

    # -- boots ------------------------------------------------------------------------------------------------------

    async def boot(self, profile: Profile, log_path: Path) -> Verdict:
        """The runner's BootFn: run one boot on a worker, bring its verdict and log back."""
        from bootlab.cluster.worker import run_boot

        if self.lost is not None:
            raise asyncio.CancelledError
        await self._refresh_or_lose()
        placement = self.placement(profile)
        workers = await self._candidates_soon(placement, profile)
        files = await asyncio.to_thread(boot_files, profile, self.hasher)
        for address, why in (await self.stage(files, workers)).items():
            self.ban(profile.name, address, why)
        workers = [w for w in workers if w.address not in self.banned.get(profile.name, {})]
        if not workers:
            return self._nowhere(profile, placement)
        request = {
            "profile": profile.model_dump(mode="json"),
            "accel": placement.accel,
            "files": [(f.role, f.path, f.sha256) for f in files],
            "packs": self.packs,
        }
        key = f"bootlab-boot-{uuid.uuid4().hex}"
        dispatched = time.time()
        future = self.client.submit(
            run_boot,
            request,
            key=key,
            resources=placement.task_resources(),
            workers=[w.address for w in workers],
            allow_other_workers=False,
            pure=False,
            retries=0,
        )
        sub = self.submitted[key] = _Submitted(key, profile.name, future, dispatched)
        try:
            result = await self._result(sub, workers)
        except asyncio.CancelledError:
            if self.lost is None:
                await self._stop(sub, workers)
            raise
        finally:
            self.submitted.pop(key, None)
        return self._verdict(result, sub, profile, log_path)

    async def _refresh_or_lose(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            self._lose(f"lost the scheduler at {self.config.address} ({exc or type(exc).__name__})")
            raise asyncio.CancelledError from None

    async def _result(self, sub: _Submitted, workers: list[WorkerView]) -> dict[str, Any]:
        """The task's result, or ``{"error": why}``; the scheduler's loss stops the whole run."""
        from distributed.client import FutureCancelledError

        waiter = asyncio.ensure_future(sub.future.result())
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=REFRESH)
                if done:
                    return dict(waiter.result())
                await self._refresh_or_lose()
                if not any(w.address in self.workers for w in workers):
                    with contextlib.suppress(Exception):
                        await self.client.cancel([sub.future], reason="bootlab-no-worker")
                    return {"error": "every worker that could run this boot left the cluster"}
        except FutureCancelledError as exc:
            if exc.reason == LOST_TWICE:
                return {"error": f"its worker died twice ({', '.join(sub.lost)}); not run a third time"}
            if self.client.status != "running" or "connection" in exc.reason:
                self._lose(f"lost the scheduler at {self.config.address} mid-run")
                raise asyncio.CancelledError from None
            return {"error": f"Dask cancelled the task ({exc.reason})"}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # KilledWorker (the scheduler's own limit on dying workers), a worker-side error
            return {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            waiter.cancel()

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why
            if self.main_task is not None:
                self.main_task.cancel()

    def _on_start(self, event: tuple[float, dict[str, Any]]) -> None:
        """A boot started on a worker; a second start means its first worker died (Dask re-ran it)."""
        msg = event[1]
        sub = self.submitted.get(str(msg.get("key")))
        if sub is None:
            return
        if sub.starts:
            sub.lost.append(sub.starts[-1][1])
        sub.starts.append((str(msg.get("worker")), str(msg.get("name"))))
        if len(sub.starts) > MAX_RUNS:
            self._background.add(asyncio.ensure_future(self.client.cancel([sub.future], reason=LOST_TWICE)))

    async def _stop(self, sub: _Submitted, workers: list[WorkerView]) -> None:
        """Cancel a boot and wait until the worker running it has stopped its QEMU."""
        from bootlab.cluster.worker import stop_boots

        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.cancel([sub.future], reason="bootlab-stopped"), 5)
        addresses = [sub.starts[-1][0]] if sub.starts else [w.address for w in workers]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.client.run(stop_boots, [sub.key], STOP_TIMEOUT, workers=addresses, on_error="return"),
                STOP_TIMEOUT + 5,
            )

    def _verdict(self, result: dict[str, Any], sub: _Submitted, profile: Profile, log_path: Path) -> Verdict:
        if "verdict" not in result:
            why = result.get("error") or "the worker stopped this boot before it finished"
            return Verdict(outcome="infra-error", seed=profile.seed, title=f"cluster: {why}")
        verdict = Verdict.model_validate(result["verdict"])
        log = None
        if result.get("log_gz"):
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_bytes(gzip.decompress(result["log_gz"]))
            log = str(log_path)
        worker = WorkerInfo(**result["worker"], dispatched=sub.dispatched, lost=sub.lost)
        if verdict.outcome == "infra-error":  # it cannot boot this profile: send it no more of them
            self.ban(profile.name, worker.address, verdict.title or "infra-error")
        return verdict.model_copy(update={"log": log, "worker": worker})
