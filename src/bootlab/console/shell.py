"""Exact command execution over a serial shell: framing, parsing, resync, and :class:`GuestShell`, which runs
framed commands over any :class:`~bootlab.console.base.Console` (a named VM's console, a boot running checks, a
test's scripted shell).

A serial console is one byte stream shared by the kernel, the tty's echo, the shell's prompt and the command's
output. The user's old tmux + sed scraping broke on exactly that ("login/root text echoed as commands, output not
reliably captured"). Instead of trying to undo echo and strip prompts, every exec is framed:

    printf '%s%s\\n' __BL B<id>; { sh -c 'CMD' </dev/null 2>&1; printf '\\n%s%s:%d' __BL R<id> $?; } |
    gzip -1 -c | base64; printf '%s%s\\n' __BL E<id>

* the begin/end markers are built by ``printf`` from two parts, so the tty's echo of the command line never
  contains them: the only ``__BLB<id>`` on the console is the one the shell printed;
* the command runs in a fresh ``sh -c`` (like ssh's exec: exported variables, no shell functions);
* the output travels base64-encoded (gzip-compressed first when the guest has gzip, probed once: a serial
  console is slow), so nothing the command prints (prompts, ``root:/# ``, CR/LF, escapes, binary) can be
  mistaken for framing or mangled by the tty's newline translation, and kernel lines that land between two
  base64 lines are recognisable (not base64) and dropped;
* the exit status rides inside the encoded stream, after the output, behind a marker with the exec's id;
* stdin is ``/dev/null``: a command that reads stdin sees EOF instead of swallowing the next exec;
* the shell itself is left alone (no ``stty -echo``, no new PS1), so a person attached to the console still
  sees what they type.

A command too long for the guest's line editor (busybox ash holds ~1 KB per line), and every check script, is
*staged* first: its text travels base64-encoded in lines of :data:`STAGE_CHUNK` characters, each appended to a
file under the guest's ``$TMPDIR`` (``/tmp``) by ``printf`` and acknowledged by a marker before the next one is
typed (no type-ahead for the line editor to lose, and a failure is seen at the line that failed), and the framed
line then runs ``sh FILE`` instead of ``sh -c 'CMD'`` and removes the file.

The wrapper is POSIX sh (busybox ash, dash, bash). Redox's ion would need its own wrapper (not written yet).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import re
import secrets
import shlex
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bootlab.errors import EXIT_INFRA, BootlabError, InfraError

if TYPE_CHECKING:
    from bootlab.console.base import Console


class _Pattern(Protocol):
    def search(self, text: str) -> object: ...


PREFIX = "__BL"
# busybox ash line editing holds at most 1024 bytes per line; the tty's canonical buffer 4095
MAX_LINE = 1000
_B64_LINE = re.compile(rb"^[A-Za-z0-9+/=]+$")


def new_id() -> str:
    """A fresh marker id: random, so output of an earlier (interrupted) exec can never match a later one."""
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Framed:
    """One wrapped command: the line to type and the markers that delimit its answer."""

    id: str
    line: str
    gzip: bool = False

    @property
    def begin(self) -> bytes:
        return f"{PREFIX}B{self.id}".encode()

    @property
    def end(self) -> bytes:
        return f"{PREFIX}E{self.id}".encode()

    @property
    def rc_marker(self) -> bytes:
        return f"\n{PREFIX}R{self.id}:".encode()


def command_text(command: list[str] | str) -> str:
    """A command as the shell text ``sh -c`` runs: an argv list has each argument quoted (`-- sh -c 'exit 7'`
    stays three words), a string is shell text already."""
    return command if isinstance(command, str) else shlex.join(command)


class CommandTooLong(ValueError):
    """The framed line would not fit the guest's line editor: :class:`GuestShell` stages such a command."""


#: the most a staged command or script may be: it crosses the console in round trips of STAGE_CHUNK characters
MAX_STAGED = 1 << 20
#: base64 characters per staging line (a multiple of 4, so each line decodes on its own; ~900 bytes typed)
STAGE_CHUNK = 768
#: where staged files go in the guest: the temp directory its shell knows, /tmp by default
_TMP = '"${TMPDIR:-/tmp}"'


def _frame(run: str, mid: str, gzip: bool, after: str = "") -> str:
    """The framed line around ``run`` (a command the shell runs with stdin from /dev/null, stderr merged)."""
    # A fresh `sh` rather than a subshell of the login shell: it starts with stdout a pipe, so its stdio
    # is block-buffered. A subshell of a tty-attached busybox ash keeps the tty's line buffering, and its
    # in-process applets (seq, cat, echo...) then make one write per line: 1 MB took 17 s instead of 2 s.
    squeeze = "gzip -1 -c | " if gzip else ""
    return (
        f"printf '%s%s\\n' {PREFIX} B{mid}; "
        f"{{ {run} </dev/null 2>&1; printf '\\n%s%s:%d' {PREFIX} R{mid} $?; }} | {squeeze}base64; "
        f"printf '%s%s\\n' {PREFIX} E{mid}{after}"
    )


def wrap(command: list[str] | str, marker: str | None = None, *, gzip: bool = False) -> Framed:
    """The line to type for ``command``; raises :class:`CommandTooLong` when it is too long for the guest's line
    editor (:class:`GuestShell` then stages it: see :func:`stage_lines`).

    With ``gzip`` (the guest has it: see :data:`GZIP_PROBE`) the stream is compressed before encoding: a serial
    console moves ~100-150 KB/s under TCG, and text output (logs, listings) shrinks several times.
    """
    mid = marker or new_id()
    cmd = command_text(command)
    line = _frame(f"sh -c {shlex.quote(cmd)}", mid, gzip)
    if len(line.encode()) > MAX_LINE:
        raise CommandTooLong(
            f"the command is {len(cmd.encode())} bytes, too long for a serial shell line "
            f"(max about {MAX_LINE - len(line.encode()) + len(cmd.encode())})"
        )
    return Framed(mid, line + "\n", gzip)


def staged_path(mid: str) -> str:
    """The guest file a staged command of exec ``mid`` is written to (shell text: ``$TMPDIR`` expands there)."""
    return f"{_TMP}/bootlab.{mid}"


def wrap_staged(mid: str, *, gzip: bool = False) -> Framed:
    """The framed line that decodes the staged text of exec ``mid`` (see :func:`stage_lines`), runs it with
    ``sh FILE`` and removes both files."""
    path = staged_path(mid)
    run = f"{{ base64 -d {path}.b64 >{path} && sh {path}; }}"
    return Framed(mid, _frame(run, mid, gzip, after=f"; rm -f {path} {path}.b64") + "\n", gzip)


def stage_lines(mid: str, text: bytes) -> list[tuple[str, bytes, bytes]]:
    """The lines that write ``text`` (base64) into the guest for exec ``mid``, each with the marker it prints
    when the append worked and the one it prints when it did not (no writable temp directory)."""
    if len(text) > MAX_STAGED:
        raise CommandTooLong(
            f"the command is {len(text)} bytes, more than bootlab sends over a console ({MAX_STAGED} bytes); put it "
            f"in a script on a --mount share"
        )
    data = base64.b64encode(text).decode()
    path = f"{staged_path(mid)}.b64"
    out = []
    for k, start in enumerate(range(0, max(len(data), 1), STAGE_CHUNK)):
        redirect = ">" if k == 0 else ">>"
        ok, bad = f"A{mid}-{k}", f"N{mid}"
        line = (
            f"if printf %s '{data[start : start + STAGE_CHUNK]}' {redirect}{path}; "
            f"then printf '%s%s\\n' {PREFIX} {ok}; else printf '%s%s\\n' {PREFIX} {bad}; fi\n"
        )
        out.append((line, f"{PREFIX}{ok}".encode(), f"{PREFIX}{bad}".encode()))
    return out


# run once after login: a gzip member (magic 1f 8b) on stdout means exec output can be compressed
GZIP_PROBE = ["gzip", "-1", "-c"]


def gzip_works(output: bytes, exit_code: int) -> bool:
    return exit_code == 0 and output[:2] == b"\x1f\x8b" and zlib.decompress(output, wbits=31) == b""


def sync_line(marker: str) -> tuple[str, bytes]:
    """A line that prints a fresh marker: when it appears, the shell is at a prompt and reads our input."""
    return f"printf '%s%s\\n' {PREFIX} S{marker}\n", f"{PREFIX}S{marker}".encode()


def echo_end(seen: bytes | bytearray, sent: str) -> int | None:
    """Where the echo of the line we typed ends in ``seen`` (after its line break); None until all of it arrived.

    The echo may be broken into rows (a line editor wraps at the terminal's width with ``\\r\\r\\n``), so CR and
    LF may stand between any two of its characters."""
    match = _echo_pattern(sent.rstrip("\n")).search(seen)
    return None if match is None else match.end()


@functools.lru_cache(maxsize=16)
def _echo_pattern(text: str) -> re.Pattern[bytes]:
    return re.compile(b"[\r\n]*".join(re.escape(bytes([c])) for c in text.encode()) + b"[\r ]*\n")


def answered_without_marker(seen: bytes | bytearray, sent: str, prompts: Sequence[_Pattern]) -> bool:
    """The guest read the line we ``sent`` and answered it, then came back to its prompt, without printing the
    line's marker: its shell is not a POSIX sh (U-Boot's ``=>`` says ``Unknown command 'printf'``, Redox's ion
    answers in its own way). Known once, after the echo of our line, a line that is not part of that echo and a
    prompt on the last, unfinished line have arrived; no need to wait for the sync timeout.

    A POSIX sh that was still busy when we typed shows the tty's echo, then its prompt, then its line editor's
    own echo of the same line (rows of our text), then the marker: no line there is an answer, so typing ahead
    is never mistaken for a foreign shell."""
    from bootlab.console.clean import clean

    end = echo_end(seen, sent)
    if end is None or not prompts:
        return False
    rows = clean(bytes(seen[end:]).decode(errors="replace")).split("\n")
    tail = rows.pop()
    answers = [row.strip() for row in rows if row.strip() and row.strip()[-24:] not in sent]
    return bool(answers) and bool(tail.strip()) and any(p.search(tail) for p in prompts)


@dataclass
class ExecResult:
    output: bytes
    exit_code: int


def find_complete(buf: bytes, framed: Framed) -> ExecResult | None:
    """Parse the console bytes seen since the command was typed; None until the end marker has arrived."""
    begin = _marker_line(buf, framed.begin, 0)
    if begin is None:
        return None
    end = _marker_line(buf, framed.end, begin[1])
    if end is None:
        return None
    decoded = decode_body(buf[begin[1] : end[0]])
    if framed.gzip:
        try:
            decoded = zlib.decompress(decoded, wbits=31)
        except zlib.error as exc:
            raise ValueError(f"exec output was damaged on the console (gzip: {exc})") from None
    idx = decoded.rfind(framed.rc_marker)
    if idx < 0:
        raise ValueError("exec output was damaged on the console (no exit status in the frame)")
    rc_text = decoded[idx + len(framed.rc_marker) :].strip()
    try:
        rc = int(rc_text)
    except ValueError:
        raise ValueError(f"exec output was damaged on the console (exit status {rc_text!r})") from None
    return ExecResult(decoded[:idx], rc)


def partial_output(buf: bytes, framed: Framed) -> bytes:
    """What a timed-out command printed so far (best effort: whole base64 lines only)."""
    begin = _marker_line(buf, framed.begin, 0)
    if begin is None:
        return b""
    lines = [ln.strip(b"\r") for ln in buf[begin[1] :].split(b"\n")[:-1]]
    data = b"".join(ln for ln in lines if _B64_LINE.match(ln))
    data = data[: len(data) - len(data) % 4]
    try:
        out = base64.b64decode(data)
        if framed.gzip:  # whatever of the compressed stream made it out
            out = zlib.decompressobj(wbits=31).decompress(out)
    except (binascii.Error, zlib.error):
        return b""
    idx = out.rfind(framed.rc_marker)
    return out if idx < 0 else out[:idx]


def decode_body(body: bytes) -> bytes:
    """Decode the base64 lines between the markers; lines that are not base64 (a kernel message) are dropped."""
    lines = [ln.strip(b"\r\x00 ") for ln in body.split(b"\n")]
    data = b"".join(ln for ln in lines if ln and _B64_LINE.match(ln))
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"exec output was damaged on the console ({exc})") from None


def has_marker(buf: bytes | bytearray, marker: bytes) -> bool:
    """``marker`` has arrived as a complete line (the sync after login or after an interrupted command)."""
    return _marker_line(buf, marker, 0) is not None


def _marker_line(buf: bytes | bytearray, marker: bytes, start: int) -> tuple[int, int] | None:
    """(start, end) of the first complete line at or after ``start`` whose text is ``marker``.

    The echoed command line holds the marker only split in two (``__BL B<id>``), so any contiguous occurrence
    was printed by the shell; it must stand alone on its line, which also rules out a line still being written.
    """
    pos = start
    while True:
        i = buf.find(marker, pos)
        if i < 0:
            return None
        j = i + len(marker)
        nl = buf.find(b"\n", j)
        if nl < 0:
            return None
        if buf[j:nl].strip(b"\r") == b"":
            return (i, nl + 1)
        pos = j


class Collector:
    """Incremental :func:`find_complete` for a live console: each chunk is scanned once.

    Re-parsing the whole buffer on every read is quadratic, and a megabyte arrives in thousands of small reads
    (QEMU's serial backend writes as the guest's UART drains). Here the begin marker is looked for until found,
    then only the new bytes (plus a marker's length of overlap) are searched for the end marker.
    """

    def __init__(self, framed: Framed) -> None:
        self.framed = framed
        self.buf = bytearray()
        self.body_start: int | None = None
        self.scanned = 0

    def feed(self, data: bytes) -> ExecResult | None:
        self.buf += data
        overlap = len(self.framed.end) + 2
        if self.body_start is None:
            begin = _marker_line(self.buf, self.framed.begin, max(0, self.scanned - overlap))
            self.scanned = len(self.buf)
            if begin is None:
                return None
            self.body_start = begin[1]
            self.scanned = self.body_start
        end = _marker_line(self.buf, self.framed.end, max(self.body_start, self.scanned - overlap))
        self.scanned = len(self.buf)
        if end is None:
            return None
        return find_complete(bytes(self.buf[: end[1]]), self.framed)

    def partial(self) -> bytes:
        return partial_output(bytes(self.buf), self.framed)


# ---------------------------------------------------------------------------------------------- over a console

SYNC_TIMEOUT = 10.0
_POLL = 0.25  # how often a waiting exec checks whether it should give up


class ShellError(InfraError):
    """The guest's shell did not answer as framed (no POSIX sh, output damaged on the console)."""


class NotPosixShell(ShellError):
    """The guest's shell read bootlab's framing and answered it in its own way (U-Boot's ``=>``, Redox's ion): it is
    not a POSIX sh, so bootlab cannot run commands there at all. ``answer`` is what it said (may be empty)."""

    def __init__(self, message: str, answer: str) -> None:
        super().__init__(message)
        self.answer = answer


class ExecAborted(BootlabError):
    """The caller's ``should_stop`` said so (the guest crashed, the VM is stopping): no result."""

    exit_code = EXIT_INFRA


@dataclass
class ExecOutcome:
    output: bytes
    exit_code: int
    duration_s: float
    timed_out: bool = False


def _over(deadline: float | None, abandoned: asyncio.Event | None) -> bool:
    """The exec must stop: its deadline has passed, or its client went away."""
    return (abandoned is not None and abandoned.is_set()) or (deadline is not None and time.monotonic() >= deadline)


class GuestShell:
    """Runs framed commands in the guest's shell over a console: one at a time (the caller serialises).

    Each call takes the console to use, so that a caller sharing one console between readers (a
    :class:`~bootlab.console.hub.ConsoleHub`) can hand each exec a fresh tap that sees only what follows it.
    ``should_stop`` is polled while waiting; when it returns True the exec is abandoned with
    :class:`ExecAborted`.
    """

    def __init__(
        self,
        should_stop: Callable[[], bool] | None = None,
        *,
        sync_timeout: float = SYNC_TIMEOUT,
        prompts: Sequence[_Pattern] = (),
    ) -> None:
        self.sync_timeout = sync_timeout
        # the guest's shell prompts (the packs' ready shell patterns): a sync answered by a prompt without the
        # marker fails at once instead of after the timeout
        self.prompts = prompts
        self.answered = False  # the last failed sync was answered (not by our marker): the guest has no POSIX sh
        self.synced = False
        self.gzip: bool | None = None  # can the guest compress exec output? probed at the first exec
        self.should_stop = should_stop or (lambda: False)
        self.last_seen = b""  # what the console showed when a sync failed: said in the error

    async def sync(self, console: Console, *, attempts: int = 3, interrupt: bool = False) -> bool:
        """Type a fresh marker and wait for the shell to print it: the shell is at its prompt and ours.

        With ``interrupt`` (a timed-out command is still running) every attempt starts with Ctrl-C; otherwise
        only retries do (something unexpected holds the shell). The random marker makes late output of the
        interrupted command harmless."""
        self.answered = False
        for i in range(attempts):
            if self.should_stop():
                break
            line, marker = sync_line(new_id())
            if interrupt or i > 0:
                await console.write(b"\x03")
                await asyncio.sleep(0.2)
            await console.write(line.encode())
            if await self._wait_markers(console, (marker,), line, self.sync_timeout / attempts) == 0:
                self.synced = True
                return True
        self.synced = False
        return False

    async def _wait_markers(
        self,
        console: Console,
        markers: tuple[bytes, ...],
        sent: str,
        timeout: float,
        abandoned: asyncio.Event | None = None,
    ) -> int | None:
        """The index of the first of ``markers`` to arrive as a line within ``timeout`` after we typed ``sent``;
        None if none did (or ``abandoned`` was set meanwhile)."""
        seen = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            for i, marker in enumerate(markers):
                if has_marker(seen, marker):
                    self.last_seen = bytes(seen[-300:])
                    return i
            left = deadline - time.monotonic()
            if left <= 0 or self.should_stop() or (abandoned is not None and abandoned.is_set()):
                self.last_seen = bytes(seen[-300:])
                return None
            chunk = await console.read(min(left, _POLL))
            if chunk is not None:
                if chunk.eof:
                    return None
                seen += chunk.data
                if not any(has_marker(seen, m) for m in markers) and answered_without_marker(seen, sent, self.prompts):
                    self.last_seen = bytes(seen[-300:])
                    self.answered = True  # the prompt came back without our marker: not a POSIX sh
                    return None

    async def _ready(self, console: Console) -> None:
        """Synced with the shell, and whether it has gzip learnt (once)."""
        if not self.synced and not await self.sync(console):
            if self.should_stop():
                raise ExecAborted
            if self.answered:
                raise NotPosixShell(
                    f"the guest answered bootlab's exec framing with{self._answered(':')} bootlab's exec needs a "
                    "POSIX sh with printf and base64 at the prompt; use `bootlab vm console` with this guest",
                    self.answer(),
                )
            raise ShellError(f"the guest's shell does not answer on the console{self._answered()}")
        if self.gzip is None:
            probe = await self._run(console, wrap(GZIP_PROBE), 10.0, None)
            try:
                self.gzip = gzip_works(probe.output, probe.exit_code)
            except zlib.error:
                self.gzip = False

    async def run(
        self,
        console: Console,
        command: list[str] | str,
        timeout: float | None = None,
        abandoned: asyncio.Event | None = None,
        *,
        stage: bool = False,
    ) -> ExecOutcome:
        """Run ``command`` (an argv list, each argument quoted, or shell text) in a fresh ``sh``; its output and exit
        status, exactly. A command too long for one line, or any with ``stage``, is staged into a guest file first
        and run with ``sh FILE`` (:func:`stage_lines`): then nothing of its text is typed in clear.

        ``abandoned`` set (the client went away) interrupts it like a timeout, so a forgotten ``sleep 1000``
        cannot hold the shell. Raises :class:`ShellError` when the shell does not answer or the output was
        damaged, :class:`ExecAborted` when ``should_stop``."""
        await self._ready(console)
        if not stage:
            try:
                framed = wrap(command, gzip=bool(self.gzip))
            except CommandTooLong:
                stage = True
            else:
                return await self._run(console, framed, timeout, abandoned)
        return await self.run_script(console, command_text(command).encode(), timeout, abandoned)

    async def run_script(
        self, console: Console, text: bytes, timeout: float | None = None, abandoned: asyncio.Event | None = None
    ) -> ExecOutcome:
        """Send ``text`` (a shell script) to the guest over the console and run it with ``sh``, framed as
        :meth:`run` frames a command. The staged files are removed afterwards (also after a timeout).

        ``timeout`` covers the sending too: its clock starts before the first staging line is typed (a 1 MiB
        script takes minutes to cross a serial console), and a script still being sent when it runs out is
        interrupted like one that runs too long (``timed_out``), its ``duration_s`` counting the sending."""
        mid = new_id()
        lines = stage_lines(mid, text)  # a script too big is refused before anything is typed
        await self._ready(console)
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        cleanup = f"rm -f {staged_path(mid)}*\n"
        for line, ok, bad in lines:
            if self.should_stop():
                raise ExecAborted
            if _over(deadline, abandoned):
                return await self._interrupted(console, b"", start, cleanup)
            await console.write(line.encode())
            wait = self.sync_timeout if deadline is None else min(self.sync_timeout, deadline - time.monotonic())
            got = await self._wait_markers(console, (ok, bad), line, max(wait, 0.0), abandoned)
            if got == 1:
                raise ShellError(
                    f"the guest could not write a file in its $TMPDIR (default /tmp) to stage the command"
                    f"{self._answered()}"
                )
            if got is None:
                if self.should_stop():
                    raise ExecAborted
                if _over(deadline, abandoned):  # the line may still be in the guest's hands: Ctrl-C and resync
                    return await self._interrupted(console, b"", start, cleanup)
                self.synced = False
                raise ShellError(f"the guest's shell did not take a staged command line{self._answered()}")
        return await self._run(console, wrap_staged(mid, gzip=bool(self.gzip)), deadline, abandoned, cleanup, start)

    async def _run(
        self,
        console: Console,
        framed: Framed,
        timeout: float | None,
        abandoned: asyncio.Event | None,
        cleanup: str | None = None,
        start: float | None = None,
    ) -> ExecOutcome:
        """Type ``framed`` and collect its answer. With ``start`` (a staged script, whose clock started before
        its text was sent) ``timeout`` is the deadline on that clock, and the duration counts from ``start``."""
        if start is None:
            start = time.monotonic()
            deadline = None if timeout is None else start + timeout
        else:
            deadline = timeout
        collector = Collector(framed)
        await console.write(framed.line.encode())
        while True:
            if self.should_stop():
                raise ExecAborted
            left = None if deadline is None else deadline - time.monotonic()
            if _over(deadline, abandoned):
                return await self._interrupted(console, collector.partial(), start, cleanup)
            chunk = await console.read(_POLL if left is None else min(left, _POLL))
            if chunk is None:
                continue
            if chunk.eof:
                raise ExecAborted
            try:
                result = collector.feed(chunk.data)
            except ValueError as exc:
                self.synced = False
                raise ShellError(str(exc)) from None
            if result is not None:
                return ExecOutcome(result.output, result.exit_code, round(time.monotonic() - start, 3))

    async def _interrupted(self, console: Console, partial: bytes, start: float, cleanup: str | None) -> ExecOutcome:
        """A command (or the sending of its script) that ran out of time or was abandoned: Ctrl-C, resync, and
        remove what was staged (the interrupted line never reached its own ``rm``)."""
        if await self.sync(console, attempts=4, interrupt=True) and cleanup:
            await console.write(cleanup.encode())
        return ExecOutcome(partial, 124, round(time.monotonic() - start, 3), timed_out=True)

    def answer(self) -> str:
        """What the guest printed when the sync failed, without the echo of our own line (its last 160
        characters, lines joined with `` / ``)."""
        from bootlab.console.clean import clean

        lines = [ln.strip() for ln in clean(self.last_seen.decode(errors="replace")).split("\n")]
        lines = [ln for ln in lines if ln and f"{PREFIX} S" not in ln]
        return " / ".join(lines)[-160:]

    def _answered(self, style: str = "") -> str:
        """:meth:`answer` as a clause of an error message."""
        seen = self.answer()
        if style == ":":
            return f" {seen!r};" if seen else " something else;"
        return f" (it printed: {seen!r})" if seen else ""
