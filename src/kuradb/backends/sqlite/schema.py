"""The SQLite store's schema: numbered, checksummed migrations applied in the transaction that records them.

Each migration is SQL and, where data must be computed, a Python step run right
after it in the same transaction. The steps carry their own logic (a frozen copy
of what the code of their time did), except where they rebuild derived state
(indexes), which is built the way the current code reads it.
"""
from __future__ import annotations

from collections.abc import Callable
from hashlib import blake2b, sha256
from typing import Any

import orjson

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
    (5, """
-- Layout v2 (issue #14; docs/DECISIONS.md "Storage layout v2"): a record's content is stored once,
-- in its change-log row. head marks the current version of each record (1 live, 2 deleted) and two
-- partial unique indexes find it (live ones alone are counted and listed without reading a row);
-- the docs table, which held a second copy, is gone. Collections
-- get permanent integer ids (a name keeps its id across drop_collection), digests are 16 bytes,
-- txn is an offset (0 for the first entry of a transaction). Secondary and text indexes are
-- derived state: dropped here and rebuilt over the new table by the step that follows.
ALTER TABLE log RENAME TO log_v4;
ALTER TABLE collections RENAME TO collections_v4;
ALTER TABLE indexes RENAME TO indexes_v4;
ALTER TABLE array_paths RENAME TO array_paths_v4;
DROP INDEX log_erased;

CREATE TABLE collections(
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    options TEXT NOT NULL DEFAULT '{}',
    created INTEGER NOT NULL,
    live    INTEGER NOT NULL DEFAULT 1
);
INSERT INTO collections(name, options, created)
    SELECT name, options, created FROM collections_v4 ORDER BY created, name;
INSERT OR IGNORE INTO collections(name, created, live)
    SELECT collection, min(at), 0 FROM log_v4 WHERE collection IS NOT NULL GROUP BY collection ORDER BY min(at);

CREATE TABLE log(
    position   INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    op         TEXT NOT NULL,
    coll       INTEGER,
    id         TEXT,
    version    INTEGER,
    rev        BLOB,
    at         INTEGER NOT NULL,
    author     TEXT,
    type       TEXT,
    created    INTEGER,
    checksum   BLOB,
    prev       INTEGER,
    erased     INTEGER NOT NULL DEFAULT 0,
    head       INTEGER,
    body       BLOB,
    actor_hash BLOB,
    hash       BLOB,
    txn        INTEGER NOT NULL DEFAULT 0
);
INSERT INTO log(position, kind, op, coll, id, version, rev, at, author, type, created, checksum, prev, erased,
                head, body, actor_hash, hash, txn)
    SELECT l.position, l.kind, l.op, c.id, l.id, l.version,
           CASE WHEN l.rev IS NOT NULL THEN unhex(substr(l.rev, instr(l.rev, '-') + 1)) END,
           l.at, l.author, l.type, l.created, unhex(l.checksum), l.prev, l.erased,
           CASE WHEN d.position IS NOT NULL THEN 1 + d.deleted END,
           l.body, l.actor_hash, l.hash, coalesce(l.position - l.txn, 0)
    FROM log_v4 AS l LEFT JOIN collections AS c ON c.name = l.collection
    LEFT JOIN docs AS d ON d.position = l.position AND l.kind = 'record';
CREATE UNIQUE INDEX log_live ON log(coll, id) WHERE head = 1;
CREATE UNIQUE INDEX log_dead ON log(coll, id) WHERE head = 2;
CREATE INDEX log_erased ON log(erased) WHERE erased > 0;

CREATE TABLE array_paths(
    coll INTEGER NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY(coll, path)
) WITHOUT ROWID;
INSERT INTO array_paths(coll, path)
    SELECT c.id, a.path FROM array_paths_v4 AS a JOIN collections AS c ON c.name = a.collection;

CREATE TABLE indexes(
    coll      INTEGER NOT NULL,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    fields    TEXT NOT NULL,
    is_unique INTEGER NOT NULL DEFAULT 0,
    options   TEXT NOT NULL DEFAULT '{}',
    created   INTEGER NOT NULL,
    PRIMARY KEY(coll, name)
) WITHOUT ROWID;
INSERT INTO indexes(coll, name, kind, fields, is_unique, options, created)
    SELECT c.id, i.name, i.kind, i.fields, i.is_unique, i.options, i.created
    FROM indexes_v4 AS i JOIN collections AS c ON c.name = i.collection;

DROP TABLE docs;
DROP TABLE log_v4;
DROP TABLE collections_v4;
DROP TABLE indexes_v4;
DROP TABLE array_paths_v4;
"""),
]


def _array_paths_v2(conn: Any) -> None:
    """Migration 2: fill the array catalog from every current record."""
    def walk(value: Any, path: tuple[str, ...], found: set[tuple[str, ...]]) -> None:
        if type(value) is list:
            found.add(path)
            for item in value:
                if isinstance(item, (dict, list)):
                    walk(item, path, found)
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, (dict, list)):
                    walk(v, (*path, k), found)

    seen: set[tuple[str, str]] = set()
    for collection, text in conn.execute("SELECT collection, json(body) FROM docs WHERE body IS NOT NULL"):
        found: set[tuple[str, ...]] = set()
        walk(orjson.loads(text), (), found)
        seen.update((collection, orjson.dumps(list(p)).decode()) for p in found)
    conn.executemany("INSERT OR IGNORE INTO array_paths(collection, path) VALUES(?, ?)", sorted(seen))


def _audit_v3(conn: Any) -> None:
    """Migration 3: hash-chain every existing change-log entry, oldest first (kuradb/audit.py's format)."""
    prev = bytes(16)
    updates = []
    for position, at, kind, op, collection, id, version, rev, author in conn.execute(
            "SELECT position, at, kind, op, collection, id, version, rev, author FROM log ORDER BY position"):
        actor = None if author is None else blake2b(author.encode(), digest_size=16).digest()
        material = orjson.dumps([position, at, kind, op, collection, id, version, rev,
                                 None if actor is None else actor.hex()])
        prev = blake2b(prev + material, digest_size=16).digest()
        updates.append((actor, prev, position))
    conn.executemany("UPDATE log SET actor_hash=?, hash=? WHERE position=?", updates)


def _indexes_v5(conn: Any) -> None:
    """Migration 5: build every declared secondary and text index over the new log table. The old text
    indexes (FTS5 tables named by collection name, kept by triggers on docs) go first: their triggers
    went with docs, and a collection named like a new id must not meet its old table."""
    from . import indexes

    old = [name for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'"
                                            " AND name LIKE 'kura_fts:%' AND sql LIKE 'CREATE VIRTUAL TABLE%'")]
    for name in old:
        conn.execute(f'DROP TABLE "{name}"')
    indexes.rebuild_all(conn)


# Python steps run right after a migration's SQL, in the same transaction.
AFTER_MIGRATION: dict[int, Callable[[Any], None]] = {2: _array_paths_v2, 3: _audit_v3, 5: _indexes_v5}

LATEST = MIGRATIONS[-1][0]


def migration_checksum(sql: str) -> str:
    return sha256(sql.strip().encode()).hexdigest()
