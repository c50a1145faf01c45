"""GuestShell over the Console protocol, against a real POSIX shell in a pseudo-terminal.

A pty is what a serial getty gives the guest's shell: echo of what is typed, CR/LF translation, and a line
discipline that hands the shell one line per read, so input typed ahead waits in the tty for whoever reads next.
That is exactly the situation in which a command that reads stdin would swallow the next command: these tests
drive the real framing, sync and timeout logic through it, with no QEMU.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from pty_shell import PtyShell

from bootlab.console.base import Chunk
from bootlab.console.shell import MAX_LINE, GuestShell, ShellError, stage_lines


def run(coro_fn: object) -> object:
    async def go() -> object:
        console = PtyShell()
        try:
            return await asyncio.wait_for(coro_fn(console), 60)  # type: ignore[operator]
        finally:
            await console.close()

    return asyncio.run(go())


def test_exec_is_exact_through_a_tty() -> None:
    async def body(console: PtyShell) -> None:
        sh = GuestShell()
        out = await sh.run(console, ["printf", "root:/# \\r\\n__BLB x\\n\\001\\377"])
        assert (out.output, out.exit_code, out.timed_out) == (b"root:/# \r\n__BLB x\n\x01\xff", 0, False)
        assert (await sh.run(console, ["sh", "-c", "echo err >&2; exit 7"])).output == b"err\n"
        assert (await sh.run(console, ["sh", "-c", "exit 7"])).exit_code == 7
        assert sh.gzip is True  # this host's sh has gzip: output travelled compressed

    run(body)


def test_exec_stdin_is_dev_null_so_typed_ahead_input_is_not_swallowed() -> None:
    """`cat` would read the tty; with stdin from /dev/null it ends at once, and the line typed ahead meanwhile
    stays in the tty for the shell, which runs it."""

    async def body(console: PtyShell) -> None:
        sh = GuestShell()
        await sh.run(console, ["true"])  # sync and gzip probe first
        console.typed_after = b"echo typed-ahead-$((6 * 7))\n"
        out = await sh.run(console, ["cat"], timeout=10)
        assert (out.output, out.exit_code, out.timed_out) == (b"", 0, False)
        marker = b"typed-ahead-42"
        deadline = time.monotonic() + 10
        while marker not in console.seen and time.monotonic() < deadline:
            await console.read(0.2)
        assert marker in console.seen  # the shell ran it: nobody else consumed it

    run(body)


@pytest.mark.parametrize(("gzip", "lines"), [(False, 100_000), (True, 400_000)])
def test_timeout_interrupts_returns_the_partial_output_and_the_shell_stays_usable(gzip: bool, lines: int) -> None:
    """What made it out before the timeout comes back (gzip holds more back, so it gets more lines to flush)."""
    expected = b"".join(b"%d\n" % i for i in range(1, lines + 1))

    async def body(console: PtyShell) -> None:
        sh = GuestShell()
        await sh.run(console, ["true"])  # sync and probe gzip, then choose
        sh.gzip = gzip
        t0 = time.monotonic()
        out = await sh.run(console, ["sh", "-c", f"seq 1 {lines}; sleep 600"], timeout=4)
        assert out.timed_out and out.exit_code == 124
        assert time.monotonic() - t0 < 20
        assert len(out.output) > 0 and expected.startswith(out.output)
        again = await sh.run(console, ["echo", "still here"], timeout=10)
        assert (again.output, again.exit_code) == (b"still here\n", 0)

    run(body)


def test_abandoned_exec_is_interrupted_like_a_timeout() -> None:
    async def body(console: PtyShell) -> None:
        sh = GuestShell()
        gone = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, gone.set)
        out = await sh.run(console, ["sleep", "600"], abandoned=gone)
        assert out.timed_out and out.exit_code == 124
        assert (await sh.run(console, ["echo", "ok"])).output == b"ok\n"

    run(body)


def test_a_guest_without_sh_is_said_with_what_it_answered() -> None:
    """A console whose 'shell' answers something else (U-Boot: `Unknown command 'printf'`)."""

    class NotSh(PtyShell):
        def __init__(self) -> None:
            super().__init__()
            self.answer = b"Unknown command 'printf' - try 'help'\r\n=> "

        async def write(self, data: bytes) -> None:
            self.pending = getattr(self, "pending", b"") + self.answer

        async def read(self, timeout: float | None) -> Chunk | None:
            if getattr(self, "pending", b""):
                data, self.pending = self.pending, b""
                return Chunk(data, self.now())
            await asyncio.sleep(min(timeout or 0.1, 0.1))
            return None

    async def go() -> None:
        console = NotSh()
        try:
            with pytest.raises(ShellError, match="Unknown command 'printf'"):
                await GuestShell(sync_timeout=1.0).run(console, ["true"])
        finally:
            await console.close()

    asyncio.run(go())


UBOOT_LIKE = r"""
import os, signal, sys
def interrupt(*_):  # os.write: sys.stdout.write here may land inside the loop's own write (a reentrant-call error)
    os.write(1, b"<INTERRUPT>\n=> ")
signal.signal(signal.SIGINT, interrupt)
sys.stdout.write("=> "); sys.stdout.flush()
for line in sys.stdin:
    words = line.split()
    if words:
        sys.stdout.write(f"Unknown command '{words[0]}' - try 'help'\n")
    sys.stdout.write("=> "); sys.stdout.flush()
"""


def test_a_prompt_answering_without_the_marker_fails_the_sync_at_once(tmp_path: Path) -> None:
    """A command line that is not a POSIX sh (this one answers as U-Boot does, through a real tty): the sync
    fails as soon as the prompt is back without the marker, with what the guest said, not after the sync timeout
    (an hour here; the test's own limit is a minute)."""
    script = tmp_path / "uboot-like"
    script.write_text(f"#!{sys.executable}\n{UBOOT_LIKE}")
    script.chmod(0o755)
    from bootlab.packs.loader import load_packs

    prompts = load_packs(["uboot"], Path(__file__).resolve().parents[1] / "packs" / "uboot").shell

    async def go() -> None:
        console = PtyShell(shell=str(script))
        try:
            shell = GuestShell(sync_timeout=3600.0, prompts=prompts)
            with pytest.raises(ShellError) as exc:
                await asyncio.wait_for(shell.run(console, ["version"]), 60)
            msg = str(exc.value)
            assert "the guest answered bootlab's exec framing with" in msg
            assert "Unknown command 'printf' - try 'help'" in msg and "POSIX sh" in msg
            assert shell.answered and not shell.synced
            # each of the three attempts was typed and seen echoed (the later ones after a Ctrl-C); how many of the
            # answers were read before giving up depends on when the Ctrl-C's own answer (<INTERRUPT>, a line that
            # is not ours, then the prompt) arrived, which is already enough to know: at least the first one
            assert console.seen.count(b"printf '%s%s") == 3
            assert console.seen.count(b"Unknown command 'printf'") >= 1
        finally:
            await console.close()

    asyncio.run(go())


def test_a_posix_shell_is_not_mistaken_for_one_that_answered_without_the_marker() -> None:
    """The same prompt patterns on a real sh: its prompt comes back after the marker line, so the sync holds."""
    from bootlab.packs.loader import load_packs

    async def body(console: PtyShell) -> None:
        shell = GuestShell(prompts=load_packs(["redox"]).shell)
        out = await shell.run(console, ["echo", "hello"])
        assert out.output == b"hello\n" and out.exit_code == 0 and not shell.answered

    run(body)


def test_a_line_typed_while_the_shell_is_busy_is_not_taken_for_a_foreign_shell() -> None:
    """The shell is still running something when bootlab types its next line: the tty echoes the line, the shell
    prints its prompt, then reads the line and runs it. That prompt after the echo is not an answer (it failed
    checks on the Debian guest when a staged line was typed while the previous command's `rm` still ran)."""
    from bootlab.packs.loader import load_packs

    async def body(console: PtyShell) -> None:
        shell = GuestShell(prompts=load_packs(["linux"]).shell)
        await shell.run(console, ["true"])  # synced, gzip probed: the next line is the staged one
        await console.write(b"sleep 1\n")  # busy when the staging line arrives
        out = await shell.run(console, "echo staged-$((6 * 7))", stage=True)
        assert (out.output, out.exit_code, shell.answered) == (b"staged-42\n", 0, False)

    async def go() -> None:
        console = PtyShell(prompt="/ # ")
        try:
            await asyncio.wait_for(body(console), 60)
        finally:
            await console.close()

    asyncio.run(go())


def _linux_prompts() -> object:
    from bootlab.packs.loader import load_packs

    return load_packs(["linux"]).shell


SENT = "if printf %s 'Y2F0' >\"${TMPDIR:-/tmp}\"/bootlab.cf5e.b64; then printf '%s%s\\n' __BL Acf5e-0; fi\n"


@pytest.mark.parametrize(
    ("seen", "answered"),
    [
        # the tty's echo, then the busy shell's prompt: it has not read the line yet
        (SENT.replace("\n", "\r\n").encode() + b"/ # ", False),
        # ... then its line editor's own echo, wrapped into rows, cut where a row starts with '$'
        (SENT.replace("\n", "\r\n").encode() + b"/ # if printf %s 'Y2F0' >\"$", False),
        (SENT.replace("\n", "\r\n").encode() + b"/ # if printf %s 'Y2F0' >\"${TMPDIR:-/tmp}\"/bootla\r\r\n$", False),
        # the echo wrapped by a line editor, then an answer and a prompt: a foreign shell
        (
            SENT[:30].encode() + b"\r\r\n" + SENT[30:].replace("\n", "\r\n").encode() + b"Unknown command 'if'\r\n# ",
            True,
        ),
        # the answer alone, no prompt yet
        (SENT.replace("\n", "\r\n").encode() + b"Unknown command 'if'\r\n", False),
        # no echo of our line at all (the prompt came back from something else)
        (b"Unknown command 'if'\r\n# ", False),
    ],
)
def test_answered_without_marker_needs_the_echo_an_answer_and_a_prompt(seen: bytes, answered: bool) -> None:
    from bootlab.console.shell import answered_without_marker

    assert answered_without_marker(seen, SENT, _linux_prompts()) is answered  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- staged commands and scripts


def run_in(tmp: Path, coro_fn: object) -> object:
    """As :func:`run`, with the shell's $TMPDIR in ``tmp`` (so what staging leaves behind can be looked at)."""

    async def go() -> object:
        console = PtyShell(env={"TMPDIR": str(tmp)})
        try:
            return await asyncio.wait_for(coro_fn(console), 90)  # type: ignore[operator]
        finally:
            await console.close()

    return asyncio.run(go())


def test_a_command_too_long_for_a_line_is_staged_exact_and_not_typed_in_clear(tmp_path: Path) -> None:
    """`vm exec` used to refuse commands over ~800 bytes; now they travel as a file, in acknowledged chunks."""
    script = "; ".join(f"echo line-{i:04d}" for i in range(400))  # ~6 kB: several staging lines
    assert len(script) > 5 * MAX_LINE

    async def body(console: PtyShell) -> None:
        sh = GuestShell()
        out = await sh.run(console, ["sh", "-c", script + "; exit 5"], timeout=60)
        assert (out.exit_code, out.timed_out) == (5, False)
        assert out.output == b"".join(b"line-%04d\n" % i for i in range(400))
        assert b"echo line-0399" not in console.seen  # only base64 crossed the console
        assert (await sh.run(console, ["echo", "short"])).output == b"short\n"  # short ones stay inline

    run_in(tmp_path, body)
    assert list(tmp_path.iterdir()) == []  # the staged files are removed


def test_a_script_runs_with_sh_with_its_exit_status_and_any_bytes(tmp_path: Path) -> None:
    text = (
        b"#!/bin/sh\n# a check script with quotes ' \" and $VARS, a here-document and binary output\n"
        + b"".join(b"x%d=%d\n" % (i, i) for i in range(500))
        + b'cat <<EOF\nhere "$x499" $0\nEOF\nprintf "\\001\\377"\nexit 9\n'
    )
    assert len(text) > 4096

    async def body(console: PtyShell) -> None:
        out = await GuestShell().run_script(console, text, timeout=60)
        assert out.exit_code == 9
        assert out.output.startswith(b'here "499" ') and out.output.endswith(b"\x01\xff")
        assert str(tmp_path).encode() in out.output  # $0 is the staged file: it ran as `sh FILE`
        await GuestShell().run(console, ["true"])  # the framed line removes the files after its end marker

    run_in(tmp_path, body)
    assert list(tmp_path.iterdir()) == []


def test_a_staged_command_that_times_out_is_interrupted_and_its_files_removed(tmp_path: Path) -> None:
    async def body(console: PtyShell) -> None:
        sh = GuestShell()
        out = await sh.run(console, "echo started; sleep 600", timeout=3, stage=True)
        assert out.timed_out and out.exit_code == 124
        again = await sh.run(console, 'ls -A "$TMPDIR"; echo usable', timeout=10)
        assert again.output == b"usable\n"  # the shell is back, and the cleanup it was sent has run

    run_in(tmp_path, body)


def test_no_writable_temp_directory_is_a_shell_error_saying_so(tmp_path: Path) -> None:
    async def body(console: PtyShell) -> None:
        with pytest.raises(ShellError, match="could not write a file in its"):
            await GuestShell().run(console, "true", stage=True)

    run_in(tmp_path / "missing", body)


class SlowStaging(PtyShell):
    """A console over which each staging line takes ``delay`` seconds to be typed (a slow serial line)."""

    delay = 0.5

    async def write(self, data: bytes) -> None:
        if data.startswith(b"if printf %s"):
            await asyncio.sleep(self.delay)
        await super().write(data)


def test_a_script_still_being_sent_at_its_timeout_has_timed_out_and_the_duration_counts_the_sending(
    tmp_path: Path,
) -> None:
    """The timeout covers sending the script: 8 staging lines at 0.5 s each outlive a 1.5 s timeout before the
    script could start (it used to start its clock after the sending, and this quick script then passed)."""
    text = b"".join(b"# padding line %04d of a long check script\n" % i for i in range(140)) + b"echo ran\n"
    assert len(stage_lines("x", text)) >= 8

    async def go() -> None:
        console = SlowStaging(env={"TMPDIR": str(tmp_path)})
        try:
            sh = GuestShell()
            await sh.run(console, ["true"])  # sync and gzip probe first: not part of the check
            t0 = time.monotonic()
            out = await asyncio.wait_for(sh.run_script(console, text, timeout=1.5), 60)
            assert out.timed_out and out.exit_code == 124 and b"ran" not in out.output
            assert 1.5 <= out.duration_s <= time.monotonic() - t0 + 0.001  # (rounded to ms)
            assert out.duration_s < 4.0  # not the whole sending (8 x 0.5 s), then the run
            again = await sh.run(console, 'ls -A "$TMPDIR"; echo usable', timeout=10)
            assert again.output == b"usable\n"  # the shell is back, and what was staged is removed
        finally:
            await console.close()

    asyncio.run(go())
