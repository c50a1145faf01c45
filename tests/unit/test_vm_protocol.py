"""The control socket's messages: every line a supervisor sends reads back as its own type on the client."""

from __future__ import annotations

import pytest

from bootlab.vm import protocol


@pytest.mark.parametrize(
    "message",
    [
        protocol.StageEvent(name="kernel", t=1.5),
        protocol.LoopEvent(kind="fatal", text="Kernel panic", t=2.0),
        protocol.HoldQuestion(verdict={"outcome": "crash"}),
        protocol.ExecReply(stdout_b64="aGk=", exit_code=3, duration_s=0.1),
        protocol.ErrorReply(error="the guest crashed", state="crashed", verdict={"outcome": "crash"}),
        protocol.StopReply(how="powerdown"),
        protocol.GuestReply(running=False),
        protocol.AttachReply(state="ready"),
        protocol.Status(name="dev", state="held", verdict={"outcome": "crash"}, gdb_socket="/run/x/gdb.sock"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_message_reads_back_as_its_type(message: protocol._Message) -> None:
    back = protocol.parse_message(message.encode())
    assert type(back) is type(message) and back == message


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (b"not json\n", "not a JSON line"),
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"event": "reboot"}\n', "unknown event 'reboot'"),
        (b'{"hello": 1}\n', "not a reply bootlab knows"),
        (b'{"running": "maybe"}\n', "running"),  # the right shape, a wrong value: pydantic names the field
    ],
)
def test_a_line_the_client_does_not_understand_is_a_value_error(line: bytes, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        protocol.parse_message(line)
