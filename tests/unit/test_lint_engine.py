"""The lint engine: the matcher language, rule-file validation, project rule folders, check_invocation."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from bootlab.errors import UsageError
from bootlab.lint import LintContext, check_invocation, lint, load_rules
from bootlab.lint.engine import Constraint
from bootlab.qemu.argv_parser import parse_argv
from bootlab.qemu.invocation import Problem


@pytest.mark.parametrize(
    ("spec", "value", "holds"),
    [
        ({"eq": "hvf"}, "HVF", True),
        ({"ne": "hvf"}, "tcg", True),
        ({"in": ["host", "max"]}, "max", True),
        ({"not_in": ["host", "max"]}, "cortex-a72", True),
        ({"gt": 1}, 4, True),
        ({"gt": 1}, 1, False),
        ({"ge": 1, "le": 8}, 8, True),
        ({"lt": 3072}, 4096, False),
        ({"eq": "3"}, "3", True),
        ({"eq": 3}, "3", True),
        ({"version_ge": "10.0"}, (10, 0, 2), True),
        ({"version_ge": "10.0"}, (9, 2, 0), False),
        ({"version_lt": "8"}, (7, 2, 0), True),
        ({"contains": "hvf"}, ["hvf", "tcg"], True),
        ({"contains_any": ["kvm", "hvf"]}, ["tcg"], False),
        ({"glob": "virt*"}, "virt-9.2", True),
        ({"bool": False}, "off", True),
        ({"bool": False}, "no", True),
        ({"bool": False}, "on", False),
        ({"exists": True}, "x", True),
        ({"exists": False}, "x", False),
    ],
)
def test_constraint_operators(spec: dict[str, object], value: object, holds: bool) -> None:
    assert Constraint.model_validate(spec).holds(value) is holds


def test_missing_facts_fail_unless_or_missing() -> None:
    assert Constraint.model_validate({"ne": "x"}).holds(None) is False
    assert Constraint.model_validate({"ne": "x", "or_missing": True}).holds(None) is True
    assert Constraint.model_validate({"exists": False}).holds(None) is True
    assert Constraint.model_validate({"exists": True}).holds([]) is False


def _write(folder: Path, text: str, name: str = "x.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


RULE = """
[[rule]]
id = "{id}"
severity = "warning"
message = "{message}"
fix = "do the thing"
reference = "tests"
[rule.when]
{when}
"""


def test_project_rules_are_loaded_and_applied(tmp_path: Path) -> None:
    _write(
        tmp_path / "lint",
        RULE.format(id="no-big-ram", message="{memory_mb} MiB is a lot", when="memory_mb = { gt = 4096 }"),
    )
    findings = lint(parse_argv(["qemu-system-x86_64", "-m", "8G"]), rule_dirs=[tmp_path / "lint"])
    assert [(f.id, f.message) for f in findings if f.id == "no-big-ram"] == [("no-big-ram", "8192 MiB is a lot")]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[rule]\nid=", "invalid TOML"),
        (RULE.format(id="a", message="m", when="smpp = { gt = 1 }"), "rule a: unknown fact 'smpp' in when"),
        (RULE.format(id="a", message="m", when="smp = { greater = 1 }"), "rule a: when.smp.greater"),
        (RULE.format(id="a", message="m", when="smp = { or_missing = true }"), "at least one operator"),
        (RULE.format(id="a", message="{nope}", when="smp = { gt = 1 }"), "unknown placeholder {nope}"),
        (RULE.format(id="Bad Id", message="m", when="smp = { gt = 1 }"), "rule Bad Id: id"),
        (RULE.format(id="a", message="m", when="").replace("warning", "fatal"), "rule a: severity"),
        (RULE.format(id="a", message="m", when="qemu_version = { version_ge = 'ten' }"), "must look like"),
        (RULE.format(id="hvf-smp", message="m", when="smp = { gt = 1 }"), "already defined in rules/hvf.toml"),
        ("[[rules]]\nid = 'x'", "expected only [[rule]] tables"),
    ],
)
def test_bad_rule_file_is_a_clear_one_line_error(tmp_path: Path, text: str, needle: str) -> None:
    path = _write(tmp_path / "lint", text)
    with pytest.raises(UsageError) as info:
        load_rules([tmp_path / "lint"])
    message = str(info.value)
    assert str(path) in message
    assert needle in message
    assert "\n" not in message


def test_builtin_rules_load_once_and_ids_are_unique() -> None:
    first = load_rules()
    assert load_rules() == first
    assert len({r.id for r in first}) == len(first)
    assert {Path(r.source).name for r in first} >= {"hvf.toml", "drives.toml", "firmware.toml", "memory.toml"}


def test_findings_are_sorted_errors_first() -> None:
    facts = parse_argv(["qemu-system-aarch64", "-M", "virt", "-cpu", "host", "-drive", "file=a.img"])
    severities = [f.severity for f in lint(facts, LintContext())]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)


def _profile(**kw: object) -> SimpleNamespace:
    base: dict[str, object] = {"name": "p", "arch": "aarch64", "pack": ["redox"], "drives": [], "persistent": False}
    base.update(kw)
    return SimpleNamespace(**base)


def test_check_invocation_uses_host_and_profile_facts() -> None:
    argv = [
        "qemu-system-aarch64", "-M", "virt", "-accel", "hvf", "-cpu", "host", "-smp", "2", "-m", "2G",
        "-bios", "edk2-aarch64-code.fd", "-drive", "file=/img/a.img,format=raw,if=none,id=disk0",
        "-device", "virtio-blk-pci,drive=disk0",
    ]  # fmt: skip
    invocation = SimpleNamespace(argv=argv, accel="hvf", problems=[])
    host = SimpleNamespace(os="darwin", arch="aarch64", qemu={"aarch64": SimpleNamespace(version_tuple=(10, 0, 0))})
    writes = _profile(drives=[SimpleNamespace(file="/img/a.img", persistent=True)])
    ids = [f.id for f in check_invocation(invocation, writes, host)]
    assert "hvf-smp" in ids and "drive-no-snapshot" not in ids
    protects = _profile(drives=[SimpleNamespace(file="/img/a.img", persistent=False)])
    assert "drive-no-snapshot" in [f.id for f in check_invocation(invocation, protects, host)]


def test_check_invocation_reports_missing_firmware_by_name() -> None:
    problem = Problem(
        "firmware-missing",
        "profile p: firmware.bios `edk2-aarch64-code.fd` not found on this host; ...",
        "edk2-aarch64-code.fd",
    )
    invocation = SimpleNamespace(
        argv=["qemu-system-aarch64", "-M", "virt", "-cpu", "max", "-bios", "edk2-aarch64-code.fd"], problems=[problem]
    )
    host = SimpleNamespace(os="linux", arch="x86_64", qemu={})
    findings = check_invocation(invocation, _profile(pack=[]), host)
    missing = [f for f in findings if f.id == "firmware-missing"]
    assert missing and missing[0].message == "firmware edk2-aarch64-code.fd not found on this host"
