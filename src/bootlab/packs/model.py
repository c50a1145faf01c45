"""The pack file format: how to read one OS's (or firmware's) console, as validated data.

A pack is knowledge, not code: adding a Redox failure signature must be a TOML edit. Every entry carries a
``reference`` (where the fact comes from) so a reviewer can check it against the source. Regexes are compiled
at validation time, so a typo in a user's pack is reported when it is loaded, not in the middle of a boot.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"bad regex {value!r}: {exc}") from exc
    return value


class Milestone(_Strict):
    """A named stage of the boot; the first line matching ``regex`` marks the time it was reached."""

    name: str
    regex: str
    reference: str

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        return _check_regex(v)


class Ready(_Strict):
    """When the guest is usable. ``login`` prompts end a plain boot; ``shell`` prompts end a boot that logs
    in."""

    login: list[str] = Field(default_factory=list)
    shell: list[str] = Field(default_factory=list)
    reference: str

    @field_validator("login", "shell")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        return [_check_regex(r) for r in v]


class Signature(_Strict):
    """A failure the console shows.

    ``regex`` matches the header line; its named groups fill ``title``. ``follow`` lines after it may add more
    captures (``follow_regex``, e.g. the process name a Redox exception belongs to) and, with ``frame =
    true``, the first interesting stack frame (``{frame}``). ``look_back`` lines before it may too
    (``look_back_regex``, nearest line first): some consoles name the process on the line *before* the fault
    (2016 Redox kernels print ``PID 3: file:/apps/login/main.bin`` then ``  INT E: Page fault``).
    ``fatal_when`` makes an incident fatal when a capture matches (a Redox daemon dying is an incident, init
    dying ends the boot). ``superseded_by`` drops
    this finding when one of those signatures fires within the window (it carries the same event with more
    detail). ``dump_end`` marks the last line of a fatal dump (or the reboot that follows it): the boot stops
    there without waiting for the console to go quiet.
    """

    id: str
    regex: str
    kind: str
    fatal: bool
    title: str
    reference: str
    title_fallback: str | None = None
    follow: int = Field(default=0, ge=0, le=500)
    follow_regex: list[str] = Field(default_factory=list)
    look_back: int = Field(default=0, ge=0, le=20)
    look_back_regex: list[str] = Field(default_factory=list)
    frame: bool = False
    fatal_when: dict[str, str] = Field(default_factory=dict)
    fatal_kind: str | None = None
    superseded_by: list[str] = Field(default_factory=list)
    dump_end: str | None = None
    synthesized: bool = False

    @field_validator("dump_end")
    @classmethod
    def _dump_end(cls, v: str | None) -> str | None:
        return None if v is None else _check_regex(v)

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        return _check_regex(v)

    @field_validator("follow_regex", "look_back_regex")
    @classmethod
    def _follow(cls, v: list[str]) -> list[str]:
        return [_check_regex(r) for r in v]

    @field_validator("fatal_when")
    @classmethod
    def _when(cls, v: dict[str, str]) -> dict[str, str]:
        return {k: _check_regex(r) for k, r in v.items()}

    @model_validator(mode="after")
    def _window(self) -> Signature:
        if (self.follow_regex or self.frame or self.superseded_by) and self.follow == 0:
            raise ValueError(f"signature {self.id!r} looks at following lines but has follow = 0")
        if bool(self.look_back_regex) != (self.look_back > 0):
            raise ValueError(f"signature {self.id!r}: look_back and look_back_regex go together")
        return self


class Interaction(_Strict):
    """When ``regex`` matches (also on a partial line: prompts have no newline), send ``send``.

    ``send`` may use ``{user}``/``{password}`` and other profile vars; an interaction whose vars are missing
    is skipped. ``max`` bounds how often it fires in one boot so a prompt loop cannot spin forever.
    """

    id: str
    regex: str
    send: str
    reference: str
    max: int = Field(default=1, ge=1, le=100)
    delay: float = Field(default=0.0, ge=0.0, le=10.0)

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        return _check_regex(v)


class Frames(_Strict):
    """How stack frames look (``frame`` group) and which frames every report has (skipped for titles)."""

    regex: list[str] = Field(default_factory=list)
    skip: list[str] = Field(default_factory=list)
    reference: str = ""

    @field_validator("regex", "skip")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        return [_check_regex(r) for r in v]


class PackFile(_Strict):
    """One ``<name>.toml``. ``extends`` names a pack whose entries this one adds to (same id/name
    replaces)."""

    name: str
    description: str
    reference: str
    extends: str | None = None
    stream: Literal["serial", "stderr"] = "serial"
    vars: dict[str, str] = Field(default_factory=dict)
    milestone: list[Milestone] = Field(default_factory=list)
    ready: Ready | None = None
    shell_prompt: str | None = None
    signature: list[Signature] = Field(default_factory=list)
    interaction: list[Interaction] = Field(default_factory=list)
    frames: Frames | None = None

    @field_validator("shell_prompt")
    @classmethod
    def _prompt(cls, v: str | None) -> str | None:
        return None if v is None else _check_regex(v)

    @model_validator(mode="after")
    def _unique(self) -> PackFile:
        for what, ids in (
            ("signature", [s.id for s in self.signature]),
            ("interaction", [i.id for i in self.interaction]),
            ("milestone", [m.name for m in self.milestone]),
        ):
            dup = {i for i in ids if ids.count(i) > 1}
            if dup:
                raise ValueError(f"duplicate {what} {sorted(dup)[0]!r}")
        return self
