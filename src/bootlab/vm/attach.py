"""`bootlab vm console NAME`: the terminal, raw, wired to the VM's serial console until Ctrl-].

Detaching only closes this connection: the supervisor keeps the VM, its log and the other attachers. The
terminal is put back however we leave (detach, the VM stopping, an exception), because a terminal left in raw
mode is the kind of thing that made the user's old scripts painful.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import tty

from bootlab.vm.manager import connect, get, reap
from bootlab.vm.protocol import AttachRequest
from bootlab.vm.registry import VmDir

DETACH = b"\x1d"  # Ctrl-]
DETACH_NAME = "Ctrl-]"


def attach(name: str) -> int:
    import json

    reap()
    vm: VmDir = get(name)
    sock = connect(vm, timeout=10)
    sock.sendall(AttachRequest().encode())
    first = bytearray()
    while b"\n" not in first:
        chunk = sock.recv(4096)
        if not chunk:
            break
        first += chunk
    head, _, rest = bytes(first).partition(b"\n")
    reply = json.loads(head or b"{}")
    if "error" in reply:
        from bootlab.errors import UsageError

        sock.close()
        raise UsageError(f"{reply['error']}; start it with `bootlab vm start {name}`")
    sys.stderr.write(f"bootlab: attached to {name}'s console; detach with {DETACH_NAME} (the VM keeps running)\r\n")
    sys.stderr.flush()
    stdin = sys.stdin.fileno()
    stdout = sys.stdout.fileno()
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    sock.settimeout(None)
    try:
        if saved is not None:
            tty.setraw(stdin)
        if rest:
            os.write(stdout, rest)
        while True:
            ready, _, _ = select.select([stdin, sock], [], [])
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    sys.stderr.write(f"\r\nbootlab: {name}'s console closed (the VM stopped)\r\n")
                    return 0
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 4096)
                if not data:
                    break  # stdin closed: detach
                if DETACH in data:
                    before = data.split(DETACH, 1)[0]
                    if before:
                        sock.sendall(before)
                    break
                sock.sendall(data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        with contextlib.suppress(OSError):
            sock.close()
    sys.stderr.write(f"\r\nbootlab: detached from {name} (still running)\r\n")
    return 0
