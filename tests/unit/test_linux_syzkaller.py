"""Golden tests over syzkaller's Linux crash reports: one expected bootlab verdict per log.

The logs are not in this repository (they are syzkaller's; see ``tests/linux_samples.py`` for where they are
looked for); ``tests/syzkaller/linux-titles.toml`` holds only bootlab's expectations: what was found (``fatal``,
``incident`` or ``none``), the report's title and, when a panic followed the report, the death. Without the logs
these tests skip, saying where they looked.

A change to the linux pack that changes titles makes these fail; when the change is intended, rewrite the
expectations deliberately and review the diff title by title, as syzkaller's ``-update`` flow does::

    .venv/bin/pytest tests/unit/test_linux_syzkaller.py --update-goldens   # rewrites, every test skips
    git diff tests/syzkaller/linux-titles.toml                              # read every changed title
    .venv/bin/pytest tests/unit/test_linux_syzkaller.py                     # now they pass
"""

from __future__ import annotations

import functools
import json
import tomllib
from pathlib import Path

import pytest

from bootlab.console.classify import classify_text
from bootlab.packs.loader import load_packs
from linux_samples import Sample, read_sample, read_samples, report_title, samples_dir

EXPECTED = Path(__file__).resolve().parents[1] / "syzkaller" / "linux-titles.toml"
SAMPLES = samples_dir()
HEADER = """\
# bootlab's expected verdict for each log of syzkaller's Linux report test data (google/syzkaller
# pkg/report/testdata/linux/report/; the logs are not in this repository: see tests/linux_samples.py).
# found: what the linux pack reported (fatal, incident or none); title: the fatal title, else the first
# incident's; death: the panic that followed the report. Written by
#   .venv/bin/pytest tests/unit/test_linux_syzkaller.py --update-goldens
# Review every changed title before committing it.
"""


@functools.cache
def expected() -> dict[str, dict[str, str]]:
    return tomllib.loads(EXPECTED.read_text())["logs"] if EXPECTED.exists() else {}


@functools.cache
def dev_samples() -> list[Sample]:
    return read_samples(SAMPLES)


def verdict_of(sample: Sample) -> dict[str, str]:
    """What bootlab says about one log, as recorded in the expectations."""
    verdict = classify_text(sample.log, load_packs(["linux"]))
    found, title = report_title(verdict)
    got = {"found": found}
    if title is not None:
        got["title"] = title
    if verdict.death is not None:
        got["death"] = verdict.death.title
    return got


def write_expectations(samples: list[Sample]) -> None:
    lines = [HEADER, "[logs]"]
    for sample in samples:
        fields = ", ".join(f"{k} = {json.dumps(v)}" for k, v in verdict_of(sample).items())
        lines.append(f"{sample.name} = {{ {fields} }}")
    EXPECTED.parent.mkdir(parents=True, exist_ok=True)
    EXPECTED.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module", autouse=True)
def dev_set(request: pytest.FixtureRequest) -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"syzkaller Linux dev set not found at {SAMPLES}; set BOOTLAB_LINUX_SAMPLES to its directory")
    if request.config.getoption("--update-goldens"):
        write_expectations(dev_samples())
        pytest.skip(f"rewrote {EXPECTED}; review the diff, then run again without --update-goldens")


@pytest.mark.parametrize("name", sorted(expected(), key=int))
def test_syzkaller_log(name: str) -> None:
    path = SAMPLES / name
    assert path.is_file(), f"{path} is expected but missing from the dev set"
    assert verdict_of(read_sample(path)) == expected()[name]


def test_every_log_has_an_expectation() -> None:
    exp = expected()
    missing = [s.name for s in dev_samples() if s.name not in exp]
    assert not missing, f"logs without an expectation (run with --update-goldens and review): {missing[:10]}"


def test_the_expectations_cover_the_issue_goals() -> None:
    """The recorded verdicts meet the goals on the dev set: reports found, clean logs clean (the held-out part
    of the set is checked separately; this keeps a rewrite from quietly giving the goals up)."""
    exp = expected()
    samples = dev_samples()
    reports = [s for s in samples if s.title]
    clean = [s for s in samples if not s.title]
    found = sum(exp[s.name]["found"] != "none" for s in reports)
    assert found >= 0.95 * len(reports), f"recall {found}/{len(reports)}"
    assert all(exp[s.name]["found"] == "none" for s in clean), "a clean log has a finding"
    same = agree = diff = differ = 0
    for i, a in enumerate(reports):
        ta = exp[a.name].get("title")
        for b in reports[i + 1 :]:
            tb = exp[b.name].get("title")
            if a.title == b.title:
                same += 1
                agree += ta is not None and ta == tb
            else:
                diff += 1
                differ += ta is None or ta != tb
    assert agree >= 0.8 * same, f"same-title pairs agree {agree}/{same}"
    assert differ >= 0.95 * diff, f"different-title pairs differ {differ}/{diff}"
