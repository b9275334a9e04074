"""Typed row operations on the SQLite store's tables: what ``Reader`` and ``Tx`` of kuradb/backend.py do.

The tables (schema.py, migration 5): ``log`` holds every change and every record
version with its content; ``head`` marks a record's current version (1 live,
2 deleted) and the partial unique index ``log_heads`` finds it. ``collections``
maps names to permanent integer ids. Rows cross the seam as tuples in the orders
kuradb/backend.py documents (HEAD, VERSION, CHANGE, AUDIT), digests as bytes.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apsw
import orjson

from ...backend import IndexConflict, NewEntry
from .errors import READ_ERRORS, iterate, translate_all

# A record's current version: HEAD columns (kuradb/backend.py), then its position. A record has at most
# one head, live (head 1, index log_live) or deleted (head 2, log_dead): "head IN (1, 2)" is written as
# an OR so that SQLite searches both partial indexes.
_HEAD_COLS = "version, rev, type, created, at, author, head = 2, checksum, json(body), position"
_HEAD = f"SELECT {_HEAD_COLS} FROM log WHERE coll=? AND id=? AND (head = 1 OR head = 2)"
_LIVE = f"SELECT {_HEAD_COLS} FROM log WHERE coll=? AND id=? AND head = 1"
# Each half is searched by (coll, id) in its own index; an OR over both would scan the collection.
_HEADS = " UNION ALL ".join(
    f"SELECT id, version, rev, created, head = 2, position FROM log WHERE coll=?1 AND head = {h}"
    " AND id IN (SELECT value FROM json_each(?2))" for h in (1, 2))
# The versions of one record, newest first, walking prev from its head down to version ? (exclusive).
_CHAIN = ("WITH RECURSIVE chain(p) AS (SELECT position FROM log WHERE coll=? AND id=? AND (head = 1 OR head = 2)"
          " UNION ALL SELECT log.prev FROM log JOIN chain ON log.position = chain.p"
          " WHERE log.prev IS NOT NULL AND log.version > ?)")
_VERSION_COLS = "version, rev, type, created, at, author, op = 'delete', checksum, json(body)"
_VERSION = (f"{_CHAIN} SELECT {_VERSION_COLS} FROM log JOIN chain ON log.position = chain.p"
            " WHERE version=? AND erased=0")
_VERSIONS = (f"{_CHAIN} SELECT {_VERSION_COLS} FROM log JOIN chain ON log.position = chain.p"
             " WHERE erased=0 AND version > ? ORDER BY version")
_CATALOG = ("SELECT NULL, path, NULL, NULL, NULL, NULL, NULL FROM array_paths WHERE coll=?1 UNION ALL"
            " SELECT 1, created, name, kind, fields, is_unique, options FROM indexes WHERE coll=?1")
_CHANGES = ("SELECT l.position, l.kind, c.name, l.id, l.version, l.rev, l.op, l.at, l.author FROM log AS l"
            " LEFT JOIN collections AS c ON c.id = l.coll WHERE l.position > ? ORDER BY l.position LIMIT ?")
_INSERT = ("INSERT INTO log(position, kind, op, coll, id, version, rev, at, author, type, created, checksum,"
           " prev, erased, head, body, actor_hash, hash, txn) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?, jsonb(?),?,?,?)")
_AUDIT = ("SELECT l.position, l.at, l.author, l.kind, l.op, c.name, l.id, l.version, l.rev, l.actor_hash,"
          " coalesce((SELECT p.hash FROM log AS p WHERE p.position = l.position - 1), ?1), l.hash"
          " FROM log AS l LEFT JOIN collections AS c ON c.id = l.coll"
          " WHERE l.position > ?2 AND l.at >= ?3 AND (?4 IS NULL OR l.author = ?4) ORDER BY l.position LIMIT ?5")


@translate_all
class Rows:
    """Reads, over ``self.cur`` (a cursor in a read snapshot or a write transaction) of ``self.backend``."""

    cur: apsw.Cursor
    backend: Any

    # -- collections --------------------------------------------------------------------

    def collection(self, name: str) -> tuple[int, str, bool] | None:
        """``(id, options JSON, live)`` of a collection name ever used, else None."""
        row = self.cur.execute("SELECT id, options, live FROM collections WHERE name=?", (name,)).fetchone()
        return None if row is None else (row[0], row[1], bool(row[2]))

    def collection_names(self) -> list[str]:
        """Names of the collections that exist (written to or given options, not dropped since)."""
        return [r[0] for r in self.cur.execute("SELECT name FROM collections WHERE live ORDER BY name")]

    # -- records ------------------------------------------------------------------------

    def head(self, coll: int, id: str) -> tuple[Any, ...] | None:
        """The current version of a record (HEAD + position), tombstones included. The hot path."""
        try:
            return self.cur.execute(_HEAD, (coll, id)).fetchone()
        except READ_ERRORS as e:
            raise self.backend.failed(e, f"record {id!r}") from e

    head.translates = True  # type: ignore[attr-defined]

    def live(self, coll: int, id: str) -> tuple[Any, ...] | None:
        """The current version of a live record (HEAD + position), None if deleted or missing. The hot path."""
        try:
            return self.cur.execute(_LIVE, (coll, id)).fetchone()
        except READ_ERRORS as e:
            raise self.backend.failed(e, f"record {id!r}") from e

    live.translates = True  # type: ignore[attr-defined]

    def heads(self, coll: int, ids: list[str]) -> dict[str, tuple[Any, ...]]:
        """``id -> (version, rev, created, deleted, position)`` of the current versions of ``ids``."""
        out: dict[str, tuple[Any, ...]] = {}
        for i in range(0, len(ids), 500):
            for row in self.cur.execute(_HEADS, (coll, orjson.dumps(ids[i:i + 500]).decode())):
                out[row[0]] = row[1:]
        return out

    def version(self, coll: int, id: str, version: int) -> tuple[Any, ...] | None:
        """One kept version of a record (VERSION columns), walking back from its head."""
        return self.cur.execute(_VERSION, (coll, id, version - 1, version)).fetchone()

    def versions(self, coll: int, id: str, above: int = 0) -> list[tuple[Any, ...]]:
        """The kept versions of a record newer than ``above``, oldest first (VERSION columns)."""
        return self.cur.execute(_VERSIONS, (coll, id, above, above)).fetchall()

    def count(self, coll: int) -> int:
        row: Any = self.cur.execute("SELECT count(*) FROM log WHERE coll=? AND head=1", (coll,)).fetchone()
        return int(row[0])

    def ids(self, coll: int, after: str, limit: int) -> list[str]:
        """Live record ids after ``after`` in id order."""
        return [r[0] for r in self.cur.execute(
            "SELECT id FROM log WHERE coll=? AND head=1 AND id>? ORDER BY id LIMIT ?", (coll, after, limit))]

    def is_live(self, coll: int, id: str) -> bool:
        return self.cur.execute("SELECT 1 FROM log WHERE coll=? AND id=? AND head=1", (coll, id)).fetchone() is not None

    # -- the change log -------------------------------------------------------------------

    def last(self) -> tuple[int, bytes | None]:
        """The newest entry's position and hash (0 and None when the log is empty)."""
        row = self.cur.execute("SELECT position, hash FROM log ORDER BY position DESC LIMIT 1").fetchone()
        return (0, None) if row is None else (row[0], row[1])

    def entry_hash(self, position: int) -> bytes | None:
        row = self.cur.execute("SELECT hash FROM log WHERE position=?", (position,)).fetchone()
        return None if row is None else row[0]

    def entry_time(self, position: int) -> int | None:
        row = self.cur.execute("SELECT at FROM log WHERE position=?", (position,)).fetchone()
        return None if row is None else int(row[0])

    def changes(self, since: int, limit: int) -> list[tuple[Any, ...]]:
        """CHANGE rows after ``since``, oldest first."""
        return self.cur.execute(_CHANGES, (since, limit)).fetchall()

    def audit(self, after: int, at_least: int, actor: str | None, limit: int, genesis: bytes) -> list[Any]:
        """AUDIT rows (entry, previous entry's hash) after ``after``, at or after time ``at_least``."""
        return self.cur.execute(_AUDIT, (genesis, after, at_least, actor, limit)).fetchall()

    # -- blobs and metadata ----------------------------------------------------------------

    def blob(self, hash: str, data: bool = False) -> tuple[Any, ...] | None:
        """``(size, content_type)`` of a stored blob, with its inline bytes (or None for a file) if ``data``."""
        cols = "size, content_type, data" if data else "size, content_type"
        return self.cur.execute(f"SELECT {cols} FROM blobs WHERE hash=?", (hash,)).fetchone()

    def missing_blobs(self, hashes: Iterable[str]) -> list[str]:
        return [h for h in hashes if self.cur.execute("SELECT 1 FROM blobs WHERE hash=?", (h,)).fetchone() is None]

    def file_blobs(self) -> list[str]:
        """Hashes of the blobs kept as files."""
        return [r[0] for r in self.cur.execute("SELECT hash FROM blobs WHERE data IS NULL")]

    def meta(self, key: str) -> str | None:
        row = self.cur.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def totals(self) -> dict[str, int]:
        row: Any = self.cur.execute(
            "SELECT (SELECT count(*) FROM log WHERE head=1), (SELECT count(*) FROM log WHERE head=2),"
            " (SELECT count(*) FROM log WHERE kind='record' AND erased=0 AND version IS NOT NULL),"
            " (SELECT count(*) FROM blobs), (SELECT coalesce(sum(size), 0) FROM blobs)").fetchone()
        return dict(zip(("records", "deleted", "versions", "blobs", "blob_bytes"), map(int, row), strict=True))

    # -- queries compiled by the dialect ---------------------------------------------------

    def rows(self, sql: str, params: Any = ()) -> list[Any]:
        """Run a statement the dialect compiled (kuradb/backends/sqlite/dialect.py) and fetch all rows."""
        return self.cur.execute(sql, params).fetchall()

    def stream(self, sql: str, params: Any = ()) -> Iterator[Any]:
        """Rows of a compiled statement as they are stepped through (errors translated on the way)."""
        return iterate(self.backend, self.cur.execute(sql, params), "query")

    def catalog(self, coll: int) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        """A collection's array paths (JSON texts) and index rows (created, name, kind, fields, unique, options),
        in one statement: every query reads them."""
        rows: list[Any] = self.cur.execute(_CATALOG, (coll,)).fetchall()
        return (tuple(r[1] for r in rows if r[0] is None),
                tuple(r[1:] for r in rows if r[0] is not None))


@translate_all
class Writes(Rows):
    """Writes, inside a write transaction (``self.cur`` holds the write lock)."""

    settled: int

    def ensure_collection(self, name: str, created: int) -> int:
        """The collection's id, making (or reviving after a drop) its row."""
        row = self.cur.execute("SELECT id, live FROM collections WHERE name=?", (name,)).fetchone()
        if row is None:
            made: Any = self.cur.execute("INSERT INTO collections(name, created) VALUES(?, ?) RETURNING id",
                                         (name, created)).fetchone()
            return int(made[0])
        if not row[1]:
            self.cur.execute("UPDATE collections SET live=1, created=? WHERE id=?", (created, row[0]))
        return int(row[0])

    def set_options(self, coll: int, options: str) -> None:
        self.cur.execute("UPDATE collections SET options=? WHERE id=?", (options, coll))

    def append(self, entries: list[NewEntry], superseded: list[int], unique: bool = False) -> None:
        """Write change-log entries; the record heads at ``superseded`` positions stop being heads first.

        Only kuradb/changelog.py calls this. A unique index refusing a row raises
        IndexConflict with nothing of this call left behind.
        """
        cur = self.cur
        if superseded:
            cur.executemany("UPDATE log SET head=NULL WHERE position=?", [(p,) for p in superseded])
        try:
            if len(entries) == 1:
                cur.execute(_INSERT, entries[0].row())
            else:
                cur.executemany(_INSERT, [e.row() for e in entries])
        except apsw.ConstraintError as e:
            if superseded:   # put the heads back: the refused write must leave nothing
                cur.executemany("UPDATE log SET head = CASE WHEN op = 'delete' THEN 2 ELSE 1 END"
                                " WHERE position=?", [(p,) for p in superseded])
            self.settled = cur.connection.total_changes()
            raise IndexConflict(str(e)) from e

    def erase(self, coll: int, id: str, by: int, *, below: int | None = None, scrub: bool = False,
              unhead: bool = False) -> list[int]:
        """Remove the content of a record's versions (those under ``below``, else all) and release their
        blob references; ``scrub`` also removes author, type and checksum, ``unhead`` its head (purge).
        ``by`` is the position of the change that erases (kept in ``erased``). Returns the positions."""
        extra = ", author=NULL, type=NULL, checksum=NULL" if scrub else ""
        only = "" if below is None else f" AND version < {int(below)}"
        kept = "" if scrub else " AND erased=0"
        positions: list[Any] = self.cur.execute(
            f"{_CHAIN} UPDATE log SET body=NULL, erased={int(by)}{extra}"
            f" WHERE position IN (SELECT p FROM chain){only}{kept} RETURNING position", (coll, id, 0)).fetchall()
        if unhead:
            self.cur.execute("UPDATE log SET head=NULL WHERE coll=? AND id=? AND (head = 1 OR head = 2)", (coll, id))
        if positions:
            self.cur.executemany("DELETE FROM blob_refs WHERE position=?", positions)
        return [p for (p,) in positions]

    def drop_collection(self, coll: int, by: int) -> None:
        """Erase every version of every record of a collection and forget its heads and options."""
        positions: list[Any] = self.cur.execute(
            "WITH RECURSIVE chain(p) AS (SELECT position FROM log WHERE coll=? AND (head = 1 OR head = 2)"
            " UNION ALL SELECT log.prev FROM log JOIN chain ON log.position = chain.p WHERE log.prev IS NOT NULL)"
            " UPDATE log SET body=NULL, erased=?, head=NULL WHERE position IN (SELECT p FROM chain)"
            " RETURNING position", (coll, by)).fetchall()
        self.cur.executemany("DELETE FROM blob_refs WHERE position=?", positions)
        self.cur.execute("UPDATE collections SET live=0, options='{}' WHERE id=?", (coll,))

    def unhead(self, coll: int, id: str) -> None:
        """The record has no current version any more (a replayed purge)."""
        self.cur.execute("UPDATE log SET head=NULL WHERE coll=? AND id=? AND (head = 1 OR head = 2)", (coll, id))

    def apply_erasure(self, position: int, erased: int, author: str | None, type: str | None,
                      checksum: bytes | None) -> None:
        """Make an entry's content erased as a restored backup says (its blob references go with it)."""
        self.cur.execute("UPDATE log SET body=NULL, erased=?, author=?, type=?, checksum=? WHERE position=?",
                         (erased, author, type, checksum, position))
        self.cur.execute("DELETE FROM blob_refs WHERE position=?", (position,))

    def current_among(self, positions: list[int]) -> int | None:
        """One of ``positions`` that is a record's current version, if any."""
        row = self.cur.execute("SELECT position FROM log WHERE head IS NOT NULL AND position IN"
                               " (SELECT value FROM json_each(?))", (orjson.dumps(positions).decode(),)).fetchone()
        return None if row is None else int(row[0])

    def add_kept_blob_refs(self, refs: list[tuple[str, int]]) -> None:
        """Blob references of restored versions whose content is still kept."""
        self.cur.executemany("INSERT OR IGNORE INTO blob_refs(hash, position) SELECT ?, position FROM log"
                             " WHERE position = ? AND erased = 0", refs)

    def delete_blob(self, hash: str) -> None:
        self.cur.execute("DELETE FROM blobs WHERE hash=?", (hash,))

    def add_blob_refs(self, refs: list[tuple[str, int]]) -> None:
        self.cur.executemany("INSERT OR IGNORE INTO blob_refs(hash, position) VALUES(?, ?)", refs)

    def put_blob(self, hash: str, size: int, content_type: str | None, created: int, data: bytes | None) -> None:
        self.cur.execute("INSERT INTO blobs(hash, size, content_type, created, data) VALUES(?,?,?,?,?)",
                         (hash, size, content_type, created, data))

    def delete_unreferenced_blobs(self, before: int) -> list[tuple[str, bool]]:
        """Remove blobs made before ``before`` that no record version refers to: ``(hash, was a file)``."""
        return [(h, bool(f)) for h, f in self.cur.execute(
            "DELETE FROM blobs WHERE created < ? AND NOT EXISTS (SELECT 1 FROM blob_refs r WHERE r.hash = blobs.hash)"
            " RETURNING hash, data IS NULL", (before,))]

    def set_meta(self, key: str, value: str) -> None:
        self.cur.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    def add_index(self, coll: int, name: str, kind: str, fields: str, unique: bool, options: str,
                  created: int) -> None:
        self.cur.execute("INSERT INTO indexes(coll, name, kind, fields, is_unique, options, created)"
                         " VALUES(?, ?, ?, ?, ?, ?, ?)", (coll, name, kind, fields, int(unique), options, created))

    def remove_index(self, coll: int, name: str) -> tuple[Any, ...] | None:
        """Forget an index's declaration: ``(name, kind, fields, unique)``, None if there was none."""
        return self.cur.execute("DELETE FROM indexes WHERE coll=? AND name=? RETURNING name, kind, fields,"
                                " is_unique", (coll, name)).fetchone()

    def note_array_paths(self, coll: int, paths: list[str]) -> None:
        self.cur.executemany("INSERT OR IGNORE INTO array_paths(coll, path) VALUES(?, ?)",
                             [(coll, p) for p in paths])

