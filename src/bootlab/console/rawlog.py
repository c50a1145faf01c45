"""The raw console log of a boot and its time index.

Bytes are written exactly as they arrived; beside the log, ``LOG.times`` has one line per read, ``OFFSET
SECONDS``: the byte offset in the log where that read starts and its arrival time (seconds since QEMU started).
Any line's arrival time is known afterwards, and :class:`~bootlab.console.replay.ReplayConsole` plays a boot back
with its real timing.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import IO


def times_path(log: Path) -> Path:
    return log.with_suffix(".times")


class RawLog:
    """Append-only writer of a log and its ``.times`` index (a context manager; ``None`` path: no log)."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.offset = path.stat().st_size if append and path.exists() else 0
        self._log: IO[bytes] = path.open("ab" if append else "wb")
        self._index: IO[str] = times_path(path).open("a" if append else "w")

    def write(self, data: bytes, t: float) -> None:
        if not data:
            return
        self._log.write(data)
        self._log.flush()
        self._index.write(f"{self.offset} {t:.6f}\n")
        self._index.flush()  # both on disk as they come: a log read while the boot runs (or after a kill) is whole
        self.offset += len(data)

    def close(self) -> None:
        self._log.close()
        self._index.close()

    def __enter__(self) -> RawLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_chunks(log: Path) -> list[tuple[float, bytes]]:
    """The recorded reads of ``log`` as (arrival time, bytes), from its ``.times`` index. A gzipped recording
    (``X.log.gz`` with ``X.times.gz``) is read as well: long floods compress a hundredfold.

    Bytes after the last indexed read (written without a time) come last, at the last known time."""
    if log.suffix == ".gz":
        import gzip

        data = gzip.decompress(log.read_bytes())
        index = gzip.decompress(times_path(log.with_suffix("")).with_suffix(".times.gz").read_bytes()).decode()
    else:
        data = log.read_bytes()
        index = times_path(log).read_text()
    entries: list[tuple[int, float]] = []
    for line in index.splitlines():
        parts = line.split()
        if len(parts) == 2:
            entries.append((int(parts[0]), float(parts[1])))
    chunks: list[tuple[float, bytes]] = []
    for i, (offset, t) in enumerate(entries):
        end = entries[i + 1][0] if i + 1 < len(entries) else len(data)
        if end > offset:
            chunks.append((t, data[offset:end]))
    if not entries and data:
        chunks.append((0.0, data))
    return chunks
