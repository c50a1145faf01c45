#!/usr/bin/env python3
"""bench/cluster: boots per minute of a trial through two one-slot `bootlab worker`s against a local `-j 2`.

Starts a real `dask scheduler` and two `bootlab worker --slots 1` processes on localhost (tracked by pid, stopped
at the end), then runs the same trial (same seeds) through the cluster and locally with -j 2, alternating the
order across rounds so host drift hits both alike. Wall time covers the whole trial, storing included. The
cluster's per-boot overhead is read from the stored boots: task dispatch -> QEMU start (the client's submit to
the worker starting QEMU, files already there) and verdict -> stored (the worker's verdict to the row committed
here). Both clocks are this machine's, so there is no skew. Ends with `cluster/local ratio=R` (goal >= 0.9).

    .venv/bin/python bench/cluster.py [-n 16] [--rounds 1] [--profile linux-arm64] [--config guests/bootlab.toml]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootlab.lab.lab import Lab
    from bootlab.store.db import Store

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def start_cluster(tmp: Path, procs: list[subprocess.Popen[bytes]]) -> str:
    """A scheduler and two one-slot workers; each process goes into ``procs`` as soon as it exists, so the
    caller's ``finally`` stops whatever started, even if start-up is interrupted or fails half-way."""
    info = tmp / "scheduler.json"
    procs.append(
        subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(info)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    )  # fmt: skip
    _wait_for(lambda: info.is_file() and bool(info.read_text().strip()), "the scheduler")
    address = str(json.loads(info.read_text())["address"])
    for name in ("bench-w1", "bench-w2"):
        log = tmp / f"{name}.log"
        with log.open("w") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bootlab", "worker", "--scheduler", address, "--slots", "1",
                     "--name", name, "--cache", str(tmp / name)],
                    stdout=out, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        _wait_for(partial(_joined, log), f"worker {name} (see {log})")
    return address


def _joined(log: Path) -> bool:
    return "joined" in log.read_text()


def _wait_for(done: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench/cluster: {what} did not start within {timeout:.0f} s")
        time.sleep(0.1)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run(lab: Lab, profile: str, sets: list[str], n: int, jobs: int | None) -> tuple[float, str | None]:
    from bootlab.lab.lab import ArmSpec

    t0 = time.monotonic()
    r = lab.trial(ArmSpec(profile, sets), n=n, jobs=jobs, seed_base=1)
    elapsed = time.monotonic() - t0
    s = r.summary
    if s.excluded or s.passed != s.boots:
        print(f"  warning: {s.outcomes}", file=sys.stderr)
    return n / elapsed * 60, r.trial


def overheads(store: Store, trial: str) -> tuple[list[float], list[float]]:
    start, stored = [], []
    for row in store.boots(int(trial[1:])):
        worker = json.loads(row["verdict"])["worker"]
        start.append(worker["qemu_started"] - worker["dispatched"])
        stored.append(row["created"] - worker["finished"])
    return start, stored


def ms(values: list[float]) -> str:
    qs = statistics.quantiles(values, n=10) if len(values) > 1 else values * 9
    return f"median {statistics.median(values) * 1000:.0f} ms, p90 {qs[-1] * 1000:.0f} ms"


def main() -> int:
    from bootlab.cluster import quiet_dask_logs
    from bootlab.cluster.config import ClusterConfig
    from bootlab.cluster.lab import ClusterLab
    from bootlab.host import probe
    from bootlab.lab.lab import Lab
    from bootlab.profile.loader import load_project
    from bootlab.store.db import Store

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=16, help="boots per trial (default 16)")
    ap.add_argument("--rounds", type=int, default=1, help="pairs of trials (default 1)")
    ap.add_argument("--profile", default="linux-arm64")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--config", type=Path, default=ROOT / "guests" / "bootlab.toml")
    args = ap.parse_args()
    quiet_dask_logs()
    with tempfile.TemporaryDirectory(prefix="bootlab-bench-") as tmp:
        procs: list[subprocess.Popen[bytes]] = []
        try:
            address = start_cluster(Path(tmp), procs)
            project, store = load_project(args.config), Store(Path(tmp) / "store")
            rates: dict[str, list[float]] = {"cluster": [], "local": []}
            start, stored = [], []
            for rnd in range(args.rounds):
                for kind in ("cluster", "local") if rnd % 2 == 0 else ("local", "cluster"):
                    if kind == "cluster":
                        config = ClusterConfig(address, "bench")
                        lab: Lab = ClusterLab(project, probe(), store, cluster=config, quiet=True)
                        rate, trial = run(lab, args.profile, args.sets, args.n, None)
                        assert trial is not None
                        s, d = overheads(store, trial)
                        start += s
                        stored += d
                    else:
                        rate, _ = run(Lab(project, probe(), store), args.profile, args.sets, args.n, 2)
                    rates[kind].append(rate)
                    print(f"round {rnd + 1}: {kind}: {rate:.1f} boots/min", flush=True)
            store.close()
        finally:
            stop(procs)
    cluster, local = statistics.median(rates["cluster"]), statistics.median(rates["local"])
    print(f"{args.profile}, {args.n} boots: two one-slot workers {cluster:.1f} boots/min, local -j 2 {local:.1f}")
    print(f"per boot: dispatch -> QEMU start {ms(start)}; verdict -> stored {ms(stored)}")
    print(f"cluster/local ratio={cluster / local:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
