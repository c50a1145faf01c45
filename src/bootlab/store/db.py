"""The local results store: one SQLite database (WAL) plus gzip-compressed console logs beside it.

Why it is shaped like this:

- **One transaction per boot.** A boot is written (row + its log file) the moment it finishes, in its own
  ``BEGIN IMMEDIATE`` transaction. A bootlab killed mid-trial loses only the boots still running; two trials
  writing at once serialise on SQLite's write lock (``busy_timeout`` waits for it) and corrupt nothing.
- **Logs are written before the row.** The compressed log gets a fresh random name and is renamed into place
  first; the row that points at it commits after. A kill in between leaves an unreferenced file, never a row
  pointing at nothing.
- **WAL mode** lets ``bootlab history`` read while a trial writes.
- **IDs carry their kind**: ``t12`` is a trial, ``b345`` a boot, ``m3`` a matrix, ``c2`` a comparison, ``s4`` a
  bisect (a search), so ``bootlab show``/``note``/``export`` take one argument and cannot confuse them. A bare
  number means a trial.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import platform
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootlab.errors import UsageError
from bootlab.paths import atomic_open, sha256_file
from bootlab.store.schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    from bootlab.host import Host
    from bootlab.profile.loader import Project
    from bootlab.profile.model import Profile
    from bootlab.source.revision import Revision
    from bootlab.verdict import Verdict

DB_NAME = "bootlab.db"
KINDS = {"t": "trial", "b": "boot", "m": "matrix", "c": "comparison", "s": "bisect"}
PREFIXES = {kind: prefix for prefix, kind in KINDS.items()}
TABLES = {"trial": "trials", "boot": "boots", "matrix": "matrices", "comparison": "comparisons", "bisect": "bisects"}
BUSY_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class Ref:
    """A typed store id: kind is one of trial, boot, matrix, comparison, bisect."""

    kind: str
    id: int

    def __str__(self) -> str:
        return f"{PREFIXES[self.kind]}{self.id}"


def parse_ref(text: str) -> Ref:
    """``t12``/``b7``/``m3``/``c2``/``s4`` or a bare number (a trial); anything else is a usage error."""
    raw = text.strip().lower().lstrip("#")
    prefix, digits = (raw[0], raw[1:]) if raw[:1] in KINDS else ("t", raw)
    if not digits.isdigit():
        raise UsageError(
            f"{text!r} is not a store id; use t12 (trial), b345 (boot), m3 (matrix), c2 (comparison) or s4 (bisect), "
            f"as `bootlab history` shows them"
        )
    return Ref(KINDS[prefix], int(digits))


def store_dir(project: Project | None = None) -> Path:
    """Where the store lives: $BOOTLAB_STORE, else ``[store] path`` of bootlab.toml (relative to it), else the
    user's data directory (platformdirs)."""
    env = os.environ.get("BOOTLAB_STORE")
    if env:
        return Path(env).expanduser()
    if project is not None:
        table = project.settings.get("store")
        if table is not None:
            if not isinstance(table, dict) or not isinstance(table.get("path"), str):
                raise UsageError(
                    f'{project.path}: [store] needs `path = "DIR"` (e.g. path = ".bootlab"); fix the [store] table'
                )
            return (project.root / table["path"]).resolve()
    from bootlab.paths import data_dir

    return data_dir()


def _now() -> float:
    return time.time()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """A connection to one store directory. Not shared across threads: the trial runner writes from one thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / "logs").mkdir(exist_ok=True)
        except OSError as exc:
            raise UsageError(f"store {root}: cannot create it ({exc.strerror}); set BOOTLAB_STORE=DIR") from None
        self.path = root / DB_NAME
        try:
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise UsageError(f"store {self.path}: cannot open it ({exc}); set BOOTLAB_STORE=DIR") from None
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")  # durable across a process kill; WAL keeps it consistent
        self.db.execute("PRAGMA foreign_keys = ON")
        self.migrate()
        self._revisions: dict[str, Revision | None] = {}

    # -- plumbing -------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front so it cannot deadlock."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        if self.version() == SCHEMA_VERSION:
            return
        with self.tx() as db:
            current = int(db.execute("PRAGMA user_version").fetchone()[0])  # re-read under the lock
            if current > SCHEMA_VERSION:
                raise UsageError(
                    f"store {self.path}: schema version {current} is newer than this bootlab ({SCHEMA_VERSION}); "
                    f"upgrade bootlab or point BOOTLAB_STORE elsewhere"
                )
            for number in range(current, SCHEMA_VERSION):
                for statement in _split_sql(MIGRATIONS[number]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- files ------------------------------------------------------------------------------------------------------

    def file_sha256(self, path: str | Path) -> str | None:
        """sha256 of an image or kernel, cached by (path, mtime, size): a 2 GiB disk is hashed once, not per boot."""
        p = Path(path)
        try:
            st = p.stat()
        except OSError:
            return None
        key = str(p.resolve())
        row = self.db.execute("SELECT mtime_ns, size, sha256 FROM file_hashes WHERE path = ?", (key,)).fetchone()
        if row and row["mtime_ns"] == st.st_mtime_ns and row["size"] == st.st_size:
            return str(row["sha256"])
        digest = sha256_file(p)
        with self.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO file_hashes(path, mtime_ns, size, sha256) VALUES (?, ?, ?, ?)",
                (key, st.st_mtime_ns, st.st_size, digest),
            )
        return digest

    def images(self, profile: Profile, host: Host | None = None) -> dict[str, str | None]:
        """sha256 of every file the profile boots from: kernel, initrd, drives, firmware; firmware given by name
        is the file ``host`` finds for it (as the boot's command line did), so a firmware update shows as a
        changed image too. Without ``host`` (a boot that ran on a cluster worker, whose file this machine
        cannot see), named firmware is left out."""
        images = {k: self.file_sha256(v) for k, v in profile.files().items()}
        if host is not None:
            for role, name in profile.firmware_names().items():
                found = host.firmware_for(role, name)
                images[role] = self.file_sha256(found) if found else None
        return images

    def save_log(self, src: str | Path | None) -> str | None:
        """Compress a console log into logs/ under a fresh name; return its path relative to the store."""
        if not src:
            return None
        path = Path(src)
        if not path.is_file():
            return None
        rel = f"logs/{time.strftime('%Y-%m')}/{uuid.uuid4().hex}.log.gz"
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with (
            path.open("rb") as fin,
            atomic_open(dest, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as fout,
        ):
            shutil.copyfileobj(fin, fout)
        return rel

    def read_log(self, rel: str) -> bytes:
        path = self.root / rel
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise UsageError(f"log {path} is missing from the store; it may have been deleted") from None

    # -- writes -----------------------------------------------------------------------------------------------------

    def begin_trial(
        self,
        profile: str,
        *,
        profile_hash: str | None = None,
        sets: list[str] | None = None,
        params: dict[str, Any] | None = None,
        note: str | None = None,
        matrix_id: int | None = None,
        comparison_id: int | None = None,
        arm: str | None = None,
        bisect_id: int | None = None,
    ) -> int:
        params = {**(params or {}), "pid": os.getpid()}
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO trials(profile, profile_hash, sets, params, note, matrix_id, comparison_id, arm,"
                " bisect_id, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    profile,
                    profile_hash,
                    json.dumps(sets or []),
                    json.dumps(params),
                    note,
                    matrix_id,
                    comparison_id,
                    arm,
                    bisect_id,
                    _now(),
                ),
            )
            return int(cur.lastrowid or 0)

    def finish_trial(self, trial_id: int, status: str, summary: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE trials SET status = ?, summary = ?, finished = ? WHERE id = ?",
                (status, json.dumps(summary), _now(), trial_id),
            )

    def record_boot(
        self,
        verdict: Verdict,
        profile: Profile,
        host: Host | None = None,
        *,
        trial_id: int | None = None,
        idx: int | None = None,
        argv: list[str] | None = None,
        revision: Revision | None = None,
        sets: list[str] | None = None,
    ) -> int:
        """Store one finished boot (its log compressed beside the database) in one transaction; return its id.

        ``revision`` is where the image came from; without it, the revision of the profile's source directory now
        (see :mod:`bootlab.source.revision`). ``sets``: a single boot's ``--set`` values (a trial's boots have their
        trial's), what its replay command needs."""
        rel = self.save_log(verdict.log)
        stored = verdict.model_copy(update={"log": str(self.root / rel) if rel else verdict.log})
        qemu = host.qemu.get(profile.arch) if host is not None else None
        from bootlab import __version__

        host_json = {
            "bootlab": __version__,
            "name": platform.node() or None,
            "os": host.os if host else None,
            "arch": host.arch if host else None,
            "qemu": qemu.path if qemu else None,
            "qemu_version": qemu.version if qemu else None,
            "accel": verdict.accel,
        }
        if verdict.worker is not None:  # a cluster worker ran it: record that host, not this one
            w = verdict.worker
            host_json.update(name=w.host, worker=w.name, os=w.os, arch=w.arch, qemu=w.qemu, qemu_version=w.qemu_version)
        images = self.images(profile, host if verdict.worker is None else None)
        if revision is None:
            revision = self.revision_for(profile)
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO boots(trial_id, idx, profile, profile_json, argv, images, host, accel, qemu_version,"
                " seed, outcome, title, verdict, log_path, created, revision, rev_commit, sets)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    trial_id,
                    idx,
                    profile.name,
                    profile.model_dump_json(),
                    json.dumps(verdict.argv or argv or []),
                    json.dumps(images),
                    json.dumps(host_json),
                    verdict.accel,
                    host_json["qemu_version"],
                    verdict.seed if verdict.seed is not None else profile.seed,
                    verdict.outcome,
                    verdict.title,
                    stored.model_dump_json(),
                    rel,
                    _now(),
                    json.dumps(revision.to_json()) if revision else None,
                    revision.commit if revision else None,
                    json.dumps(sets) if sets is not None else None,
                ),
            )
            return int(cur.lastrowid or 0)

    def revision_for(self, profile: Profile) -> Revision | None:
        """The revision of the profile's source directory, asked of git once per directory per store."""
        from bootlab.source.revision import revision_of, source_dir

        where = str(source_dir(profile))
        if where not in self._revisions:
            self._revisions[where] = revision_of(profile)
        return self._revisions[where]

    def begin_matrix(self, profile: str, axes: dict[str, list[str]], params: dict[str, Any], note: str | None) -> int:
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO matrices(profile, axes, params, note, started) VALUES (?, ?, ?, ?, ?)",
                (profile, json.dumps(axes), json.dumps({**params, "pid": os.getpid()}), note, _now()),
            )
            return int(cur.lastrowid or 0)

    def finish_matrix(self, matrix_id: int, status: str, summary: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE matrices SET status = ?, summary = ?, finished = ? WHERE id = ?",
                (status, json.dumps(summary), _now(), matrix_id),
            )

    def begin_comparison(self, note: str | None = None) -> int:
        with self.tx() as db:
            cur = db.execute("INSERT INTO comparisons(note, started) VALUES (?, ?)", (note, _now()))
            return int(cur.lastrowid or 0)

    def finish_comparison(self, comparison_id: int, trial_a: int, trial_b: int, summary: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE comparisons SET trial_a = ?, trial_b = ?, summary = ?, finished = ? WHERE id = ?",
                (trial_a, trial_b, json.dumps(summary), _now(), comparison_id),
            )

    def begin_bisect(self, profile: str, params: dict[str, Any], note: str | None = None) -> int:
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO bisects(profile, params, note, started) VALUES (?, ?, ?, ?)",
                (profile, json.dumps({**params, "pid": os.getpid()}), note, _now()),
            )
            return int(cur.lastrowid or 0)

    def update_bisect(self, bisect_id: int, status: str, summary: dict[str, Any], *, finished: bool = False) -> None:
        """Keep a bisect's state current (after every batch), so a killed bisect resumes from what it knew."""
        with self.tx() as db:
            db.execute(
                "UPDATE bisects SET status = ?, summary = ?, finished = ? WHERE id = ?",
                (status, json.dumps(summary), _now() if finished else None, bisect_id),
            )

    def claim_bisect(self, bisect_id: int, changed: dict[str, Any] | None = None) -> None:
        """This process resumes the bisect: it is running again, owned by this pid, with the ``changed`` params
        (a new budget, say)."""
        row = self.require(Ref("bisect", bisect_id))
        params = {**json.loads(row["params"] or "{}"), **(changed or {}), "pid": os.getpid()}
        with self.tx() as db:
            db.execute(
                "UPDATE bisects SET status = 'running', params = ? WHERE id = ?", (json.dumps(params), bisect_id)
            )

    def bisects(self, profile: str | None = None, limit: int | None = None) -> list[sqlite3.Row]:
        sql = "SELECT * FROM bisects"
        args: list[Any] = []
        if profile:
            sql += " WHERE profile = ?"
            args.append(profile)
        sql += " ORDER BY started DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return list(self.db.execute(sql, args))

    def bisect_trials(self, bisect_id: int) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM trials WHERE bisect_id = ? ORDER BY id", (bisect_id,)))

    def add_note(self, ref: Ref, text: str) -> None:
        """Attach a note to anything in the store; the latest note is also shown on the item's own line."""
        self.require(ref)
        table = TABLES[ref.kind]
        with self.tx() as db:
            db.execute("INSERT INTO notes(target, text, created) VALUES (?, ?, ?)", (str(ref), text, _now()))
            db.execute(f"UPDATE {table} SET note = ? WHERE id = ?", (text, ref.id))

    # -- reads ------------------------------------------------------------------------------------------------------

    def require(self, ref: Ref) -> sqlite3.Row:
        table = TABLES[ref.kind]
        row = self.db.execute(f"SELECT * FROM {table} WHERE id = ?", (ref.id,)).fetchone()
        if row is None:
            raise UsageError(f"no {ref.kind} {ref} in the store {self.root}; `bootlab history` lists what there is")
        return row

    def trials(
        self,
        profile: str | None = None,
        limit: int | None = None,
        *,
        commits: list[str] | None = None,
        since: float | None = None,
    ) -> list[sqlite3.Row]:
        """Trials, newest first; ``commits``: only those with a boot of one of these commits (full hashes or
        prefixes); ``since``: started at or after this time."""
        sql = "SELECT * FROM trials"
        where: list[str] = []
        args: list[Any] = []
        if profile:
            where.append("profile = ?")
            args.append(profile)
        if commits is not None:
            if not commits:
                return []
            likes = " OR ".join("b.rev_commit LIKE ?" for _ in commits)
            where.append(f"EXISTS (SELECT 1 FROM boots b WHERE b.trial_id = trials.id AND ({likes}))")
            args.extend(f"{c.lower()}%" for c in commits)
        if since is not None:
            where.append("started >= ?")
            args.append(since)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return list(self.db.execute(sql, args))

    def boots(self, trial_id: int) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM boots WHERE trial_id = ? ORDER BY idx, id", (trial_id,)))

    def trial_revisions(self, trial_id: int) -> list[dict[str, Any]]:
        """The distinct revisions a trial's boots came from, in order of first appearance."""
        seen: dict[str, dict[str, Any]] = {}
        for row in self.db.execute(
            "SELECT revision FROM boots WHERE trial_id = ? AND revision IS NOT NULL ORDER BY id", (trial_id,)
        ):
            data = json.loads(row["revision"])
            seen.setdefault(f"{data.get('commit')}:{data.get('dirty')}", data)
        return list(seen.values())

    def notes(self, ref: Ref) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM notes WHERE target = ? ORDER BY id", (str(ref),)))

    def status_of(self, row: sqlite3.Row) -> str:
        """A trial or matrix whose process died without finishing shows as ``killed``, not forever ``running``."""
        status = str(row["status"])
        if status == "running":
            pid = json.loads(row["params"] or "{}").get("pid")
            if isinstance(pid, int) and not _pid_alive(pid):
                return "killed"
        return status


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def open_store(project: Project | None = None, root: Path | None = None, *, existing: bool = False) -> Store:
    """The project's store (``$BOOTLAB_STORE`` wins), created on first use. ``existing=True`` is for commands that
    only read it (show, history, report, export, note, compare --trials): a store that is not there is a mistyped
    path, not one to create, so it is one line and exit 2 and nothing is written."""
    root = root or store_dir(project)
    if existing and not (root / DB_NAME).is_file():
        raise UsageError(
            f"no store at {root}: nothing has been recorded there; run `bootlab trial PROFILE -n 10` first, or "
            f"point BOOTLAB_STORE (or --config) at the store you meant"
        )
    return Store(root)


def record_boot(
    verdict: Verdict,
    profile: Profile,
    host: Host | None = None,
    *,
    project: Project | None = None,
    trial_id: int | None = None,
    idx: int | None = None,
    sets: list[str] | None = None,
) -> str:
    """Store a single boot (what ``bootlab boot`` calls) with its ``--set`` values; returns its id, e.g. ``b42``."""
    with open_store(project) as store:
        return f"b{store.record_boot(verdict, profile, host, trial_id=trial_id, idx=idx, sets=sets)}"
