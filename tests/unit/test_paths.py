"""bootlab.paths: the directories (the same as platformdirs', without its import where it can be avoided), the
atomic write and the file hash every module uses."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bootlab.paths import atomic_open, atomic_write, cache_dir, sha256_file


@pytest.mark.parametrize(
    "env",
    [
        {"XDG_CACHE_HOME": "/somewhere/cache", "HOME": "/home/u"},
        {"XDG_CACHE_HOME": "relative/cache", "HOME": "/home/u"},  # not absolute: ignored, as the XDG spec says
        {"XDG_CACHE_HOME": "", "HOME": "/home/u/"},
        {"HOME": "/home/u"},
    ],
)
def test_cache_dir_is_platformdirs_answer(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    from platformdirs import user_cache_path

    for key in ("BOOTLAB_CACHE", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cache_dir() == user_cache_path("bootlab", appauthor=False)


def test_bootlab_cache_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BOOTLAB_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", "/elsewhere")
    assert cache_dir() == tmp_path / "c"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fast path is Linux's")
def test_the_recovery_every_command_runs_does_not_import_platformdirs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BOOTLAB_CACHE"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    code = "import sys; from bootlab.cli.main import _recover_checkouts; _recover_checkouts(); "
    code += "print('platformdirs' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_atomic_write_replaces_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "bootlab.toml"
    path.write_text("old\n")
    path.chmod(0o640)
    atomic_write(path, "new ü\n")
    assert path.read_text(encoding="utf-8") == "new ü\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    atomic_write(path, b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bootlab.toml"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path) as fh:
        fh.write("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    with pytest.raises(OSError):
        atomic_write(tmp_path / "no" / "such" / "dir", "x")


def test_sha256_file_reads_in_chunks(tmp_path: Path) -> None:
    data = os.urandom(3 << 20) + b"tail"  # more than one 1 MiB chunk, not a multiple of it
    path = tmp_path / "disk.img"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()
