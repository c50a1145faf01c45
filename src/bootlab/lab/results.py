"""What trials, matrices and comparisons come to, as typed models, and :func:`to_json`, the one way they become
the ``--json`` objects (also what the store keeps, reports read, and `show` prints).

The JSON shape is a contract scripts rely on: a trial's numbers sit at the top level of its object, a matrix
cell is its axes plus the trial's fields, a comparison arm its label plus the trial's fields. The models keep
those parts apart (``TrialResult.summary``, ``MatrixCell.result``, ``Arm.result``) and the serialisers flatten
them back, in the documented key order.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TitleGroup(_Result):
    """Boots grouped under one title: how many, and the first boot (seed, store id) that showed it."""

    title: str
    count: int
    first_seed: int | None = None
    first_boot: str | None = None


class StageStats(_Result):
    """Seconds since QEMU started at which boots reached a stage."""

    p50: float
    p90: float
    max: float
    n: int


class CheckStats(_Result):
    """One check over a trial's counted boots: how often it ran (it does not run in a boot that never became
    ready, or after the guest crashed), passed, failed (``timed_out`` of them by timeout), and its median time."""

    name: str
    ran: int
    passed: int
    failed: int
    timed_out: int
    p50_s: float | None = None


class Summary(_Result):
    """A trial's numbers (see :func:`bootlab.lab.summary.summarize` for what counts and why)."""

    boots: int
    passed: int
    rate: float | None
    ci95: tuple[float, float]
    outcomes: dict[str, int]
    titles: list[TitleGroup]
    incidents: list[TitleGroup]
    stages: dict[str, StageStats]
    checks: list[CheckStats] = Field(default_factory=list)
    excluded: int
    excluded_titles: list[TitleGroup]
    strict: bool
    warning: str | None = None


class TrialResult(_Result):
    """One trial: what was booted, its numbers, and how it ended."""

    trial: str | None
    profile: str
    sets: list[str]
    status: str
    summary: Summary
    stopped_early: bool = False
    seed_base: int | None = None
    sequential: dict[str, Any] | None = None
    # only for trials read back from the store
    note: str | None = None
    started: float | None = None
    # only with --hold-first-crash: the VM that holds the trial's first crash (see bootlab.vm.hold.HoldFirst)
    held: dict[str, Any] | None = None
    # lint findings of the first boot, shown on stderr (not part of the JSON)
    lint: list[str] = Field(default_factory=list, exclude=True)

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key == "summary":
                out.update(value)
            elif key in ("note", "started", "held") and key not in self.model_fields_set:
                continue  # a fresh trial has no stored note/start; only --hold-first-crash holds a VM
            else:
                out[key] = value
        return out

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"


class MatrixCell(_Result):
    """One cell of a matrix: its axis values, and either lint's refusal or its trial."""

    axes: dict[str, str]
    refused: list[str] | None = None
    mark: str
    result: TrialResult | None = None

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        trial = data.pop("result")
        return {**data, **(trial or {})}


class MatrixResult(_Result):
    matrix: str | None
    profile: str
    sets: list[str]
    axes: dict[str, list[str]]
    n: int
    seed_base: int
    status: str
    cells: list[MatrixCell]


class Arm(_Result):
    """One side of a comparison: its label and its trial."""

    label: str
    result: TrialResult

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {"label": data["label"], **data["result"]}


class ComparisonResult(_Result):
    """Two trials side by side: both rates, the difference with Newcombe's interval, Fisher's p, the sentence."""

    a: Arm
    b: Arm
    difference: float | None
    difference_ci95: tuple[float, float]
    p_value: float
    significant: bool
    more_boots_each: int | None
    sentence: str
    # stage times of both arms with the rank test per stage (lab.lab.stage_timing), when the boots are at hand
    timing: dict[str, Any] | None = None
    # --until-confident: what the sequential test decided (lab.sequential); the sentence then rests on it
    sequential: dict[str, Any] | None = None
    comparison: str | None = None
    status: str = "done"


Result = TrialResult | MatrixResult | ComparisonResult


def to_json(result: Result | Summary) -> dict[str, Any]:
    """The ``--json`` object of a result: what scripts read, the store keeps and reports render."""
    return result.model_dump(mode="json")
