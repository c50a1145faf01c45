"""Getting a boot's files to the worker that runs it: once per content hash, never by trusting a path alone.

For each file a boot needs (kernel, initrd, disks, firmware given as a path, the symbols ELF), the client sends
its path and sha256. The worker uses its own file at that path when it has the same sha256 (a shared filesystem,
or the same build on both), else a copy in its cache (``<cache>/<sha256>/<name>``); if it has neither, the client
streams the file to it in chunks, written to a private part file and renamed into place only once its sha256
checks out. A laptop can so drive a farm without NFS, and a disk image crosses the network once per worker,
not once per boot. Disks still run on snapshot overlays: the cached copy is never written.

Project packs (``packs/*.toml`` beside bootlab.toml) travel with every boot as text: they are small, and the
worker keeps each distinct set in its cache too. Firmware named without a ``/`` is resolved by the worker's own
host probe, as on this machine. 9p shares are directories and are not shipped: they must exist on the worker.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bootlab.paths import sha256_file

if TYPE_CHECKING:
    from bootlab.profile.model import Profile

CHUNK = 8 << 20  # bytes per message when streaming a file to a worker
_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileRef:
    """One file a boot needs: its role in the profile, its path on the client, its sha256 and size."""

    role: str
    path: str
    sha256: str
    size: int

    @property
    def name(self) -> str:
        return safe_name(self.path)


def safe_name(path: str) -> str:
    """A file name to keep in the cache: the base name, without anything a path could smuggle in."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", Path(path).name).lstrip(".")
    return name[:100] or "file"


class Hasher:
    """sha256 of files, computed once per (path, size, mtime) in this process: a 2 GiB disk is read once."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    def sha256(self, path: str | Path) -> str | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._known:
                return self._known[key]
        digest = sha256_file(path)
        with self._lock:
            self._known[key] = digest
        return digest


def boot_files(profile: Profile, hasher: Hasher) -> list[FileRef]:
    """The files a worker needs for ``profile`` (a file missing here is left to the worker's own check): what it
    boots, its symbols, and the scripts its checks send to the guest."""
    files = {**profile.files(), **profile.check_files()}
    if profile.symbols:
        files["symbols"] = profile.symbols
    refs = []
    for role, path in files.items():
        digest = hasher.sha256(path)
        if digest is not None:
            refs.append(FileRef(role, path, digest, os.stat(path).st_size))
    return refs


def project_packs(project_root: Path | None) -> dict[str, str]:
    """The project's own packs, by file name, to send along with each boot."""
    if project_root is None:
        return {}
    folder = project_root / "packs"
    if not folder.is_dir():
        return {}
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.toml")) if p.is_file()}


class FileCache:
    """The worker's side: its own files checked by sha256, and the cache of files sent to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hasher = Hasher()

    def _entry(self, sha256: str) -> Path:
        if not _SHA.fullmatch(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256

    def cached(self, sha256: str) -> Path | None:
        entry = self._entry(sha256)
        try:
            files = [p for p in entry.iterdir() if not p.name.startswith(".")]
        except OSError:
            return None
        return files[0] if files else None

    def resolve(self, path: str, sha256: str) -> str | None:
        """Where this worker has the file: the same path with the same content, else its cached copy."""
        if os.path.isfile(path) and self.hasher.sha256(path) == sha256:
            return path
        cached = self.cached(sha256)
        return str(cached) if cached is not None else None

    def write_chunk(self, sha256: str, name: str, token: str, offset: int, data: bytes, final: bool) -> bool:
        """Append one chunk of a file being sent; on the last one check its sha256 and move it into place.

        Returns whether the file is now in the cache. A part file is private to one transfer (``token``), so two
        clients sending the same file at once cannot interleave their chunks."""
        entry = self._entry(sha256)
        entry.mkdir(parents=True, exist_ok=True, mode=0o700)
        part = entry / f".part-{re.sub(r'[^A-Za-z0-9]', '', token)[:40]}"
        with open(part, "r+b" if offset else "wb") as fh:
            fh.seek(offset)
            fh.write(data)
        if not final:
            return False
        if self.hasher.sha256(part) != sha256:
            part.unlink(missing_ok=True)
            raise ValueError(f"{name}: received content does not match sha256 {sha256[:12]}; not cached")
        part.replace(entry / safe_name(name))
        return True

    def packs_dir(self, packs: dict[str, str]) -> Path | None:
        """A directory whose ``packs/`` holds these project packs (one per distinct set), for load_packs."""
        if not packs:
            return None
        digest = hashlib.sha256(repr(sorted(packs.items())).encode()).hexdigest()
        project = self.root / "packs" / digest
        folder = project / "packs"
        if not folder.is_dir():
            tmp = self.root / "packs" / f".{digest}-{uuid.uuid4().hex[:8]}"
            (tmp / "packs").mkdir(parents=True, mode=0o700)
            for name, text in packs.items():
                (tmp / "packs" / safe_name(name)).write_text(text, encoding="utf-8")
            try:
                tmp.replace(project)
            except OSError:  # another boot made it first
                shutil.rmtree(tmp, ignore_errors=True)
        return project
