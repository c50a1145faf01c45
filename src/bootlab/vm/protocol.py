"""The messages between `bootlab vm ...` and a VM's supervisor, typed, for both sides.

One JSON object per line over the supervisor's control socket (``ctl.sock``, 0600 in a 0700 directory): the
client sends one request, the supervisor answers with reply lines (``wait`` with ``events`` first streams stage
events; ``attach`` turns the connection into the raw console after its reply). ``boot`` is the one conversation
of a supervisor started for a single boot (``--boot``): its owner streams the boot's events, is asked whether to
hold a crash (:class:`HoldQuestion`, answered with :class:`HoldAnswer`) and gets the final :class:`Status`; the
owner's connection closing before that ends the boot. :class:`Status` is also what the
supervisor writes to ``state.json`` on every change, so `vm list` can answer without asking.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bootlab.vm.state import VmState


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode() + b"\n"


# ---------------------------------------------------------------------------------------------- requests


class StatusRequest(_Message):
    op: Literal["status"] = "status"


class WaitRequest(_Message):
    """Until the boot is decided (``booting`` is over); with ``events``, stage events stream first."""

    op: Literal["wait"] = "wait"
    timeout: float = 600.0
    events: bool = False


class ExecRequest(_Message):
    op: Literal["exec"] = "exec"
    argv: list[str]
    timeout: float | None = None


class AttachRequest(_Message):
    op: Literal["attach"] = "attach"


class StopRequest(_Message):
    op: Literal["stop"] = "stop"
    grace: float = 10.0


class BootRequest(_Message):
    """The owner of a one-shot boot: run it (nothing starts before this), stream its events, and, with ``hold``,
    ask before a crash or hang is kept."""

    op: Literal["boot"] = "boot"
    hold: bool = False


class GuestRequest(_Message):
    """Whether the guest's vCPUs run; with ``resume``, resume a guest paused by a debugger first (the stub pauses
    a running guest when gdb attaches). Not for a held VM: that stays as it died until stopped."""

    op: Literal["guest"] = "guest"
    resume: bool = False


class GuestReply(_Message):
    running: bool


class HoldAnswer(_Message):
    """The owner's answer to a :class:`HoldQuestion`."""

    hold: bool


Request = Annotated[
    StatusRequest | WaitRequest | ExecRequest | AttachRequest | StopRequest | BootRequest | GuestRequest,
    Field(discriminator="op"),
]
_REQUEST: TypeAdapter[Request] = TypeAdapter(Request)


def parse_request(line: bytes) -> Request:
    """One request line; ValueError when it is not one of the requests above."""
    try:
        return _REQUEST.validate_json(line)
    except ValidationError as exc:
        raise ValueError(f"bad request: {exc.errors()[0]['msg']}") from None


# ---------------------------------------------------------------------------------------------- replies


class StageEvent(_Message):
    event: Literal["stage"] = "stage"
    name: str
    t: float | None


class LoopEvent(_Message):
    """What the boot loop reports as it happens (``stage``, ``send``, ``fatal``, ``ready``), for a boot's owner."""

    event: Literal["loop"] = "loop"
    kind: str
    text: str
    t: float


class HoldQuestion(_Message):
    """A one-shot boot ended in a crash or hang (its verdict, registers read): keep it? (see HoldAnswer)"""

    event: Literal["hold?"] = "hold?"
    verdict: dict[str, Any]


class Status(_Message):
    """Where the VM is: the reply to ``status``/``wait`` and the content of ``state.json``."""

    model_config = ConfigDict(extra="ignore")

    name: str
    state: VmState
    profile: str | None = None
    accel: str | None = None
    started: float | None = None
    uptime_s: float | None = None
    stages: list[dict[str, Any]] = Field(default_factory=list)
    verdict: dict[str, Any] | None = None
    crash: dict[str, Any] | None = None
    note: str = ""
    pid: int | None = None
    qemu_pid: int | None = None
    forwards: list[str] = Field(default_factory=list)
    log: str | None = None
    exec_gzip: bool | None = None
    gdb_socket: str | None = None  # QEMU's gdb stub, when it runs (`vm launch --gdb`, a held crash)
    gdb_error: str | None = None  # why there is no stub where one was wanted (e.g. HVF before QEMU 8.1)
    symbols: str | None = None  # the profile's kernel ELF, for gdb
    arch: str | None = None


class ExecReply(_Message):
    stdout_b64: str
    exit_code: int
    duration_s: float
    timed_out: bool = False


class ErrorReply(_Message):
    """A request that could not be served. ``usage``: the client's mistake (exit 2); ``verdict``: the guest
    crashed (exec exits 1 with it); otherwise the infrastructure's (exit 3)."""

    error: str
    usage: bool = False
    state: VmState | None = None
    verdict: dict[str, Any] | None = None


class AttachReply(_Message):
    ok: bool = True
    state: VmState


class StopReply(_Message):
    ok: bool = True
    how: str


Event = StageEvent | LoopEvent | HoldQuestion
Reply = ExecReply | ErrorReply | StopReply | GuestReply | AttachReply | Status
_EVENTS: dict[str, type[_Message]] = {"stage": StageEvent, "loop": LoopEvent, "hold?": HoldQuestion}
#: Replies carry no tag (Status is also state.json, read by `vm list` without a supervisor): each is told apart by
#: a field only it has, tried in this order (an ErrorReply may also name a state, a Status also has one).
_REPLIES: tuple[tuple[str, type[_Message]], ...] = (
    ("error", ErrorReply),
    ("how", StopReply),
    ("stdout_b64", ExecReply),
    ("running", GuestReply),
    ("name", Status),
    ("state", AttachReply),
)


def parse_message(line: bytes | str) -> Event | Reply:
    """One line a supervisor sent, as its type: an event (by its ``event`` field) or a reply. ValueError (with
    what was wrong) for anything else, so the client never reads a half-understood dict."""
    try:
        data = json.loads(line)
    except ValueError:
        raise ValueError(f"not a JSON line: {line[:80]!r}") from None
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object: {line[:80]!r}")
    if "event" in data:
        event = _EVENTS.get(data["event"])
        if event is None:
            raise ValueError(f"unknown event {data['event']!r}")
        return event.model_validate(data)  # type: ignore[return-value]
    for field, reply in _REPLIES:
        if field in data:
            return reply.model_validate(data)  # type: ignore[return-value]
    raise ValueError(f"not a reply bootlab knows: {line[:80]!r}")
