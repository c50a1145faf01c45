"""`bootlab doctor`: what this host offers (QEMU binaries, accelerators, firmware) and what to install."""

from __future__ import annotations

import argparse
import json

from bootlab.cli.common import add_json_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="probe this host: QEMU binaries, accelerators, firmware")
    add_json_arg(p, "machine-readable output")
    p.set_defaults(func=run)


def advice(host: object) -> list[str]:
    """What to install for anything missing, one line each."""
    from bootlab.arch import ARCHES, QEMU_PACKAGES
    from bootlab.host import Host, firmware_install_hint

    assert isinstance(host, Host)
    mac = host.os == "darwin"
    tips: list[str] = []
    for arch in ARCHES[:2]:
        if arch not in host.qemu:
            tips.append(
                f"qemu-system-{arch} missing: "
                + ("brew install qemu" if mac else f"sudo apt install {QEMU_PACKAGES[arch]}")
            )
    for name in ("edk2-aarch64-code.fd", "edk2-x86_64-code.fd"):
        if name not in host.firmware:
            tips.append(f"firmware {name} missing: {firmware_install_hint(name)}")
    return tips


def run(args: argparse.Namespace) -> int:
    from bootlab.host import probe

    host = probe()
    if args.json:
        print(json.dumps(host.to_json(), indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    # paths are never cut (they are what the user copies): the tables keep them whole and the long reasons go
    # below the table, where they wrap as prose
    console = Console(highlight=False)
    table = Table(title=f"host: {host.os} {host.arch}", title_justify="left")
    table.add_column("arch", no_wrap=True)
    table.add_column("qemu", no_wrap=True, overflow="fold")
    table.add_column("version", no_wrap=True)
    table.add_column("accelerators (best first)")
    arches = sorted(set(host.qemu) | {"aarch64", "x86_64"})
    for arch in arches:
        b = host.qemu.get(arch)
        table.add_row(
            arch,
            b.path if b else "[red]missing[/red]",
            b.version if b else "",
            ", ".join(host.accelerators.get(arch, [])),
        )
    console.print(table)
    for arch in arches:
        for accel, reason in host.unavailable.get(arch, {}).items():
            console.print(f"  {arch} {accel} unavailable: {reason}", markup=False)
    fw = Table(title="firmware", title_justify="left")
    fw.add_column("name", no_wrap=True)
    fw.add_column("path", no_wrap=True, overflow="fold")
    for name, path in sorted(host.firmware.items()):
        fw.add_row(name, path)
    console.print(fw)
    tips = advice(host)
    for tip in tips:
        console.print(f"[yellow]to install[/yellow] {tip}")
    if not tips:
        console.print("[green]everything bootlab needs is here[/green]")
    return 0
