"""Trials, matrices and comparisons on many machines: every boot is one Dask task on a ``bootlab worker``.

The lab's runner (:mod:`bootlab.lab.runner`) still decides which boot starts next, stops arms early and handles
Ctrl-C; a cluster only replaces its boot function with one that runs each boot on a worker and brings the verdict
and the log back, so a distributed trial is stored, summarised and replayed exactly like a local one.

- :mod:`.config`: where the scheduler is (``--cluster``, ``BOOTLAB_CLUSTER``, ``cluster =`` in bootlab.toml), TLS.
- :mod:`.resources`: what a worker offers (``aarch64-tcg``, ``x86_64-kvm``... and ``slots``), what a boot needs.
- :mod:`.files`: kernels, initrds, disks and firmware files reach the worker once per content hash.
- :mod:`.worker`: what runs inside ``bootlab worker`` (the boot task, file cache, stop requests).
- :mod:`.client`: the connection of one run to the scheduler, and the boot function the runner calls.
- :mod:`.lab`: :class:`~bootlab.cluster.lab.ClusterLab`, a :class:`~bootlab.lab.lab.Lab` that boots there.

Dask is an optional dependency (``pip install 'bootlab[cluster]'``): nothing here imports it at module level.
"""

from __future__ import annotations

import logging

from bootlab.errors import UsageError

INSTALL_HINT = "pip install 'bootlab[cluster]'"


def require_distributed(what: str = "--cluster") -> None:
    """One line saying what to install when Dask is missing, instead of an ImportError."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"{what} needs Dask distributed, which is not installed: {INSTALL_HINT}") from None


def quiet_dask_logs(level: int = logging.CRITICAL) -> None:
    """Dask logs every reconnect attempt and cancelled task with tracebacks; bootlab says what matters in one line.

    Dask's configuration gives some child loggers (``distributed.client``) levels of their own, so each is set."""
    import distributed  # noqa: F401  (configures Dask's loggers first)

    names = ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]
    for name in names:
        logging.getLogger(name).setLevel(level)
