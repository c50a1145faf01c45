"""What runs inside ``bootlab worker``: the boot task, the file cache, and stopping boots on request.

A boot task (:func:`run_boot`) runs in one of Dask's executor threads, but the boot itself runs in a thread of its
own that lives exactly as long as the boot. That matters: QEMU is started with a parent-death signal, and Linux
sends it when the *thread* that forked QEMU exits, not the process. Forked from a pooled executor thread, QEMU
could be killed whenever Dask retires that thread, or outlive a boot whose thread lives on; forked from the boot's
own thread, it dies with the boot's end or with the worker process (even on SIGKILL), and never otherwise.

Dask's cancel does not interrupt a running task: it only marks it ``cancelled`` in the worker's state and drops
its result. The boot's thread therefore watches that state (and the worker's status) and cancels the boot when
the client cancelled it, the client went away, or the worker is closing; the boot's own clean-up then kills
QEMU's process group. The client also asks directly (:func:`stop_boots`), which returns once the boots have
stopped, so a Ctrl-C on the client leaves no QEMU on any worker.

Functions here are called by the client through Dask (``submit`` and ``run``) and are pickled by reference: the
worker must run the same bootlab version as the client (the client checks).
"""

from __future__ import annotations

import asyncio
import gzip
import platform
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bootlab import __version__
from bootlab.cluster.files import FileCache
from bootlab.errors import BootlabError

TOPIC = "bootlab-boot"  # the Dask event topic on which a boot says where and when it started
POLL = 0.1  # seconds between looks at the task's state


class WorkerSide:
    """The per-process state of a bootlab worker: its host probe, its file cache and the boots running."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        if cache_dir is None:
            from bootlab.paths import cache_dir as bootlab_cache

            cache_dir = bootlab_cache() / "cluster-files"
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.cache = FileCache(cache_dir)
        self.boots: dict[str, BootThread] = {}
        self.stopped: set[str] = set()
        self.lock = threading.Lock()
        self.announce = False  # `bootlab worker` prints a line per boot

    @property
    def host(self) -> Any:
        from bootlab.host import probe

        return probe()


_side: WorkerSide | None = None


def configure(cache_dir: Path | None = None, announce: bool = False) -> WorkerSide:
    """Set up this process as a bootlab worker (``bootlab worker`` calls it before starting Dask's Worker)."""
    global _side
    _side = WorkerSide(cache_dir)
    _side.announce = announce
    return _side


def side() -> WorkerSide:
    return _side if _side is not None else configure()


def describe(dask_worker: Any = None) -> dict[str, Any]:
    """What the client needs to know about this worker: versions, host name, and its probe (to lint against)."""
    from bootlab.host import as_dict

    host = side().host
    return {
        "bootlab": __version__,
        "host": socket.gethostname(),
        "name": str(getattr(dask_worker, "name", "") or ""),
        "python": platform.python_version(),
        "probe": as_dict(host),
    }


async def have_files(items: list[tuple[str, str]], dask_worker: Any = None) -> list[bool]:
    """For each (path, sha256): does this worker have that content, at that path or in its cache?"""
    cache = side().cache
    return await asyncio.to_thread(lambda: [cache.resolve(path, sha) is not None for path, sha in items])


async def receive_chunk(
    sha256: str, name: str, token: str, offset: int, data: bytes, final: bool, dask_worker: Any = None
) -> bool:
    """One chunk of a file the client sends (see :meth:`FileCache.write_chunk`)."""
    cache = side().cache
    return await asyncio.to_thread(cache.write_chunk, sha256, name, token, offset, data, final)


async def stop_boots(keys: list[str], timeout: float = 30.0, dask_worker: Any = None) -> list[str]:
    """Stop these boots (their QEMU is killed) and wait for them; returns the keys still running at the timeout.

    A key whose boot has not started here yet is remembered, so the boot is skipped if its task arrives later."""
    s = side()
    threads = []
    with s.lock:
        for key in keys:
            s.stopped.add(key)
            boot = s.boots.get(key)
            if boot is not None:
                boot.stop.set()
                threads.append(boot)
    deadline = time.monotonic() + timeout
    for boot in threads:
        await asyncio.to_thread(boot.join, max(0.0, deadline - time.monotonic()))
    return [b.key for b in threads if b.is_alive()]


def run_boot(request: dict[str, Any]) -> dict[str, Any]:
    """The Dask task of one boot: returns the verdict (JSON), the gzip log and where/when it ran.

    A worker that is shutting down gives the boot back to the scheduler (``Reschedule``) to run elsewhere."""
    from distributed import Reschedule, get_worker
    from distributed.worker import thread_state

    worker = get_worker()
    key = str(thread_state.key)
    started = time.time()
    worker.log_event(TOPIC, {"key": key, "name": str(worker.name), "t": started})
    s = side()

    def should_stop() -> bool:
        ts = worker.state.tasks.get(key)
        return ts is None or ts.state == "cancelled" or worker.status.name in ("closing", "closed", "failed")

    with s.lock:
        if key in s.stopped:
            return {"cancelled": True}
        boot = BootThread(key, request, should_stop)
        s.boots[key] = boot
    try:
        boot.start()
        boot.join()
    finally:
        with s.lock:
            s.boots.pop(key, None)
    profile = request["profile"]
    if boot.result is None:
        if s.announce:
            print(f"{profile['name']} seed {profile.get('seed')}: stopped", flush=True)
        if worker.status.name in ("closing", "closed", "closing_gracefully"):
            raise Reschedule()
        return {"cancelled": True}
    boot.result["worker"].update(name=str(worker.name), address=str(worker.address), started=started)
    if s.announce:
        v = boot.result["verdict"]
        what = v["outcome"] if v["outcome"] == "pass" else f"{v['outcome']}: {v.get('title')}"
        print(f"{profile['name']} seed {profile.get('seed')}: {what} ({v.get('duration_s')} s)", flush=True)
    return boot.result


class BootThread(threading.Thread):
    """One boot in a thread of its own (see the module docstring for why), with its own event loop."""

    def __init__(self, key: str, request: dict[str, Any], should_stop: Callable[[], bool]) -> None:
        super().__init__(name=f"bootlab-boot-{key[-8:]}", daemon=True)
        self.key = key
        self.request = request
        self.should_stop = should_stop
        self.stop = threading.Event()
        self.result: dict[str, Any] | None = None

    def run(self) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="bootlab-worker-"))
        try:
            self.result = asyncio.run(self._boot(scratch / "console.log"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    async def _boot(self, log_path: Path) -> dict[str, Any] | None:
        from bootlab.verdict import Verdict

        s = side()
        host = s.host
        info: dict[str, Any] = {
            "host": socket.gethostname(),
            "os": host.os,
            "arch": host.arch,
        }
        request = self.request
        arch = request["profile"]["arch"]
        qemu = host.qemu.get(arch)
        if qemu is not None:
            info.update(qemu=qemu.path, qemu_version=qemu.version)
        try:
            profile, project_dir = self._prepare(s)
        except BootlabError as exc:
            verdict = Verdict(outcome="infra-error", seed=request["profile"].get("seed"), title=str(exc))
            return self._pack(verdict, None, info, None)
        task = asyncio.create_task(self._observed(profile, host, log_path, project_dir))
        while not task.done():
            await asyncio.wait({task}, timeout=POLL)
            if not task.done() and (self.stop.is_set() or self.should_stop()):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)  # QEMU is killed by the boot's own clean-up
                return None
        verdict = task.result()
        finished = time.time()
        qemu_started = finished - verdict.duration_s if verdict.duration_s is not None else None
        return self._pack(verdict, log_path, info, qemu_started, finished)

    def _prepare(self, s: WorkerSide) -> tuple[Any, Path | None]:
        """The client's profile with this worker's paths for its files, pinned to the accelerator placed on."""
        from bootlab.errors import InfraError
        from bootlab.profile.model import Profile

        request = self.request
        profile = Profile.model_validate(request["profile"])
        paths = {}
        for role, path, sha in request["files"]:
            local = s.cache.resolve(path, sha)
            if local is None:
                raise InfraError(f"{role} {path} (sha256 {sha[:12]}) is not on this worker and was not sent to it")
            paths[role] = local
        profile = profile.with_files(paths).model_copy(update={"accel": [request["accel"]]})
        return profile, s.cache.packs_dir(request.get("packs") or {})

    async def _observed(self, profile: Any, host: Any, log_path: Path, project_dir: Path | None) -> Any:
        from bootlab.lab.boot import BootOptions, boot_async
        from bootlab.verdict import Verdict

        try:
            return await boot_async(profile, host=host, options=BootOptions(log_path=log_path, project_dir=project_dir))
        except BootlabError as exc:  # e.g. the accelerator or a firmware this worker lacks: it cannot boot this
            return Verdict(outcome="infra-error", seed=profile.seed, title=str(exc))
        except Exception as exc:  # bootlab failed here: not the guest's fault, and the client must hear of it
            return Verdict(outcome="infra-error", seed=profile.seed, title=f"bootlab worker: {exc!r}")

    @staticmethod
    def _pack(
        verdict: Any, log_path: Path | None, info: dict[str, Any], qemu_started: float | None, finished: float = 0.0
    ) -> dict[str, Any]:
        log = None
        if log_path is not None and log_path.is_file():
            log = gzip.compress(log_path.read_bytes(), compresslevel=6)
        info.update(qemu_started=qemu_started, finished=finished or time.time())
        return {"verdict": verdict.model_dump(mode="json"), "log_gz": log, "worker": info}
