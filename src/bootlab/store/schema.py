"""The store's schema as an ordered list of migrations; ``PRAGMA user_version`` is the applied count.

Never edit a shipped migration: append a new one. Each runs in the same ``BEGIN IMMEDIATE`` transaction that
bumps ``user_version``, so two bootlab processes opening a fresh store at once cannot both migrate it, and a
bootlab killed mid-migration leaves the previous version intact.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: boots, trials (a trial may belong to a matrix cell or a comparison arm), matrices, comparisons, notes,
    #    and the sha256 cache of images.
    """
    CREATE TABLE trials (
        id INTEGER PRIMARY KEY,
        profile TEXT NOT NULL,
        profile_hash TEXT,
        sets TEXT NOT NULL DEFAULT '[]',
        params TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'running',
        note TEXT,
        summary TEXT,
        matrix_id INTEGER REFERENCES matrices(id),
        comparison_id INTEGER REFERENCES comparisons(id),
        arm TEXT,
        started REAL NOT NULL,
        finished REAL
    );
    CREATE INDEX trials_profile ON trials(profile, started);
    CREATE TABLE boots (
        id INTEGER PRIMARY KEY,
        trial_id INTEGER REFERENCES trials(id),
        idx INTEGER,
        profile TEXT NOT NULL,
        profile_json TEXT NOT NULL,
        argv TEXT NOT NULL DEFAULT '[]',
        images TEXT NOT NULL DEFAULT '{}',
        host TEXT NOT NULL DEFAULT '{}',
        accel TEXT,
        qemu_version TEXT,
        seed INTEGER,
        outcome TEXT NOT NULL,
        title TEXT,
        verdict TEXT NOT NULL,
        log_path TEXT,
        note TEXT,
        created REAL NOT NULL
    );
    CREATE INDEX boots_trial ON boots(trial_id, idx);
    CREATE TABLE matrices (
        id INTEGER PRIMARY KEY,
        profile TEXT NOT NULL,
        axes TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'running',
        note TEXT,
        summary TEXT,
        started REAL NOT NULL,
        finished REAL
    );
    CREATE TABLE comparisons (
        id INTEGER PRIMARY KEY,
        trial_a INTEGER REFERENCES trials(id),
        trial_b INTEGER REFERENCES trials(id),
        note TEXT,
        summary TEXT,
        started REAL NOT NULL,
        finished REAL
    );
    CREATE TABLE notes (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        text TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX notes_target ON notes(target);
    CREATE TABLE file_hashes (
        path TEXT PRIMARY KEY,
        mtime_ns INTEGER NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    );
    """,
    # 2: where each boot's image came from (its source revision: commit, dirty, branch, --rev) and bisects, whose
    #    tested commits are trials (one per commit) linked to the bisect.
    """
    ALTER TABLE boots ADD COLUMN revision TEXT;
    ALTER TABLE boots ADD COLUMN rev_commit TEXT;
    CREATE INDEX boots_rev_commit ON boots(rev_commit);
    CREATE TABLE bisects (
        id INTEGER PRIMARY KEY,
        profile TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'running',
        note TEXT,
        summary TEXT,
        started REAL NOT NULL,
        finished REAL
    );
    ALTER TABLE trials ADD COLUMN bisect_id INTEGER REFERENCES bisects(id);
    """,
    # 3: the --set values of a single boot (`bootlab boot --set ...`), so that its replay command boots the same
    #    configuration; NULL for a trial's boots (their trial keeps them) and for single boots stored before.
    """
    ALTER TABLE boots ADD COLUMN sets TEXT;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
