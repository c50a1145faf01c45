"""Files on disk: where bootlab keeps its own (data, state, cache, runtime directories), how it writes a file that
someone may be reading at that moment, and how it hashes one. One place each, so that every module agrees.

- **Directories.** ``data_dir`` (the store, named VMs), ``state_dir`` (console and build logs), ``cache_dir``
  (``$BOOTLAB_CACHE`` wins: checkouts, builds, files sent to a cluster worker), ``runtime_dir`` (sockets). They
  come from platformdirs, which costs milliseconds to import; every command looks for checkouts a killed bootlab
  left (:func:`bootlab.source.checkout.recover`), so :func:`cache_dir` answers Linux's common case itself (the
  same answer: ``test_paths`` holds it to platformdirs') and imports platformdirs only for the rest.
- **Writes.** :func:`atomic_write` / :func:`atomic_open`: a temporary file beside the target, then a rename, so a
  reader sees the old file or the new one and never half of either, and a crash leaves the old one.
- **Hashes.** :func:`sha256_file`: the hex sha256 of a file's content, read in 1 MiB chunks (a 2 GiB disk image
  is not read into memory).

Nothing heavy is imported here: the CLI imports this module before every command.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

APP = "bootlab"


def data_dir() -> Path:
    """The user's data directory for bootlab (the store, named VMs)."""
    from platformdirs import user_data_path

    return user_data_path(APP, appauthor=False)


def state_dir() -> Path:
    """The user's state directory for bootlab (console logs of unstored boots, build logs)."""
    from platformdirs import user_state_path

    return user_state_path(APP, appauthor=False)


def runtime_dir() -> Path:
    """The user's runtime directory for bootlab (tmpfs on Linux: sockets go when the machine reboots)."""
    from platformdirs import user_runtime_path

    return user_runtime_path(APP, appauthor=False)


def cache_dir() -> Path:
    """bootlab's cache directory: ``$BOOTLAB_CACHE``, else the user's cache directory.

    On Linux that is ``$XDG_CACHE_HOME/bootlab`` (when it is an absolute path), else ``$HOME/.cache/bootlab``:
    computed here, because every command asks (for checkouts to recover) and platformdirs' import would be most
    of what that costs. Elsewhere, or without an absolute ``$HOME``, platformdirs decides."""
    env = os.environ.get("BOOTLAB_CACHE")
    if env:
        return Path(env).expanduser()
    if sys.platform.startswith("linux") and "ANDROID_DATA" not in os.environ:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        if os.path.isabs(xdg):
            return Path(xdg) / APP
        home = os.environ.get("HOME", "")
        if os.path.isabs(home):
            return Path(home) / ".cache" / APP
    from platformdirs import user_cache_path

    return user_cache_path(APP, appauthor=False)


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file object whose content replaces ``path`` when the block ends without an exception.

    The temporary file is hidden beside ``path`` (same file system, so the rename is atomic) with a name no other
    writer shares (pid and random bits: two processes, or two threads, writing the same file never write into one
    temporary file). An existing file's permissions are kept (a user's ``bootlab.toml`` stays as they set it).
    When anything fails the temporary file is removed and the error raised: the caller words it."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode {mode!r}; use 'w' or 'wb'")
    binary = mode == "wb"
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, "xb" if binary else "x", encoding=None if binary else "utf-8") as fh:
            yield fh
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text as UTF-8) through :func:`atomic_open`."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's content, read in 1 MiB chunks; OSError when it cannot be read."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
