"""Exec framing over a serial shell: the wrapped line runs in a real POSIX sh here, and its output is passed
through what a console does to it (echo of the typed line, CRLF, a prompt, kernel lines in between)."""

from __future__ import annotations

import subprocess

import pytest

from bootlab.console import shell


def console(framed: shell.Framed, *, prompt: bytes = b"root:/# ", kernel_line: bytes | None = None) -> bytes:
    """What the serial console shows when ``framed.line`` is typed at ``prompt`` into a tty with echo on."""
    out = subprocess.run(["sh", "-c", framed.line], capture_output=True, check=False).stdout
    out = out.replace(b"\n", b"\r\n")  # the tty's onlcr
    if kernel_line is not None:  # a kernel message landing between two lines of the frame
        lines = out.split(b"\r\n")
        mid = max(2, len(lines) // 2)
        out = b"\r\n".join([*lines[:mid], kernel_line, *lines[mid:]])
    return prompt + framed.line.encode().replace(b"\n", b"\r\n") + out + prompt


def run(argv: list[str], gzip: bool = False, **kw: bytes) -> shell.ExecResult:
    framed = shell.wrap(argv, gzip=gzip)
    result = shell.find_complete(console(framed, **kw), framed)
    assert result is not None
    return result


def test_echo_hello() -> None:
    r = run(["echo", "hello"])
    assert (r.output, r.exit_code) == (b"hello\n", 0)


def test_exit_status() -> None:
    assert run(["sh", "-c", "exit 7"]).exit_code == 7
    assert run(["false"]).exit_code == 1


def test_prompt_like_output_and_no_trailing_newline() -> None:
    r = run(["printf", "root:/# \n~ # __BLB\nlogin: "])
    assert r.output == b"root:/# \n~ # __BLB\nlogin: "


def test_binary_output_is_exact() -> None:
    for data in (bytes(range(128)), bytes(range(128, 256)) + b"\r\n\x1b[1m\x00"):
        r = run(["printf", "".join(f"\\{b:03o}" for b in data)])
        assert r.output == data


def test_megabyte_output_exact_no_lost_or_doubled_lines() -> None:
    r = run(["seq", "1", "160000"])
    assert r.output == b"".join(b"%d\n" % i for i in range(1, 160001))
    assert len(r.output) > 1_000_000


def test_stderr_is_merged_and_stdin_is_empty() -> None:
    r = run(["sh", "-c", "echo out; echo err >&2; cat; echo done"])
    assert r.output == b"out\nerr\ndone\n"


def test_kernel_line_in_the_middle_is_dropped() -> None:
    r = run(["seq", "1", "2000"], kernel_line=b"[   12.345678] random: crng init done")
    assert r.output == b"".join(b"%d\n" % i for i in range(1, 2001))


def test_echo_of_the_typed_line_never_holds_a_marker() -> None:
    framed = shell.wrap(["echo", "x"])
    assert framed.begin not in framed.line.encode()
    assert framed.end not in framed.line.encode()
    assert framed.rc_marker.strip() not in framed.line.encode()


def test_incomplete_until_end_marker() -> None:
    framed = shell.wrap(["echo", "hello"])
    full = console(framed)
    cut = full.index(framed.end)
    assert shell.find_complete(full[:cut], framed) is None
    assert shell.find_complete(full[: cut + len(framed.end)], framed) is None  # line not finished
    assert shell.find_complete(full, framed) is not None


def test_other_exec_ids_do_not_match() -> None:
    old = shell.wrap(["echo", "old"])
    new = shell.wrap(["echo", "new"])
    assert shell.find_complete(console(old), new) is None


def test_damaged_frame_is_an_error_not_a_wrong_answer() -> None:
    framed = shell.wrap(["echo", "hello"])
    text = framed.begin + b"\r\naGVsbG8K\r\n" + framed.end + b"\r\n"  # no exit status inside
    with pytest.raises(ValueError, match="damaged"):
        shell.find_complete(text, framed)


def test_too_long_command_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        shell.wrap(["echo", "x" * 2000])


def test_quoting_keeps_arguments() -> None:
    r = run(["printf", "%s|", "a b", "it's", "$HOME", "`x`"])
    assert r.output == b"a b|it's|$HOME|`x`|"


def test_sync_marker() -> None:
    line, marker = shell.sync_line("abc")
    assert marker not in line.encode()
    out = subprocess.run(["sh", "-c", line], capture_output=True, check=True).stdout
    assert shell.has_marker(line.encode() + out, marker)
    assert not shell.has_marker(line.encode(), marker)


def test_partial_output_of_a_timed_out_command() -> None:
    framed = shell.wrap(["seq", "1", "100"])
    full = console(framed)
    cut = full.index(framed.end)
    partial = shell.partial_output(full[:cut], framed)
    assert b"".join(b"%d\n" % i for i in range(1, 101)).startswith(partial)
    assert partial == b"".join(b"%d\n" % i for i in range(1, 101))  # everything before the end marker came through


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_collector_fed_in_small_reads_matches(chunk: int) -> None:
    framed = shell.wrap(["seq", "1", "3000"])
    text = console(framed)
    collector = shell.Collector(framed)
    results = [collector.feed(text[i : i + chunk]) for i in range(0, len(text), chunk)]
    done = [r for r in results if r is not None]
    assert len(done) >= 1
    assert done[0].output == b"".join(b"%d\n" % i for i in range(1, 3001))
    assert done[0].exit_code == 0


@pytest.mark.parametrize("argv", [["seq", "1", "160000"], ["printf", "root:/# \\001\\377\\r\\n"], ["true"]])
def test_gzip_framing_is_exact(argv: list[str]) -> None:
    plain, squeezed = run(argv), run(argv, gzip=True)
    assert (squeezed.output, squeezed.exit_code) == (plain.output, plain.exit_code)


def test_gzip_probe() -> None:
    framed = shell.wrap(shell.GZIP_PROBE)
    r = shell.find_complete(console(framed), framed)
    assert r is not None and shell.gzip_works(r.output, r.exit_code)
    assert not shell.gzip_works(b"sh: gzip: not found\n", 127)
