"""`bootlab worker --scheduler ADDRESS [--slots N]`: lend this host's QEMU to trials started elsewhere.

A Dask worker (no nanny: this one process is the worker, and the QEMUs it starts are its children and die with
it) whose resources are what `bootlab doctor` finds here: one per architecture and usable accelerator
(``aarch64-hvf``, ``x86_64-kvm``, ``aarch64-tcg``...) plus ``slots``, the vCPUs it lends (default: its cores).
The scheduler is Dask's own ``dask scheduler``. When the scheduler goes away the worker's running boots are
stopped and it waits for the scheduler to come back; Ctrl-C (or SIGTERM) stops its boots and exits.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from bootlab.cli.common import whole_number
from bootlab.errors import InfraError, UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker", help="run boots for trials started elsewhere (a Dask worker: pip install 'bootlab[cluster]')"
    )
    p.add_argument(
        "--scheduler", required=True, metavar="ADDRESS", help="the `dask scheduler` (tcp://HOST:8786, tls://...)"
    )
    p.add_argument(
        "--slots",
        type=whole_number("slots", "--slots 4"),
        metavar="N",
        help="vCPUs to lend to boots at once (default: the cores)",
    )
    p.add_argument("--name", metavar="NAME", help="worker name, unique in the cluster (default: the host name)")
    p.add_argument(
        "--resources", metavar="NAME=N,...", help="extra Dask resources to advertise besides the probed ones"
    )
    p.add_argument("--host", metavar="ADDR", help="address to listen on (default: 127.0.0.1 for a local scheduler)")
    p.add_argument(
        "--cache", type=Path, metavar="DIR", help="where files sent by clients are kept (default: user cache)"
    )
    p.add_argument("--tls-ca-file", metavar="FILE", help="CA certificate (PEM) for a tls:// scheduler")
    p.add_argument("--tls-cert", metavar="FILE", help="this worker's certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="this worker's private key (PEM)")
    p.add_argument("-v", "--verbose", action="store_true", help="show Dask's own log")
    p.set_defaults(func=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import socket

    from bootlab.cluster import quiet_dask_logs, require_distributed
    from bootlab.cluster.config import ClusterConfig, is_loopback, normalise_address, worker_tls
    from bootlab.cluster.resources import host_resources, parse_resources
    from bootlab.cluster.worker import configure
    from bootlab.host import probe

    require_distributed("bootlab worker")
    address = normalise_address(args.scheduler, "--scheduler")
    config = ClusterConfig(address, "--scheduler", worker_tls(args.tls_ca_file, args.tls_cert, args.tls_key))
    security = config.security("worker")
    host = probe()
    slots = args.slots or os.cpu_count() or 1
    resources = host_resources(host, slots)
    if args.resources:
        resources.update(parse_resources(args.resources))
    if len(resources) == 1:
        raise InfraError("no qemu-system-* found on this host, so this worker could boot nothing; see `bootlab doctor`")
    import bootlab.lab.boot  # noqa: F401  (imported now, not by the first boot: its dispatch-to-QEMU time stays short)

    try:
        configure(args.cache, announce=True)
    except OSError as exc:
        raise UsageError(f"--cache {args.cache}: cannot use it ({exc.strerror}); give a writable directory") from None
    if not args.verbose:
        quiet_dask_logs(logging.ERROR)
    name = args.name or socket.gethostname()
    listen = args.host or ("127.0.0.1" if is_loopback(config.host) else None)
    offered = ", ".join(k for k in sorted(resources) if k != "slots")
    print(f"bootlab worker {name}: offers {offered} with {slots} slot(s) to {address}; Ctrl-C stops", flush=True)
    options: dict[str, Any] = dict(
        nthreads=slots, resources=resources, name=name, security=security, host=listen, memory_limit=0
    )
    return asyncio.run(_serve(address, options))


async def _serve(address: str, options: dict[str, Any]) -> int:
    """Run the Dask worker until Ctrl-C/SIGTERM; when the scheduler goes away, wait for it and join again."""
    import asyncio
    import signal

    from distributed import Worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    said = ""
    while True:
        worker = Worker(address, **options)
        joining = asyncio.ensure_future(worker.start())
        await asyncio.wait({joining, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not joining.done():
            joining.cancel()
            await worker.close(reason="bootlab-worker-stopped")
            return 0
        failure = joining.exception()
        if failure is not None:
            why = "; ".join(str(e) for e in _causes(failure) if str(e))
            if "name taken" in why:
                raise UsageError(
                    f"a worker named {options['name']} is already connected to {address}; "
                    f"give each worker its own --name"
                )
            if why != said:
                print(f"bootlab worker: cannot join {address} ({why}); retrying", file=sys.stderr, flush=True)
                said = why
            await asyncio.sleep(2)
            continue
        print(f"bootlab worker {options['name']}: joined {address} as {worker.address}", flush=True)
        finished = asyncio.ensure_future(worker.finished())
        await asyncio.wait({finished, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            await worker.close(reason="bootlab-worker-stopped")  # running boots see it and stop their QEMU
            return 0
        print(f"bootlab worker {options['name']}: lost the scheduler at {address}; waiting for it", flush=True)
        await asyncio.sleep(1)


def _causes(exc: BaseException) -> list[BaseException]:
    """An exception and what caused it (Dask wraps the scheduler's refusal in "Worker failed to start")."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
