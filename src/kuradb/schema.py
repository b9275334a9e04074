"""The on-disk schema: numbered, checksummed migrations applied in the transaction that records them."""
from __future__ import annotations

from collections.abc import Callable
from hashlib import sha256
from typing import Any

from .audit import backfill as audit_backfill
from .query.catalog import backfill

APPLICATION_ID = 0x4B555241  # "KURA": marks a SQLite file as a kuradb store

# Append only. Each entry is (version, sql); an applied migration is never edited,
# and its checksum is checked on every open.
MIGRATIONS: list[tuple[int, str]] = [
    (1, """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;

CREATE TABLE migrations(
    version    INTEGER PRIMARY KEY,
    checksum   TEXT NOT NULL,
    applied_at INTEGER NOT NULL
);

CREATE TABLE collections(
    name    TEXT PRIMARY KEY,
    options TEXT NOT NULL DEFAULT '{}',
    created INTEGER NOT NULL
) WITHOUT ROWID;

-- The current version of every record (tombstones included), for reads and queries.
CREATE TABLE docs(
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    version    INTEGER NOT NULL,
    rev        TEXT NOT NULL,
    type       TEXT,
    created    INTEGER NOT NULL,
    modified   INTEGER NOT NULL,
    author     TEXT,
    deleted    INTEGER NOT NULL DEFAULT 0,
    position   INTEGER NOT NULL,
    checksum   TEXT,
    body       BLOB,
    UNIQUE(collection, id)
);

-- The change log, the spine: one row per change with a gapless position.
-- Record rows keep the content of that version (history), chained to the
-- previous version of the same record by prev (docs.position is the head);
-- erased>0 when keep_history, purge or drop_collection removed the content (see migration 4).
-- A chain, not an index on (collection, id, version): one b-tree less to
-- update on every write (single puts 0.57x -> 0.77x raw SQLite, bench/layout.py).
CREATE TABLE log(
    position   INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    collection TEXT,
    id         TEXT,
    version    INTEGER,
    rev        TEXT,
    op         TEXT NOT NULL,
    at         INTEGER NOT NULL,
    author     TEXT,
    type       TEXT,
    created    INTEGER,
    checksum   TEXT,
    prev       INTEGER,
    erased     INTEGER NOT NULL DEFAULT 0,
    body       BLOB
);

-- Blob metadata; data is inline for small blobs and NULL for blobs kept as files.
CREATE TABLE blobs(
    hash         TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    content_type TEXT,
    created      INTEGER NOT NULL,
    data         BLOB
) WITHOUT ROWID;

-- Which record versions (log positions) refer to which blobs: what gc must keep.
CREATE TABLE blob_refs(
    hash     TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY(hash, position)
) WITHOUT ROWID;
CREATE INDEX blob_refs_position ON blob_refs(position);
"""),
    (2, """
-- Content paths that have held an array, per collection (kuradb/query/catalog.py).
-- Grows only; a path is a JSON array of object keys.
CREATE TABLE array_paths(
    collection TEXT NOT NULL,
    path       TEXT NOT NULL,
    PRIMARY KEY(collection, path)
) WITHOUT ROWID;

-- Secondary and full-text indexes of collections (kuradb/query/indexes.py, fulltext.py).
CREATE TABLE indexes(
    collection TEXT NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    fields     TEXT NOT NULL,
    is_unique  INTEGER NOT NULL DEFAULT 0,
    options    TEXT NOT NULL DEFAULT '{}',
    created    INTEGER NOT NULL,
    PRIMARY KEY(collection, name)
) WITHOUT ROWID;
"""),
    (3, """
-- The audit trail: each change-log entry hash-chained to the one before (kuradb/audit.py).
ALTER TABLE log ADD COLUMN actor_hash BLOB;
ALTER TABLE log ADD COLUMN hash BLOB;
"""),
    (4, """
-- Point-in-time restore and incremental backups (kuradb/backups/).
-- txn: the position of the first entry of the transaction that wrote this one, so a
-- restore stops only where a transaction ended (NULL on entries older than this column).
-- erased: from now on the position of the change that erased the content (1 on older
-- ones), so a backup finds what was erased since its parent through this index.
ALTER TABLE log ADD COLUMN txn INTEGER;
CREATE INDEX log_erased ON log(erased) WHERE erased > 0;
"""),
]

# Python steps run right after a migration's SQL, in the same transaction (data backfills).
AFTER_MIGRATION: dict[int, Callable[[Any], None]] = {2: backfill, 3: audit_backfill}

LATEST = MIGRATIONS[-1][0]


def migration_checksum(sql: str) -> str:
    return sha256(sql.strip().encode()).hexdigest()
