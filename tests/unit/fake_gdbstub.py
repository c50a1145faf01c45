"""A tiny gdb remote-protocol stub on a unix socket, for testing bootlab's RSP client without QEMU.

It answers the packets QEMU's stub answers (qSupported, QStartNoAckMode when offered, qXfer:features:read,
qfThreadInfo/qsThreadInfo, Hg, p, g) and can misbehave on purpose: run-length encode its replies, send one reply
with a bad checksum, refuse ``p``. Every packet it receives is kept in ``received``, so tests can check that the
client never sent anything that would resume or change the guest.
"""

from __future__ import annotations

import asyncio
import re
import stat
from pathlib import Path
from typing import Any

_ESC = b"#$}*"


def _checksum(body: bytes) -> str:
    return f"{sum(body) % 256:02x}"


def escape_binary(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        out += bytes((0x7D, b ^ 0x20)) if b in _ESC else bytes((b,))
    return bytes(out)


def rle(body: bytes) -> bytes:
    """Run-length encode runs of 4+ identical bytes as gdbserver does: ``X*N`` with N = chr(29 + extra)."""
    out = bytearray()
    i = 0
    while i < len(body):
        j = i
        while j < len(body) and body[j] == body[i] and j - i < 98:
            j += 1
        extra = j - i - 1
        if extra >= 3 and extra not in (6, 7) and body[i] not in _ESC:  # '#' and '$' are not valid counts
            out += bytes((body[i],)) + b"*" + bytes((29 + extra,))
        else:
            out += body[i:j]
        i = j
    return bytes(out)


def _thread_key(text: str) -> tuple[int, int]:
    """``p01.02`` and ``p1.2`` name the same thread (ids are hex, leading zeros optional)."""
    if text.startswith("p"):
        pid, tid = text[1:].split(".")
        return int(pid, 16), int(tid, 16)
    return 1, int(text, 16)


class FakeStub:
    def __init__(
        self,
        annexes: dict[str, str],
        threads: list[str],
        registers: dict[str, dict[int, str]],
        *,
        offer_no_ack: bool = False,
        use_rle: bool = False,
        corrupt_first_reply: bool = False,
        support_p: bool = True,
        g_blocks: dict[str, str] | None = None,
        chunk: int = 64,
        mute_on: str | None = None,
    ) -> None:
        self.annexes = annexes
        self.threads = threads
        self.registers = registers
        self.offer_no_ack = offer_no_ack
        self.use_rle = use_rle
        self.corrupt_next = corrupt_first_reply
        self.support_p = support_p
        self.g_blocks = g_blocks or {}
        self.chunk = chunk
        self.mute_on = mute_on  # stop answering (connection left open) at the first packet starting with this
        self.received: list[str] = []
        self.naks = 0
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self, path: Path) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=str(path))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    # ------------------------------------------------------------------ protocol
    def _answer(self, body: str, state: dict[str, object]) -> bytes:
        if body.startswith("qSupported"):
            extra = ";QStartNoAckMode+" if self.offer_no_ack else ""
            return f"PacketSize=1000;qXfer:features:read+;multiprocess+{extra}".encode()
        if body == "QStartNoAckMode" and self.offer_no_ack:
            state["no_ack_after_reply"] = True
            return b"OK"
        if body.startswith("qXfer:features:read:"):
            annex, span = body[len("qXfer:features:read:") :].rsplit(":", 1)
            offset, length = (int(x, 16) for x in span.split(","))
            if annex not in self.annexes:
                return b"E00"
            data = self.annexes[annex].encode()
            piece = data[offset : offset + min(length, self.chunk)]
            kind = b"l" if offset + len(piece) >= len(data) else b"m"
            return kind + escape_binary(piece)
        if body == "qfThreadInfo":
            state["next_thread"] = 1
            return b"m" + self.threads[0].encode()
        if body == "qsThreadInfo":
            i = int(state.get("next_thread", 1))  # type: ignore[call-overload]
            state["next_thread"] = i + 1
            return b"m" + self.threads[i].encode() if i < len(self.threads) else b"l"
        if body.startswith("Hg"):
            wanted = _thread_key(body[2:])
            found = [t for t in self.threads if _thread_key(t) == wanted]
            if not found:
                return b"E22"
            state["thread"] = found[0]
            return b"OK"
        if body.startswith("p"):
            if not self.support_p:
                return b""
            regs = self.registers.get(str(state.get("thread", self.threads[0])), {})
            value = regs.get(int(body[1:], 16))
            return b"E14" if value is None else value.encode()
        if body == "g":
            return self.g_blocks.get(str(state.get("thread", self.threads[0])), "").encode()
        return b""  # unsupported, as the protocol says

    def _frame(self, body: bytes) -> bytes:
        if self.use_rle:
            body = rle(body)
        return b"$" + body + b"#" + _checksum(body).encode()

    def _corrupt(self, packet: bytes) -> bytes:
        """The first reply goes out once with a wrong checksum; a '-' from the client gets the good one."""
        if not self.corrupt_next:
            return packet
        self.corrupt_next = False
        cs = int(packet[-2:], 16)
        return packet[:-2] + f"{(cs + 1) % 256:02x}".encode()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        state: dict[str, object] = {}
        ack = True
        last = b""
        try:
            while True:
                c = await reader.read(1)
                if not c:
                    return
                if c == b"-":  # the client wants the last reply again
                    self.naks += 1
                    writer.write(last)
                    await writer.drain()
                    continue
                if c != b"$":
                    continue
                raw = (await reader.readuntil(b"#"))[:-1]
                cs = await reader.readexactly(2)
                if cs.decode() != _checksum(raw):
                    writer.write(b"-")
                    continue
                if ack:
                    writer.write(b"+")
                body = raw.decode("latin-1")
                self.received.append(body)
                if self.mute_on is not None and body.startswith(self.mute_on):
                    while await reader.read(4096):  # silent until the client gives up and closes
                        pass
                    return
                last = self._frame(self._answer(body, state))
                writer.write(self._corrupt(last))
                await writer.drain()
                if state.pop("no_ack_after_reply", False):
                    ack = False
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


# A target description shaped like QEMU's: xi:include without a declared prefix, implicit then explicit regnums,
# and an XML comment with the characters that must be escaped on the wire.
CORE = (
    '<?xml version="1.0"?><!DOCTYPE feature SYSTEM "gdb-target.dtd">'
    '<feature name="org.gnu.gdb.aarch64.core">'
    + "".join(f'<reg name="x{i}" bitsize="64"/>' for i in range(31))
    + '<reg name="sp" bitsize="64" type="data_ptr"/><reg name="pc" bitsize="64" type="code_ptr"/>'
    '<reg name="cpsr" bitsize="32"/></feature>'
)
SYSREGS = (
    '<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">'
    "<!-- escapes on the wire: } # $ * -->"
    '<feature name="org.qemu.gdb.arm.sys.regs">'
    '<reg name="SPSR_EL1" bitsize="64" regnum="93" group="cp_regs"/>'
    '<reg name="ELR_EL1" bitsize="64" regnum="97" group="cp_regs"/>'
    '<reg name="ESR_EL1" bitsize="64" regnum="188" group="cp_regs"/>'
    '<reg name="FAR_EL1" bitsize="64" regnum="223" group="cp_regs"/>'
    "</feature>"
)
TARGET = (
    '<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target><architecture>aarch64</architecture>'
    '<xi:include href="aarch64-core.xml"/><xi:include href="system-registers.xml"/></target>'
)
ANNEXES = {"target.xml": TARGET, "aarch64-core.xml": CORE, "system-registers.xml": SYSREGS}


def le(value: int, size: int = 8) -> str:
    """A register value as the stub sends it: little-endian hex bytes."""
    return value.to_bytes(size, "little").hex()


# -------------------------------------------------------------------------------------------- QEMU's QMP side

# QEMU 7.2 .. 8.0 with -accel hvf (and x86 HVF): the accelerator has no guest-debug support. Text as QEMU prints
# it (gdbstub: error_report in gdbserver_start, then hmp_gdbserver's own line).
HVF_REFUSAL = (
    "gdbstub: current accelerator doesn't support guest debugging\r\n"
    "Could not open gdbserver on device 'unix:/tmp/x/gdb.sock,server=on,wait=off'\r\n"
)


class FakeQemu:
    """QMP as QEMU answers it, with a FakeStub listening where ``gdbserver unix:PATH,...`` says."""

    def __init__(self, stub: FakeStub | None, *, refuse: str | None = None, chardevs: str = "") -> None:
        self.stub = stub
        self.refuse = refuse
        self.chardevs = chardevs or "serial0: filename=unix:/x/serial.sock,server=on\n"
        self.lines: list[str] = []
        self.socket: Path | None = None

    async def __call__(self, command: str, args: dict[str, Any] | None) -> Any:
        assert command == "human-monitor-command" and args is not None
        line = args["command-line"]
        self.lines.append(line)
        if line == "info chardev":
            return self.chardevs
        if line == "gdbserver none":
            if self.stub is not None:
                await self.stub.stop()
            if self.socket is not None:
                self.socket.unlink(missing_ok=True)
            return "Disabled gdbserver\r\n"
        if self.refuse is not None:
            return self.refuse
        m = re.fullmatch(r"gdbserver unix:(.+),server=on,wait=off", line)
        assert m, line
        self.socket = Path(m.group(1).replace(",,", ","))
        assert stat.S_IMODE(self.socket.parent.stat().st_mode) == 0o700
        if self.stub is not None:
            await self.stub.start(self.socket)
        return f"Waiting for gdb connection on device '{line.split(' ', 1)[1]}'\r\n"


def aarch64_stub() -> FakeStub:
    regs = {
        "p01.01": {97: le(0x44A7CC), 188: le(0x92000047), 223: le(0x11000), 93: le(0x0), 33: le(0x3C5, 4)},
        "p01.02": {97: le(0x400100), 188: le(0x0), 223: le(0x0), 93: le(0x3C5), 33: le(0x3C5, 4)},
    }
    return FakeStub(ANNEXES, ["p01.01", "p01.02"], regs)
