"""A private runtime directory for one QEMU: its serial console and QMP sockets live here.

The directory is created 0700 (mkdtemp) and QEMU is started with umask 177, so its sockets are 0600: nobody
else on the machine can type into a guest's console. Paths are kept short because a unix socket path is limited
to ~104-108 bytes (macOS's $TMPDIR alone is ~50), hence /tmp rather than $TMPDIR.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType


class RuntimeDir:
    """Context manager owning a private temporary directory with the sockets of one QEMU."""

    def __init__(self, prefix: str = "bootlab-", base: str | None = None, keep: bool = False) -> None:
        root = base or ("/tmp" if Path("/tmp").is_dir() else tempfile.gettempdir())
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
        self.keep = keep

    @property
    def serial(self) -> Path:
        return self.path / "serial.sock"

    @property
    def qmp(self) -> Path:
        return self.path / "qmp.sock"

    @property
    def stderr(self) -> Path:
        return self.path / "qemu.stderr"

    def cleanup(self) -> None:
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> RuntimeDir:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
