"""Where the cluster's scheduler is, and how to talk to it safely.

The address comes from ``--cluster ADDRESS``, else ``$BOOTLAB_CLUSTER``, else ``cluster = "ADDRESS"`` (or a
``[cluster]`` table with ``address`` and TLS files) in bootlab.toml; ``--cluster local`` runs here whatever the
others say. Addresses are Dask's: ``tcp://HOST:PORT`` or ``tls://HOST:PORT`` (``HOST:PORT`` means tcp; the port
defaults to 8786, ``dask scheduler``'s).

Why the warnings: Dask has no authentication and its messages carry pickled code. Anyone who can reach a
``tcp://`` scheduler can run commands on every worker, so a non-loopback ``tcp://`` address gets a warning, and
``tls://`` uses Dask's mutual TLS (every party needs a certificate signed by the cluster's CA). Certificates come
from the ``[cluster]`` table (``tls-ca-file``, ``tls-cert``, ``tls-key``, relative to bootlab.toml), else from
Dask's own settings (``distributed.comm.tls.ca-file``, ``distributed.comm.tls.client.cert``/``key``, e.g. as
``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from bootlab.errors import UsageError

if TYPE_CHECKING:
    from bootlab.profile.loader import Project

DEFAULT_PORT = 8786
SCHEMES = ("tcp", "tls")
ENV = "BOOTLAB_CLUSTER"
TLS_KEYS = ("tls-ca-file", "tls-cert", "tls-key")
HOW = "give tcp://HOST:8786 or tls://HOST:8786, the address `dask scheduler` prints"


@dataclass(frozen=True)
class TlsFiles:
    """A CA certificate and this party's own certificate and key (PEM files, or PEM text)."""

    ca_file: str
    cert: str
    key: str


@dataclass(frozen=True)
class ClusterConfig:
    """A scheduler to send boots to; ``source`` says where the address came from (for messages)."""

    address: str
    source: str
    tls: TlsFiles | None = None

    @property
    def scheme(self) -> str:
        return self.address.split("://", 1)[0]

    @property
    def host(self) -> str:
        return urlsplit(self.address).hostname or ""

    def security(self, role: str = "client") -> Any:
        """Dask's Security for ``role`` (client or worker): from the TLS files given, else Dask's settings."""
        from distributed.security import Security

        if self.scheme != "tls":
            return Security()
        if self.tls is not None:
            return Security(
                require_encryption=True,
                tls_ca_file=self.tls.ca_file,
                **{f"tls_{role}_cert": self.tls.cert, f"tls_{role}_key": self.tls.key},
            )
        security = Security(require_encryption=True)
        if not getattr(security, "tls_ca_file", None) or not getattr(security, f"tls_{role}_cert", None):
            raise UsageError(
                f"{self.address} ({self.source}) is a TLS address but no certificates are set; give tls-ca-file, "
                f"tls-cert and tls-key (in [cluster] of bootlab.toml, or `bootlab worker --tls-...`), or set "
                f"Dask's distributed.comm.tls.ca-file and distributed.comm.tls.{role}.cert/key"
            )
        return security


def normalise_address(text: str, where: str) -> str:
    """``HOST:PORT``, ``tcp://HOST[:PORT]`` or ``tls://HOST[:PORT]`` -> ``scheme://HOST:PORT``; else one line."""
    raw = text.strip()
    if not raw:
        raise UsageError(f"{where}: empty scheduler address; {HOW}")
    if "://" not in raw:
        raw = f"tcp://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in SCHEMES:
        raise UsageError(f"{where}: {text!r} uses {parts.scheme}://, bootlab speaks tcp:// and tls://; {HOW}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise UsageError(f"{where}: {text!r} has a bad port; {HOW}") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise UsageError(f"{where}: {text!r} is not a scheduler address; {HOW}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only (127.0.0.0/8, ::1, or a name that resolves only there)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host == "localhost":
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)


def warn_if_exposed(config: ClusterConfig, stream: TextIO) -> None:
    """A plain-tcp scheduler beyond this machine lets anyone who reaches it run code on every worker: say so."""
    if config.scheme == "tcp" and not is_loopback(config.host):
        print(
            f"bootlab: warning: {config.address} is unencrypted and unauthenticated: anyone who can reach it can run "
            f"code on every worker; use tls:// (README: Cluster, security) or keep it on a trusted network",
            file=stream,
        )


def _tls_from_table(table: dict[str, Any], project: Project) -> TlsFiles | None:
    given = {k: table[k] for k in TLS_KEYS if k in table}
    if not given:
        return None
    where = f"{project.path}: [cluster]"
    if len(given) != len(TLS_KEYS):
        missing = ", ".join(k for k in TLS_KEYS if k not in given)
        raise UsageError(f"{where}: TLS needs all of {', '.join(TLS_KEYS)}; add {missing}")
    paths = {}
    for key, value in given.items():
        if not isinstance(value, str):
            raise UsageError(f'{where}: `{key}` must be a file path string, e.g. {key} = "certs/ca.pem"')
        path = (project.root / value).expanduser()
        if not path.is_file():
            raise UsageError(f"{where}: {key} {path} not found; fix the path")
        paths[key] = str(path)
    return TlsFiles(paths["tls-ca-file"], paths["tls-cert"], paths["tls-key"])


def cluster_config(flag: str | None, project: Project) -> ClusterConfig | None:
    """The cluster to use, or None to boot here: ``--cluster`` wins over ``$BOOTLAB_CLUSTER`` over bootlab.toml."""
    table: dict[str, Any] = {}
    setting = project.settings.get("cluster")
    if isinstance(setting, dict):
        table = setting
        unknown = sorted(set(table) - {"address", *TLS_KEYS})
        if unknown:
            raise UsageError(
                f"{project.path}: [cluster] has unknown key `{unknown[0]}`; allowed: address, {', '.join(TLS_KEYS)}"
            )
        setting = table.get("address")
    if setting is not None and not isinstance(setting, str):
        raise UsageError(f'{project.path}: `cluster` must be an address string, e.g. cluster = "tls://lab:8786"')
    env = os.environ.get(ENV) or None
    if flag is not None:
        value, source = flag, "--cluster"
    elif env is not None:
        value, source = env, f"${ENV}"
    elif setting is not None:
        value, source = setting, f"{project.path}: cluster"
    else:
        return None
    if value.strip() == "local":
        return None
    address = normalise_address(value, source)
    tls = _tls_from_table(table, project) if table else None
    return ClusterConfig(address=address, source=source, tls=tls)


def worker_tls(ca_file: str | None, cert: str | None, key: str | None) -> TlsFiles | None:
    """``bootlab worker --tls-ca-file F --tls-cert F --tls-key F``: all three or none."""
    given = [x for x in (ca_file, cert, key) if x]
    if not given:
        return None
    if len(given) != 3:
        raise UsageError("TLS needs all of --tls-ca-file, --tls-cert and --tls-key")
    for flag, value in (("--tls-ca-file", ca_file), ("--tls-cert", cert), ("--tls-key", key)):
        if not Path(str(value)).is_file():
            raise UsageError(f"{flag} {value} not found; fix the path")
    return TlsFiles(str(ca_file), str(cert), str(key))
