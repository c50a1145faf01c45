#!/usr/bin/env python3
"""bench/crash-registers: what reading the fault registers through QEMU's gdb stub adds to a crash's registers.

Boots the guest once (``hang`` mode), pauses it, then times ``QemuMachine.registers()`` (what every crash and
hang runs) with and without the gdb-stub step on the same paused VM, alternating the two so host load hits both
alike. Prints the median milliseconds of each, the difference and the ratio. The stub step starts the stub,
reads the target description and every vCPU, and removes the stub.
Not a timed test.

    .venv/bin/python bench/crash-registers.py [-n ROUNDS] [--profile linux-arm64] [--config guests/bootlab.toml]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def bench(profile_name: str, config: Path, sets: list[str], rounds: int) -> dict[bool, list[float]]:
    from bootlab.host import probe
    from bootlab.profile.loader import load_project, resolve_profile
    from bootlab.qemu.invocation import build_invocation
    from bootlab.qemu.machine import QemuMachine

    prof = resolve_profile(profile_name, project=load_project(config), sets=sets)
    times: dict[bool, list[float]] = {False: [], True: []}
    async with QemuMachine() as machine:
        machine.launch(build_invocation(prof, probe(), machine.runtime).argv)
        console = await machine.console()
        seen = b""
        while b"bootlab-guest: hanging" not in seen:
            chunk = await console.read(180)
            if chunk is None or chunk.eof:
                raise SystemExit("the guest stopped before it reached hang mode")
            seen += chunk.data
        for i in range(rounds):
            for system in (False, True) if i % 2 == 0 else (True, False):
                t0 = time.perf_counter()
                regs = await machine.registers(system=system)
                times[system].append((time.perf_counter() - t0) * 1000)
                if system and (not regs or regs[0].stub_error or regs[0].esr is None):
                    raise SystemExit(f"the stub step did not read the registers: {regs}")
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="rounds (each times both variants once; default 20)")
    ap.add_argument("--profile", default="linux-arm64")
    ap.add_argument("--set", dest="sets", action="append", default=["vars.mode=hang"])
    ap.add_argument("--config", type=Path, default=ROOT / "guests" / "bootlab.toml")
    args = ap.parse_args()
    times = asyncio.run(bench(args.profile, args.config, args.sets, args.n))
    base, stub = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.profile}: info registers only {base:.1f} ms, with the gdb stub {stub:.1f} ms (median of {args.n})")
    print(f"the gdb stub adds {stub - base:.1f} ms per crash, ratio {stub / base:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
