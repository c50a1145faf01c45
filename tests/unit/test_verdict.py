"""Verdict model and syzkaller-style title normalisation."""

from __future__ import annotations

import pytest

from bootlab.verdict import Verdict, normalise_title


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("kernel BUG at fs/buffer.c:1245!", "kernel BUG at fs/buffer.c:LINE!"),
        ("redox: panic at src/bin/getty.rs:121:6", "redox: panic at src/bin/getty.rs:LINE"),
        ("Attempted to kill init! exitcode=0x00000100", "Attempted to kill init! exitcode=ADDR"),
        ("fault at ffffff000014bab2 on CPU#3", "fault at ADDR on CPU"),
        ("soft lockup - stuck for 22s in worker 7", "soft lockup - stuck for 22s in worker NUM"),
        ("INFO: task hung in jbd2_journal_commit", "INFO: task hung in jbd2_journal_commit"),
        ("ext4_xattr_set  twice", "ext4_xattr_set twice"),
    ],
)
def test_normalise_title(raw: str, want: str) -> None:
    assert normalise_title(raw) == want


def test_same_bug_two_boots_same_title() -> None:
    a = normalise_title("general protection fault at 0xdffffc0000000001 in list_lru_add (fs/x.c:10)")
    b = normalise_title("general protection fault at 0xdffffc0000000a01 in list_lru_add (fs/x.c:12)")
    assert a == b


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        ("pass", 0),
        ("crash", 1),
        ("hang", 1),
        ("timeout", 1),
        ("login-failed", 1),
        ("check-failed", 1),
        ("incomplete", 1),
        ("qemu-error", 3),
        ("infra-error", 3),
    ],
)
def test_exit_codes(outcome: str, code: int) -> None:
    assert Verdict(outcome=outcome).exit_code() == code  # type: ignore[arg-type]


def test_json_has_exactly_the_documented_fields() -> None:
    fields = set(Verdict(outcome="pass").model_dump())
    assert fields == {
        "outcome",
        "stage",
        "stages",
        "title",
        "fatal_line",
        "fatal_t",
        "incidents",
        "death",
        "stopped",
        "duration_s",
        "log",
        "seed",
        "accel",
        "registers",
        "argv",
        "worker",
        "checks",
    }
