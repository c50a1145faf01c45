#!/usr/bin/env python3
"""bench/debian-boot: how long the real Debian guest (debian-amd64) takes to reach login, and where the time goes.

Each round boots debian-amd64 and, as the baseline of the same moment (the machine is shared, so absolute times
drift), the busybox guest linux-x86_64 on the same QEMU machine type; it prints the stage times, the gap between
userspace (the kernel starting /init) and the login prompt, the longest silence inside that gap (the console
keeps printing while systemd works), and the ratio to the baseline. quiet_timeout is raised so a loaded machine
does not end a healthy boot as a hang (the rule issue 17 is about). Not a timed test.

    .venv/bin/python bench/debian-boot.py [-n ROUNDS] [--config guests/bootlab.toml]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def line_times(log: Path) -> list[tuple[float, str]]:
    """(arrival time, text) per console line, from the log and its ``.times`` index (offset, seconds per read)."""
    data = log.read_bytes()
    index = [
        (int(o), float(t)) for o, t in (ln.split() for ln in log.with_suffix(".times").read_text().split("\n") if ln)
    ]
    out: list[tuple[float, str]] = []
    start, k = 0, 0
    while (nl := data.find(b"\n", start)) >= 0:
        while k + 1 < len(index) and index[k + 1][0] <= nl:
            k += 1
        out.append((index[k][1], data[start:nl].decode("utf-8", "replace")))
        start = nl + 1
    return out


def main() -> int:
    from bootlab.lab.boot import BootOptions, boot
    from bootlab.profile.loader import load_project, resolve_profile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3, help="rounds (each boots debian-amd64 and linux-x86_64 once)")
    ap.add_argument("--config", type=Path, default=ROOT / "guests" / "bootlab.toml")
    args = ap.parse_args()
    project = load_project(args.config)
    sets = ["quiet_timeout=150", "timeout=600"]
    tmp = Path(tempfile.mkdtemp(prefix="bootlab-bench-debian-"))
    rows: list[dict[str, float]] = []
    head = ("round", 5), ("kernel", 7), ("userspace", 9), ("login", 7), ("gap", 6), ("max silence", 11)
    print(" ".join(f"{h:>{w}}" for h, w in (*head, ("baseline", 8), ("ratio", 6))))
    for i in range(args.n):
        times: dict[str, dict[str, float]] = {}
        for name in ("debian-amd64", "linux-x86_64"):
            log = tmp / f"{name}-{i}.log"
            v = boot(resolve_profile(name, project=project, sets=sets), options=BootOptions(log_path=log))
            if v.outcome != "pass":
                print(f"{i + 1:>5} {name}: {v.outcome} ({v.title}); log {log}")
                break
            times[name] = {s.name: s.t for s in v.stages if s.t is not None}
            if name == "debian-amd64":
                t_user, t_login = times[name]["userspace"], times[name]["login"]
                arrivals = [t for t, _ in line_times(log) if t_user <= t <= t_login]
                gaps = [b - a for a, b in itertools.pairwise(arrivals)]
                times[name]["silence"] = max(gaps, default=t_login - t_user)
        if len(times) < 2:
            continue
        d, b = times["debian-amd64"], times["linux-x86_64"]
        row = {
            "kernel": d["kernel"],
            "userspace": d["userspace"],
            "login": d["login"],
            "gap": d["login"] - d["userspace"],
            "silence": d["silence"],
            "baseline": b["login"],
        }
        rows.append(row)
        print(
            f"{i + 1:>5} {row['kernel']:>7.1f} {row['userspace']:>9.1f} {row['login']:>7.1f} {row['gap']:>6.1f} "
            f"{row['silence']:>11.1f} {row['baseline']:>8.1f} {row['login'] / row['baseline']:>6.1f}",
            flush=True,
        )
    if rows:
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(
            f"median over {len(rows)}: login {med['login']:.1f} s, userspace -> login {med['gap']:.1f} s "
            f"(longest silence in it {med['silence']:.1f} s); linux-x86_64 baseline {med['baseline']:.1f} s, "
            f"ratio {med['login'] / med['baseline']:.1f}x; load average now {os.getloadavg()[0]:.1f}"
        )
    print(f"logs: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
