"""What a test needs from the machine (QEMU, the built guests, firmware), said once.

Outside `make test` a missing prerequisite skips the test with how to get it (a developer running one file on a
laptop without QEMU). Under `make test` and CI (``BOOTLAB_TEST_STRICT=1``, set by the Makefile) it fails: the
suite installs everything it needs, so something missing there is a broken set-up, and a silent skip would
report a green run that never booted anything.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "guests" / "bootlab.toml"
STRICT = os.environ.get("BOOTLAB_TEST_STRICT") == "1"


def need(ok: bool, reason: str) -> None:
    """Skip (or, under make test, fail) the calling test or module when ``ok`` is false."""
    if ok:
        return
    if STRICT:
        pytest.fail(f"missing prerequisite under make test: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def need_guests(*binaries: str) -> None:
    """The test guests (guests/bootlab.toml and their images) and the QEMU binaries named."""
    need(GUESTS.is_file(), "test guests not built: run `bash guests/build.sh` (or make guests)")
    for binary in binaries or ("qemu-system-aarch64",):
        need(shutil.which(binary) is not None, f"{binary} not installed: run `make setup`")


F = TypeVar("F", bound=Callable[..., Any])


def requires(ok: bool, reason: str) -> Callable[[F], F]:
    """:func:`need` for one test, as a decorator (in place of ``pytest.mark.skipif``, which never fails)."""

    def decorate(test: F) -> F:
        if ok:
            return test

        @functools.wraps(test)
        def missing(*_args: Any, **_kwargs: Any) -> None:
            need(False, reason)

        return missing  # type: ignore[return-value]

    return decorate


def need_module(name: str, reason: str) -> None:
    """An importable Python module (an optional dependency the dev install brings)."""
    import importlib.util

    need(importlib.util.find_spec(name) is not None, reason)
