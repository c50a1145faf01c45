"""Raw-QEMU end-to-end tests of the test guests built by guests/build.sh (issue 3).

Each test builds a QEMU argv itself from guests/bootlab.toml (a tiny helper below, not bootlab's builder), runs it
with the serial console on stdio, reads it against deadlines and kills the whole process group at the end.
These may later be replaced by tests through bootlab's observer.
"""

from __future__ import annotations

import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GUESTS = REPO / "guests"
TOML = GUESTS / "bootlab.toml"
ANSI = re.compile(rb"\x1b\[[0-9;?=]*[A-Za-z]")


# ---------------------------------------------------------------------------------------------------------------
# tiny raw-QEMU helper
# ---------------------------------------------------------------------------------------------------------------

def load_profiles() -> dict:
    with open(TOML, "rb") as f:
        return tomllib.load(f)["profiles"]


def _kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def qemu_argv(name: str, *, vars: dict | None = None, cpu: str | None = None, smp: int | None = None,
              machine_opts: str = "", extra: list[str] | None = None, seed: int = 0, boot: int = 0) -> list[str]:
    """argv for profile NAME with the serial console on stdio."""
    p = load_profiles()[name]
    v = dict(p.get("vars", {}))
    v.update(vars or {})
    v.setdefault("seed", str(seed))
    v.setdefault("boot", str(boot))
    base = GUESTS

    def path(x: str) -> str:
        return str((base / x).resolve()) if not os.path.isabs(x) else x

    accel = "tcg"
    for a in p.get("accel", ["tcg"]):
        if a == "kvm" and _kvm_usable() and p["arch"] == os.uname().machine:
            accel = "kvm"
            break
        if a == "tcg":
            accel = "tcg"
            break
    machine = p["machine"] if isinstance(p["machine"], str) else p["machine"]["type"]
    if machine_opts:
        machine += "," + machine_opts
    if cpu is None:
        cpu = p["cpu"] if isinstance(p["cpu"], str) else p["cpu"][accel]
    argv = [f"qemu-system-{p['arch']}", "-M", machine, "-accel", accel, "-cpu", cpu,
            "-smp", str(smp or p.get("smp", 1)), "-m", p.get("memory", "512M"),
            "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"]
    if "firmware" in p:
        argv += ["-bios", path(p["firmware"]["bios"])]
    if "kernel" in p:
        argv += ["-kernel", path(p["kernel"])]
    if "initrd" in p:
        argv += ["-initrd", path(p["initrd"])]
    if "append" in p:
        argv += ["-append", p["append"].format(**v)]
    for i, d in enumerate(p.get("drives", [])):
        argv += ["-drive", f"file={path(d['file'])},format={d.get('format', 'raw')},if=none,id=drv{i},snapshot=on",
                 "-device", f"virtio-blk-pci,drive=drv{i}"]
    argv += list(p.get("extra_args", []))
    argv += extra or []
    return argv


class Console:
    """A QEMU process whose serial console is on stdio. Use as a context manager: the group is always killed."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.buf = b""
        self.t0 = time.monotonic()
        self.last_output = self.t0
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Console":
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc:
            self.proc.wait(timeout=10)
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass

    @property
    def text(self) -> str:
        return ANSI.sub(b"", self.buf).decode("utf-8", "replace").replace("\r", "")

    def _pump(self, timeout: float) -> bool:
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if not r:
            return False
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            time.sleep(min(timeout, 0.05))
            return False
        self.buf += chunk
        self.last_output = time.monotonic()
        return True

    def expect(self, pattern: str | re.Pattern, timeout: float, start: int = 0) -> re.Match:
        """Wait until PATTERN (regex on the ANSI-stripped text from START) appears; return the match."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text, start)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                tail = self.text[-3000:]
                raise AssertionError(f"timed out after {timeout}s waiting for {rx.pattern!r}; console tail:\n{tail}")
            if self.proc.poll() is not None and not self._pump(0):
                raise AssertionError(f"QEMU exited ({self.proc.returncode}) before {rx.pattern!r}:\n{self.text[-3000:]}")
            self._pump(min(left, 0.5))

    def expect_any(self, patterns: dict[str, str], timeout: float, start: int = 0) -> tuple[str, re.Match]:
        """Wait for the first of several patterns; return (key, match) of the earliest one in the text."""
        rx = {k: re.compile(v) for k, v in patterns.items()}
        deadline = time.monotonic() + timeout
        while True:
            hits = [(m.start(), k, m) for k, r in rx.items() if (m := r.search(self.text, start))]
            if hits:
                _, k, m = min(hits, key=lambda h: h[0])
                return k, m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for any of {list(patterns)}:\n{self.text[-3000:]}")
            self._pump(min(left, 0.5))

    def silent_for(self, seconds: float, max_wait: float) -> bool:
        """True once the console stays silent for SECONDS (within MAX_WAIT)."""
        deadline = time.monotonic() + max_wait
        while time.monotonic() < deadline:
            self._pump(0.2)
            if time.monotonic() - self.last_output >= seconds:
                return True
        return False

    def read_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._pump(end - time.monotonic())

    def send(self, data: str | bytes) -> None:
        self.proc.stdin.write(data.encode() if isinstance(data, str) else data)
        self.proc.stdin.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


if __name__ == "__main__":  # manual poking: python tests/e2e/test_guests_raw.py PROFILE [k=v ...]
    name, *kv = sys.argv[1:]
    with Console(qemu_argv(name, vars=dict(x.split("=", 1) for x in kv))) as c:
        try:
            while True:
                if c._pump(0.5):
                    sys.stdout.write(c.buf.decode("utf-8", "replace"))
                    c.buf = b""
                    sys.stdout.flush()
        except KeyboardInterrupt:
            pass
