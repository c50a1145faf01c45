"""QEMU's gdb stub without gdb: start and stop it over QMP, and speak the GDB remote serial protocol (RSP) to it.

Why: QEMU's ``info registers`` has no ELR_EL1, ESR_EL1 or FAR_EL1 on aarch64 (7.2 and 10.0 alike), yet they are
what says why a guest died. QEMU's gdb stub exposes every system register QEMU models (its dynamic
``system-registers.xml`` target-description feature), so bootlab reads them through the stub. No gdb is needed
on the user's machine; only the small part of RSP that reading a stopped machine takes is spoken here:
``qSupported``, ``QStartNoAckMode``, ``qXfer:features:read`` (the target description, with its ``xi:include``
annexes), ``qfThreadInfo``/``qsThreadInfo`` (one thread per vCPU), ``Hg`` (select a vCPU), ``p``/``g`` (read
registers). No maintained, small Python RSP client exists (``pyrsp`` is unmaintained since 2019; ``avatar2`` is
a framework), and this subset is ~300 lines.

Two QEMU facts shape the design:

- ``D`` (detach) **resumes the guest** in QEMU when no process stays attached (``handle_detach`` calls
  ``gdb_continue``). A crashed guest must stay frozen, so :meth:`GdbStub.close` simply closes the socket:
  QEMU's stub does nothing on disconnect (only the *connect* event stops the VM, which is already paused).
- ``gdbserver`` is an HMP command, reached through QMP's ``human-monitor-command``, so a machine whose boot never
  crashes carries nothing extra on its command line. ``gdbserver none`` removes the stub (and its socket) again.

Protocol reference: GDB manual, "Remote Protocol" (Overview, Packets, General Query Packets, Target Description
Format); QEMU docs/system/gdb.rst and gdbstub/gdbstub.c, gdbstub/system.c.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import xml.parsers.expat
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bootlab.errors import InfraError

# How bootlab runs a QMP command, whatever client the caller holds: ``await execute("stop", None)``.
# ``qemu.qmp.QMPClient.execute`` has exactly this shape.
Execute = Callable[[str, dict[str, Any] | None], Awaitable[Any]]

# Characters that must be escaped inside a packet body ("Overview": '}' then the byte XOR 0x20).
_ESCAPED = frozenset(b"#$}*")
_THREAD = re.compile(r"^(?:p(-?[0-9a-fA-F]+)\.)?(-?[0-9a-fA-F]+)$")


class GdbStubError(InfraError):
    """The stub could not be started, reached, or answered with an error (an ``E NN`` reply)."""


class GdbStubUnsupported(GdbStubError):
    """The stub answered with an empty packet: it does not support the request."""


# ---------------------------------------------------------------------------------------------- packet framing
def checksum(body: bytes) -> int:
    """The RSP checksum: the sum of the body's bytes modulo 256."""
    return sum(body) % 256


def escape(data: bytes) -> bytes:
    """Escape ``#``, ``$``, ``}`` and ``*`` as ``}`` followed by the byte XOR 0x20."""
    out = bytearray()
    for b in data:
        if b in _ESCAPED:
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def frame(body: bytes) -> bytes:
    """``$body#cs`` with the body escaped (bootlab never run-length encodes what it sends)."""
    body = escape(body)
    return b"$" + body + b"#" + f"{checksum(body):02x}".encode()


def decode_body(raw: bytes) -> bytes:
    """Undo run-length encoding and escapes in a received packet body (checksum already verified on ``raw``).

    RLE: ``X*N`` means X repeated ``ord(N) - 29`` more times. Escapes: ``}`` then the byte XOR 0x20. gdb expands
    runs first (``read_frame``) and unescapes binary payloads after; a stub never encodes a run of an escape.
    """
    expanded = bytearray()
    i = 0
    while i < len(raw):
        b = raw[i]
        if b == 0x2A and expanded and i + 1 < len(raw):  # '*': run-length of the previous byte
            count = raw[i + 1] - 29
            if count < 0:
                raise GdbStubError(f"bad run-length count {raw[i + 1]!r} in a gdb stub reply")
            expanded += bytes((expanded[-1],)) * count
            i += 2
            continue
        expanded.append(b)
        i += 1
    out = bytearray()
    it = iter(expanded)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                raise GdbStubError("a gdb stub reply ends inside an escape")
            out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def check_error(reply: str, what: str) -> str:
    """Raise on ``E NN`` / ``E.message`` replies; an empty reply means the stub does not support ``what``."""
    if re.fullmatch(r"E[0-9a-fA-F]{2}", reply) or reply.startswith("E."):
        raise GdbStubError(f"gdb stub refused {what}: {reply}")
    if reply == "":
        raise GdbStubUnsupported(f"gdb stub does not support {what}")
    return reply


# ---------------------------------------------------------------------------------------------- target description
@dataclass(frozen=True)
class Register:
    name: str
    regnum: int
    bitsize: int
    feature: str


@dataclass
class TargetDescription:
    """What ``qXfer:features:read`` said: the architecture and every register with its number and size."""

    architecture: str = ""
    registers: dict[str, Register] = field(default_factory=dict)  # by exact name, as the stub spells it

    def find(self, name: str) -> Register | None:
        """A register by name; exact first, then case-insensitively (gdb's core names are lower case, QEMU's
        system registers upper case)."""
        reg = self.registers.get(name)
        if reg is not None:
            return reg
        lowered = name.lower()
        for candidate in self.registers.values():
            if candidate.name.lower() == lowered:
                return candidate
        return None

    @property
    def ordered(self) -> list[Register]:
        return sorted(self.registers.values(), key=lambda r: r.regnum)


@dataclass
class _Annex:
    """One parsed XML document of a target description, in document order."""

    architecture: str = ""
    includes: list[str] = field(default_factory=list)
    items: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # ("feature"|"reg"|"include", attrs)


def parse_annex(text: str) -> _Annex:
    """Parse one target-description document with expat *without* namespace processing.

    QEMU writes ``<xi:include href=...>`` without declaring the ``xi`` prefix, which a namespace-aware parser
    (ElementTree) rejects as an unbound prefix; gdb's own parser does not care, and neither does this one.
    """
    annex = _Annex()
    stack: list[str] = []
    text_parts: list[str] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        stack.append(tag)
        if tag == "architecture":
            text_parts.clear()
        elif tag == "feature":
            annex.items.append(("feature", attrs))
        elif tag == "reg":
            annex.items.append(("reg", attrs))
        elif tag.endswith(":include") or tag == "include":
            href = attrs.get("href", "")
            annex.includes.append(href)
            annex.items.append(("include", {"href": href}))

    def end(tag: str) -> None:
        if tag == "architecture":
            annex.architecture = "".join(text_parts).strip()
        stack.pop()

    def chars(data: str) -> None:
        if stack and stack[-1] == "architecture":
            text_parts.append(data)

    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        raise GdbStubError(f"gdb stub sent a target description that is not XML: {exc}") from None
    return annex


def build_description(annexes: dict[str, str], root: str = "target.xml") -> TargetDescription:
    """Number the registers as gdb does: ``regnum`` when given, else one more than the previous register,
    starting at 0, walking features in document order with each ``xi:include`` expanded where it stands."""
    desc = TargetDescription()
    next_num = 0

    def walk(name: str, feature: str, depth: int) -> None:
        nonlocal next_num
        if depth > 8:
            raise GdbStubError(f"target description includes nest too deep at {name}")
        if name not in annexes:
            raise GdbStubError(f"target description names {name}, which the stub did not send")
        annex = parse_annex(annexes[name])
        if annex.architecture and not desc.architecture:
            desc.architecture = annex.architecture
        current = feature
        for kind, attrs in annex.items:
            if kind == "feature":
                current = attrs.get("name", "")
            elif kind == "include":
                walk(attrs["href"], current, depth + 1)
            elif kind == "reg":
                num = int(attrs["regnum"]) if "regnum" in attrs else next_num
                reg = Register(attrs.get("name", ""), num, int(attrs.get("bitsize", "0")), current)
                desc.registers.setdefault(reg.name, reg)
                next_num = num + 1

    walk(root, "", 0)
    return desc


def parse_thread_id(text: str) -> tuple[int | None, int]:
    """``p1.2`` -> (1, 2); ``02`` -> (None, 2). Thread ids are hex; -1 means all, 0 any."""
    m = _THREAD.match(text.strip())
    if not m:
        raise GdbStubError(f"gdb stub sent a thread id bootlab cannot read: {text!r}")
    pid = int(m.group(1), 16) if m.group(1) is not None else None
    return pid, int(m.group(2), 16)


def format_thread_id(pid: int | None, tid: int) -> str:
    return f"p{pid:x}.{tid:x}" if pid is not None else f"{tid:x}"


def decode_register(hexdata: str, *, byteorder: Literal["little", "big"] = "little") -> int | None:
    """A register's value from its hex bytes in target byte order; None when the stub marks it unavailable
    (``xx``)."""
    if "x" in hexdata.lower():
        return None
    if len(hexdata) % 2:
        raise GdbStubError(f"gdb stub sent an odd number of hex digits for a register: {hexdata!r}")
    return int.from_bytes(bytes.fromhex(hexdata), byteorder)


# ---------------------------------------------------------------------------------------------- the client
class GdbStub:
    """A connection to a gdb stub (QEMU's) on a unix socket. Use ``async with await GdbStub.connect(path)``.

    Every request has a timeout; an ``E NN`` reply raises :class:`GdbStubError`. Nothing here resumes, steps
    or writes to the guest.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float) -> None:
        self._reader = reader
        self._writer = writer
        self.timeout = timeout
        self.ack_mode = True  # RSP starts in acknowledgment mode
        self.features: dict[str, str] = {}
        self.multiprocess = False
        self._description: TargetDescription | None = None
        self.packet_size = 4096

    @classmethod
    async def connect(cls, path: Path | str, *, timeout: float = 3.0) -> GdbStub:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
        except (OSError, TimeoutError) as exc:
            raise GdbStubError(f"cannot connect to the gdb stub at {path}: {exc}") from None
        stub = cls(reader, writer, timeout)
        try:
            await stub.handshake()
        except BaseException:
            await stub.close()
            raise
        return stub

    async def __aenter__(self) -> GdbStub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Leave without ``D``: QEMU's detach resumes the guest, a closed socket leaves it exactly as it is."""
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), self.timeout)

    # --------------------------------------------------------------------------- framing over the socket
    async def _read_byte(self) -> int:
        data = await self._reader.read(1)
        if not data:
            raise GdbStubError("the gdb stub closed the connection")
        return data[0]

    async def _read_packet(self) -> bytes:
        """The next packet's decoded body; acks and notifications (``%...#cs``) are skipped."""
        while True:
            b = await self._read_byte()
            if b not in (0x24, 0x25):  # not '$' or '%': a stray ack or noise between packets
                continue
            notification = b == 0x25
            raw = await self._reader.readuntil(b"#")
            raw = raw[:-1]
            cs = bytes((await self._read_byte(), await self._read_byte()))
            try:
                want = int(cs, 16)
            except ValueError:
                want = -1
            if want != checksum(raw):
                if self.ack_mode and not notification:
                    self._writer.write(b"-")  # ask for a retransmission
                    await self._writer.drain()
                    continue
                raise GdbStubError(f"gdb stub reply with a bad checksum ({cs!r}, computed {checksum(raw):02x})")
            if notification:
                continue  # asynchronous notifications (non-stop mode) carry nothing bootlab asks for
            if self.ack_mode:
                self._writer.write(b"+")
                await self._writer.drain()
            return decode_body(raw)

    async def _send(self, body: bytes) -> None:
        packet = frame(body)
        for _ in range(4):
            self._writer.write(packet)
            await self._writer.drain()
            if not self.ack_mode:
                return
            ack = await self._read_byte()
            while ack not in (0x2B, 0x2D):  # skip noise until the ack
                ack = await self._read_byte()
            if ack == 0x2B:
                return
        raise GdbStubError("the gdb stub kept rejecting a packet (bad checksum)")

    async def request(self, body: str | bytes) -> bytes:
        """Send one packet and return the decoded body of the reply."""
        data = body.encode() if isinstance(body, str) else body
        try:
            async with asyncio.timeout(self.timeout):
                await self._send(data)
                return await self._read_packet()
        except TimeoutError:
            cmd = data[:40].decode(errors="replace")
            raise GdbStubError(f"the gdb stub did not answer {cmd!r} within {self.timeout:g}s") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise GdbStubError(f"gdb stub connection failed: {exc}") from None

    async def query(self, body: str) -> str:
        return (await self.request(body)).decode("latin-1")

    # --------------------------------------------------------------------------- session set-up
    async def handshake(self) -> None:
        """``qSupported`` (we speak multiprocess thread ids and XML target descriptions), then no-ack mode when
        the stub offers it (fewer round trips, and no ack bytes to get wrong)."""
        reply = await self.query("qSupported:multiprocess+;xmlRegisters=i386,arm,aarch64")
        for item in reply.split(";"):
            if "=" in item:
                key, value = item.split("=", 1)
                self.features[key] = value
            elif item.endswith(("+", "-", "?")):
                self.features[item[:-1]] = item[-1]
        self.multiprocess = self.features.get("multiprocess") == "+"
        with contextlib.suppress(ValueError):
            self.packet_size = int(self.features.get("PacketSize", "1000"), 16)
        if self.features.get("QStartNoAckMode") == "+" and await self.query("QStartNoAckMode") == "OK":
            self.ack_mode = False

    # --------------------------------------------------------------------------- queries
    async def read_annex(self, annex: str) -> str:
        """One document of the target description (``qXfer:features:read:ANNEX:OFFSET,LENGTH`` until ``l``)."""
        if self.features.get("qXfer:features:read") != "+":
            raise GdbStubError("gdb stub offers no target description (qXfer:features:read)")
        chunk = max(64, self.packet_size - 16)
        out = bytearray()
        while True:
            reply = await self.request(f"qXfer:features:read:{annex}:{len(out):x},{chunk:x}")
            text = reply.decode("latin-1")
            check_error(text, f"qXfer:features:read:{annex}")
            kind, data = reply[:1], reply[1:]
            if kind not in (b"m", b"l"):
                raise GdbStubError(f"gdb stub sent an unexpected reply to qXfer {annex}: {text[:40]!r}")
            out += data
            if kind == b"l" or not data:
                return out.decode("utf-8", errors="replace")

    async def target_description(self) -> TargetDescription:
        """The whole description (``target.xml`` and the annexes it includes), read once per connection."""
        if self._description is None:
            annexes: dict[str, str] = {}
            pending = ["target.xml"]
            while pending:
                name = pending.pop()
                if name in annexes:
                    continue
                annexes[name] = await self.read_annex(name)
                pending.extend(parse_annex(annexes[name]).includes)
            self._description = build_description(annexes)
        return self._description

    async def threads(self) -> list[tuple[int | None, int]]:
        """Every thread the stub lists (in system mode: one per vCPU, tid = cpu index + 1)."""
        out: list[tuple[int | None, int]] = []
        reply = await self.query("qfThreadInfo")
        for _ in range(4096):
            if reply.startswith("l"):
                return out
            if not reply.startswith("m"):
                check_error(reply, "qfThreadInfo")
                raise GdbStubError(f"gdb stub sent an unexpected thread list: {reply[:40]!r}")
            out += [parse_thread_id(t) for t in reply[1:].split(",") if t]
            reply = await self.query("qsThreadInfo")
        raise GdbStubError("gdb stub thread list never ended")

    async def select_thread(self, pid: int | None, tid: int) -> None:
        """``Hg``: the thread (vCPU) whose registers ``p`` and ``g`` read."""
        if pid is None and self.multiprocess:
            pid = 1
        check_error(await self.query(f"Hg{format_thread_id(pid if self.multiprocess else None, tid)}"), "Hg")

    async def read_register(self, regnum: int) -> str:
        """``p``: one register's raw hex (target byte order), as sent."""
        reply = await self.query(f"p{regnum:x}")
        return check_error(reply, f"reading register {regnum} (p{regnum:x})")

    async def read_core_registers(self) -> str:
        """``g``: the stub's block of general registers, raw hex in register-number order."""
        return check_error(await self.query("g"), "reading registers (g)")

    async def read_named(self, names: list[str]) -> dict[str, int | None]:
        """Read registers by name on the selected thread; a name the target does not describe is left out.

        ``p`` is used per register (QEMU answers every described register with it, system registers included);
        if the stub does not support ``p``, the values are cut out of ``g``'s block instead (only registers
        in that block can be read then).
        """
        desc = await self.target_description()
        wanted = {name: desc.find(name) for name in names}
        out: dict[str, int | None] = {}
        block: str | None = None
        for name, reg in wanted.items():
            if reg is None:
                continue
            try:
                out[name] = decode_register(await self.read_register(reg.regnum))
            except GdbStubUnsupported:
                if block is None:
                    block = await self.read_core_registers()
                piece = _slice_block(block, desc, reg)
                if piece is not None:
                    out[name] = decode_register(piece)
        return out


def _slice_block(block: str, desc: TargetDescription, reg: Register) -> str | None:
    """``reg``'s hex in a ``g`` block (registers in number order), or None when the block does not reach it."""
    offset = 0
    for r in desc.ordered:
        width = r.bitsize // 4
        if r.regnum == reg.regnum:
            piece = block[offset : offset + width]
            return piece if len(piece) == width else None
        offset += width
    return None


# ---------------------------------------------------------------------------------------------- start/stop over QMP
def gdbserver_command(socket: Path | None) -> str:
    """The HMP command that starts the stub on ``socket`` (a listening unix socket that never blocks QEMU), or
    removes it (``None``). QEMU only adds ``server=on,wait=off`` itself for ``tcp:`` devices, so they are
    spelled out; commas in the path are doubled as QEMU's option syntax wants."""
    if socket is None:
        return "gdbserver none"
    text = str(socket)
    if any(c.isspace() for c in text) or '"' in text:
        raise GdbStubError(f"gdb stub socket path must not contain spaces or quotes: {text!r}")
    return f"gdbserver unix:{text.replace(',', ',,')},server=on,wait=off"


def _refusal(reply: str) -> str | None:
    """The reason in an HMP ``gdbserver`` reply that did not start the stub, else None."""
    text = reply.strip()
    if "Waiting for gdb connection" in text or "Disabled gdbserver" in text:
        return None
    return " ".join(text.split()) or "no reply"


async def has_gdbserver(execute: Execute) -> bool:
    """Whether the machine already runs a gdb stub (``-s``/``-gdb`` in the profile's ``extra_args``): its
    chardev is labelled ``gdb`` in ``info chardev``. bootlab never replaces or removes the user's own stub."""
    text = await execute("human-monitor-command", {"command-line": "info chardev"})
    return any(line.split(":", 1)[0].strip() == "gdb" for line in str(text).splitlines())


def private_socket_dir(directory: Path) -> None:
    """Refuse a socket directory anyone else could enter: the stub gives full control of the guest."""
    st = directory.stat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
        raise GdbStubError(f"{directory} must be a directory owned by you with mode 0700 for a gdb stub socket")


async def start_gdbserver(execute: Execute, socket: Path) -> Path:
    """Start QEMU's gdb stub listening on the unix socket ``socket``, whose directory must be 0700 and ours.
    Neither this nor :func:`stop_gdbserver` resumes or pauses the guest (the stub pauses a *running* guest when
    a client connects). Raises :class:`GdbStubError` with QEMU's own words when it refuses."""
    private_socket_dir(socket.parent)
    if len(str(socket).encode()) > 100:
        raise GdbStubError(f"gdb stub socket path is too long for a unix socket: {socket}")
    reply = str(await execute("human-monitor-command", {"command-line": gdbserver_command(socket)}))
    refused = _refusal(reply)
    if refused is not None:
        raise GdbStubError(f"QEMU did not start its gdb stub: {refused}")
    return socket


async def stop_gdbserver(execute: Execute) -> None:
    """Remove QEMU's gdb stub (``gdbserver none``); QEMU deletes its socket."""
    await execute("human-monitor-command", {"command-line": gdbserver_command(None)})


@contextlib.asynccontextmanager
async def gdbserver(execute: Execute, socket: Path) -> AsyncIterator[Path]:
    """:func:`start_gdbserver` for the ``with`` block, then :func:`stop_gdbserver` (also when the block fails)."""
    await start_gdbserver(execute, socket)
    try:
        yield socket
    finally:
        with contextlib.suppress(Exception):
            await stop_gdbserver(execute)


def gdb_argv(
    gdb: str, socket: Path, *, symbols: str | None = None, architecture: str | None = None, batch: tuple[str, ...] = ()
) -> list[str]:
    """The gdb command line that attaches to the stub on ``socket``: interactive, or with ``batch`` commands run
    in batch mode. Batch mode always ends with ``disconnect``: quitting gdb detaches, and QEMU's stub takes a
    detach as "continue", which would resume a guest bootlab holds paused. (Interactive users must be told the
    same: leave with ``disconnect``.)"""
    argv = [gdb, "-nx"]
    if batch:
        argv.append("-batch")
    if architecture:
        argv += ["-ex", f"set architecture {architecture}"]
    argv += ["-ex", f"target remote {socket}"]
    for command in batch:
        argv += ["-ex", command]
    if batch:
        argv += ["-ex", "disconnect"]
    if symbols:
        argv.append(symbols)
    return argv
