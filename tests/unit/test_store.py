"""The store: schema migrations, where it lives, ids, and that concurrent and killed writers lose and corrupt
nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_trial_support import make_project

from bootlab.errors import UsageError
from bootlab.profile.loader import load_project, resolve_profile
from bootlab.profile.model import Firmware
from bootlab.store.db import Ref, Store, parse_ref, record_boot, store_dir
from bootlab.store.schema import SCHEMA_VERSION
from bootlab.verdict import Verdict

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bootlab.profile.loader import load_project, resolve_profile
    from bootlab.store.db import Store
    from bootlab.verdict import Verdict
    root, config, n, tag = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    store = Store(root)
    profile = resolve_profile("sim", project=load_project(config), seed=1)
    tid = store.begin_trial("sim", params={"tag": tag})
    log = root.parent / f"{tag}.log"
    log.write_text("console output\\n" * 100)
    for i in range(n):
        v = Verdict(outcome="pass" if i % 3 else "crash", seed=i, log=str(log), title=None if i % 3 else "boom")
        store.record_boot(v, profile, trial_id=tid, idx=i)
        print(i, flush=True)
    store.finish_trial(tid, "done", {"tag": tag})
    """
)


def _profile(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = make_project(tmp_path)
    return resolve_profile("sim", project=load_project(config), seed=7)


def test_fresh_store_is_migrated_and_wal(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    assert store.version() == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    # reopening does not migrate again
    assert Store(tmp_path / "s").version() == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "s").close()
    db = sqlite3.connect(tmp_path / "s" / "bootlab.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    db.commit()
    db.close()
    with pytest.raises(UsageError, match="newer than this bootlab"):
        Store(tmp_path / "s")


def test_migration_from_version_zero_keeps_unrelated_tables(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    db = sqlite3.connect(tmp_path / "s" / "bootlab.db")
    db.execute("CREATE TABLE mine (x)")
    db.commit()
    db.close()
    store = Store(tmp_path / "s")
    assert store.version() == SCHEMA_VERSION
    names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"mine", "boots", "trials", "matrices", "comparisons", "notes", "file_hashes"} <= names


def test_a_store_of_the_previous_version_keeps_its_boots_and_gains_their_sets(tmp_path: Path) -> None:
    """Migration 3 (a single boot's --set values) on a store written by the bootlab before it: the old boot stays,
    with no sets recorded (NULL, not "none"), and boots stored from then on keep theirs."""
    from bootlab.store.schema import MIGRATIONS

    (tmp_path / "s").mkdir()
    db = sqlite3.connect(tmp_path / "s" / "bootlab.db")
    db.executescript("".join(MIGRATIONS[:2]) + ";PRAGMA user_version = 2;")
    db.execute(
        "INSERT INTO boots(profile, profile_json, outcome, verdict, created, seed)"
        " VALUES ('sim', '{}', 'crash', '{}', 1, 9)"
    )
    db.commit()
    db.close()
    store = Store(tmp_path / "s")
    assert store.version() == SCHEMA_VERSION == 3
    assert store.require(Ref("boot", 1))["sets"] is None and store.require(Ref("boot", 1))["seed"] == 9
    new = store.record_boot(Verdict(outcome="pass", seed=3), _profile(tmp_path), sets=["smp=4"])
    assert json.loads(store.require(Ref("boot", new))["sets"]) == ["smp=4"]
    assert store.require(Ref("boot", store.record_boot(Verdict(outcome="pass"), _profile(tmp_path))))["sets"] is None


def test_record_boot_round_trip_with_log_and_hashes(tmp_path: Path) -> None:
    profile = _profile(tmp_path)
    log = tmp_path / "boot.log"
    log.write_bytes(b"UEFI firmware\nredox login: \n")
    store = Store(tmp_path / "s")
    v = Verdict(outcome="pass", seed=7, log=str(log), argv=["qemu-system-aarch64", "-M", "virt"], accel="tcg")
    boot_id = store.record_boot(v, profile)
    row = store.require(Ref("boot", boot_id))
    assert row["outcome"] == "pass" and row["seed"] == 7
    assert json.loads(row["argv"]) == ["qemu-system-aarch64", "-M", "virt"]
    images = json.loads(row["images"])
    assert len(images["kernel"]) == 64
    assert json.loads(row["profile_json"])["name"] == "sim"
    assert store.read_log(row["log_path"]) == log.read_bytes()
    assert (tmp_path / "s" / row["log_path"]).suffix == ".gz"
    stored = Verdict.model_validate_json(row["verdict"])
    assert stored.log and stored.log.endswith(".log.gz")


def test_firmware_by_name_is_hashed_as_the_file_the_host_finds(tmp_path: Path) -> None:
    """`firmware.code = "edk2-aarch64-code.fd"`: the boot records the sha256 of the file this host resolves the
    name to (pflash for code/vars, as the command line does); a boot a cluster worker ran resolved it there, so
    nothing is recorded for it here."""
    import hashlib

    from bootlab.verdict import WorkerInfo
    from conftest import make_fake_host

    code, bios = tmp_path / "AAVMF_CODE.fd", tmp_path / "QEMU_EFI.fd"
    code.write_bytes(b"pflash code")
    bios.write_bytes(b"bios image")
    host = make_fake_host()
    host.pflash["edk2-aarch64-code.fd"] = str(code)
    host.firmware["edk2-aarch64-code.fd"] = str(bios)  # as -bios: a different file of the same name
    profile = _profile(tmp_path).model_copy(update={"firmware": Firmware(code="edk2-aarch64-code.fd")})
    with Store(tmp_path / "s") as store:
        here = store.record_boot(Verdict(outcome="pass", seed=7), profile, host)
        remote = Verdict(outcome="pass", seed=8, worker=WorkerInfo(name="w", host="w", address="tcp://w:1"))
        there = store.record_boot(remote, profile, host)
        images = {b: json.loads(store.require(Ref("boot", b))["images"]) for b in (here, there)}
        bios_profile = profile.model_copy(update={"firmware": Firmware(bios="edk2-aarch64-code.fd")})
        assert store.images(bios_profile, host)["firmware.bios"] == hashlib.sha256(b"bios image").hexdigest()
        missing = profile.model_copy(update={"firmware": Firmware(code="edk2-riscv-code.fd")})
        assert store.images(missing, host)["firmware.code"] is None  # named, but not found here
    assert images[here]["firmware.code"] == hashlib.sha256(b"pflash code").hexdigest()
    assert "firmware.code" not in images[there] and "kernel" in images[there]


def test_sha256_cache_follows_mtime_and_size(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    f = tmp_path / "disk.img"
    f.write_bytes(b"a" * 100)
    first = store.file_sha256(f)
    assert store.file_sha256(f) == first
    f.write_bytes(b"b" * 101)
    assert store.file_sha256(f) != first
    assert store.file_sha256(tmp_path / "missing") is None


def test_parse_ref() -> None:
    assert parse_ref("t12") == Ref("trial", 12)
    assert parse_ref("B7") == Ref("boot", 7)
    assert parse_ref("12") == Ref("trial", 12)
    assert str(Ref("matrix", 3)) == "m3"
    with pytest.raises(UsageError, match="not a store id"):
        parse_ref("x12")
    with pytest.raises(UsageError, match="not a store id"):
        parse_ref("t")


def test_unknown_id_is_one_line(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    with pytest.raises(UsageError, match="no trial t99 in the store"):
        store.require(Ref("trial", 99))


def test_store_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOTLAB_STORE", raising=False)
    (tmp_path / "bootlab.toml").write_text('[store]\npath = ".bootlab"\n')
    assert store_dir(load_project(tmp_path / "bootlab.toml")) == (tmp_path / ".bootlab").resolve()
    (tmp_path / "bootlab.toml").write_text("[store]\nwhere = 1\n")
    with pytest.raises(UsageError, match=r"\[store\] needs `path"):
        store_dir(load_project(tmp_path / "bootlab.toml"))
    monkeypatch.setenv("BOOTLAB_STORE", str(tmp_path / "env"))
    assert store_dir(load_project(tmp_path / "bootlab.toml")) == tmp_path / "env"


def test_record_boot_helper_for_single_boots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTLAB_STORE", str(tmp_path / "s"))
    ref = record_boot(Verdict(outcome="crash", seed=3, title="x"), _profile(tmp_path))
    assert ref == "b1"
    assert Store(tmp_path / "s").require(Ref("boot", 1))["trial_id"] is None


def _writer(tmp_path: Path, root: Path, n: int, tag: str) -> subprocess.Popen[str]:
    config = tmp_path / "bootlab.toml"
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(config), str(n), tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_two_writers_at_once_lose_nothing(tmp_path: Path) -> None:
    make_project(tmp_path)
    root = tmp_path / "s"
    Store(root).close()
    procs = [_writer(tmp_path, root, 60, tag) for tag in ("a", "b")]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = Store(root)
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for row in store.trials():
        assert row["status"] == "done"
        boots = store.boots(row["id"])
        assert [b["idx"] for b in boots] == list(range(60))
        assert all(store.read_log(b["log_path"]).startswith(b"console output") for b in boots)


def test_killed_writer_loses_no_finished_boot_and_corrupts_nothing(tmp_path: Path) -> None:
    make_project(tmp_path)
    root = tmp_path / "s"
    Store(root).close()
    p = _writer(tmp_path, root, 100_000, "k")
    assert p.stdout is not None
    acknowledged = -1
    deadline = time.monotonic() + 60
    while acknowledged < 40 and time.monotonic() < deadline:
        acknowledged = int(p.stdout.readline())
    assert acknowledged >= 40  # killed mid-trial, with boots stored: the checks below have something to check
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    store = Store(root)
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    (trial,) = store.trials()
    boots = store.boots(trial["id"])
    # every boot the writer reported as stored is there (printing happens after the commit), in order
    assert len(boots) >= acknowledged + 1
    assert [b["idx"] for b in boots] == list(range(len(boots)))
    assert all(store.read_log(b["log_path"]) for b in boots)
    assert store.status_of(trial) == "killed"


def test_history_counts_a_running_trial_as_its_summary_will(tmp_path: Path) -> None:
    """A trial without a summary yet (running, or killed) is counted from its stored boots by the same tally as
    its summary: a --strict trial's pass with incidents is a failure there too, infra errors are left out."""
    from bootlab.lab.summary import BootRecord, summarize
    from bootlab.store.rows import history_rows
    from bootlab.verdict import Incident

    store = Store(tmp_path / "store")
    profile = _profile(tmp_path)
    incident = Incident(kind="daemon", title="redox: pcid died", process="pcid", line="x", t=1.0)
    verdicts = [
        Verdict(outcome="pass", seed=1),
        Verdict(outcome="pass", seed=2, incidents=[incident]),
        Verdict(outcome="crash", seed=3, title="boom"),
        Verdict(outcome="infra-error", seed=4, title="no socket"),
    ]
    tid = store.begin_trial("sim", params={"strict": True})
    for i, v in enumerate(verdicts):
        store.record_boot(v, profile, trial_id=tid, idx=i)
    [row] = history_rows(store, "sim", None)
    final = summarize([BootRecord(i, i, v) for i, v in enumerate(verdicts)], strict=True)
    assert (row["boots"], row["passed"], row["rate"]) == (final.boots, final.passed, final.rate) == (3, 1, 1 / 3)
    assert row["ci95"] == list(final.ci95)
