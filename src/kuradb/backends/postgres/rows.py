"""Typed row operations on the PostgreSQL store's tables: what ``Reader`` and ``Tx`` of kuradb/backend.py do.

The same operations as the SQLite backend's rows.py over the same layout
(schema.py), in PostgreSQL's SQL: ``%s`` parameters, ``= ANY(list)``, ``ON
CONFLICT``, a savepoint where a statement may be refused (a refused statement
aborts a PostgreSQL transaction, so it is rolled back to just before it).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from psycopg import errors as pg

from ...backend import IndexConflict, NewEntry
from . import fts
from .errors import translate_all

_HEAD_COLS = "version, rev, type, created, at, author, head = 2, checksum, body, position"
_HEAD = f"SELECT {_HEAD_COLS} FROM log WHERE coll=%s AND id=%s AND head IN (1, 2)"
_LIVE = f"SELECT {_HEAD_COLS} FROM log WHERE coll=%s AND id=%s AND head = 1"
_HEADS = ("SELECT id, version, rev, created, head = 2, position FROM log"
          " WHERE coll=%s AND id = ANY(%s) AND head IN (1, 2)")
# The versions of one record, newest first, walking prev from its head down to version %s (exclusive).
_CHAIN = ("WITH RECURSIVE chain(p) AS (SELECT position FROM log WHERE coll=%s AND id=%s AND head IN (1, 2)"
          " UNION ALL SELECT log.prev FROM log JOIN chain ON log.position = chain.p"
          " WHERE log.prev IS NOT NULL AND log.version > %s)")
_VERSION_COLS = "version, rev, type, created, at, author, op = 'delete', checksum, body"
_VERSION = (f"{_CHAIN} SELECT {_VERSION_COLS} FROM log JOIN chain ON log.position = chain.p"
            " WHERE version=%s AND erased=0")
_VERSIONS = (f"{_CHAIN} SELECT {_VERSION_COLS} FROM log JOIN chain ON log.position = chain.p"
             " WHERE erased=0 AND version > %s ORDER BY version")
_CATALOG = ("SELECT NULL::int, path, NULL::text, NULL::text, NULL::text, NULL::boolean, NULL::text"
            " FROM array_paths WHERE coll=%(c)s UNION ALL"
            " SELECT 1, created::text, name, kind, fields, is_unique, options FROM indexes WHERE coll=%(c)s")
_CHANGES = ("SELECT l.position, l.kind, c.name, l.id, l.version, l.rev, l.op, l.at, l.author FROM log AS l"
            " LEFT JOIN collections AS c ON c.id = l.coll WHERE l.position > %s ORDER BY l.position LIMIT %s")
# The one statement that appends to the log, with its rows from parameters: one row (VALUES), or a batch
# as one binary array per column (unnest): the server inserts a batch in one pass.
_APPEND = ("INSERT INTO log(position, kind, op, coll, id, version, rev, at, author, type, created, checksum,"
           " prev, erased, head, body, actor_hash, hash, txn) ")
_INSERT = _APPEND + "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s, convert_from(%s::bytea, 'UTF8'),%s,%s,%s)"
_LOG_TYPES = ("bigint", "text", "text", "integer", "text", "bigint", "bytea", "bigint", "text", "text", "bigint",
              "bytea", "bigint", "bigint", "smallint", "bytea", "bytea", "bytea", "bigint")
_INSERT_MANY = (_APPEND + "SELECT c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15,"
                " convert_from(c16, 'UTF8'), c17, c18, c19 FROM unnest("
                + ", ".join(f"%b::{t}[]" for t in _LOG_TYPES) + ") AS u("
                + ", ".join(f"c{i}" for i in range(1, 20)) + ")")


def _columns(entries: list[NewEntry]) -> list[list[Any]]:
    """The entries' rows as one list per column of log (for _INSERT_MANY)."""
    return [list(c) for c in zip(*(e.row() for e in entries), strict=True)]


_AUDIT = ("SELECT l.position, l.at, l.author, l.kind, l.op, c.name, l.id, l.version, l.rev, l.actor_hash,"
          " coalesce((SELECT p.hash FROM log AS p WHERE p.position = l.position - 1), %(genesis)s), l.hash"
          " FROM log AS l LEFT JOIN collections AS c ON c.id = l.coll"
          " WHERE l.position > %(after)s AND l.at >= %(at)s AND (%(actor)s::text IS NULL OR l.author = %(actor)s)"
          " ORDER BY l.position LIMIT %(limit)s")


@translate_all
class Rows:
    """Reads, over ``self.cur`` (a cursor in a read snapshot, an autocommit read, or a write transaction)."""

    cur: Any
    backend: Any

    def ready(self) -> None:
        """Make sure the transaction these reads belong to has begun (a write transaction's: opening.py)."""

    # -- collections --------------------------------------------------------------------

    def collection(self, name: str) -> tuple[int, str, bool] | None:
        """``(id, options JSON, live)`` of a collection name ever used, else None."""
        row = self.cur.execute("SELECT id, options, live FROM collections WHERE name=%s", (name,)).fetchone()
        return None if row is None else (row[0], row[1], bool(row[2]))

    def collection_names(self) -> list[str]:
        return [r[0] for r in self.cur.execute("SELECT name FROM collections WHERE live ORDER BY name")]

    def collection_ids(self) -> dict[str, int]:
        return {name: id for id, name in self.cur.execute("SELECT id, name FROM collections")}

    # -- records ------------------------------------------------------------------------

    def head(self, coll: int, id: str) -> tuple[Any, ...] | None:
        """The current version of a record (HEAD + position), tombstones included."""
        return self.cur.execute(_HEAD, (coll, id)).fetchone()

    def live(self, coll: int, id: str) -> tuple[Any, ...] | None:
        """The current version of a live record (HEAD + position), None if deleted or missing."""
        return self.cur.execute(_LIVE, (coll, id)).fetchone()

    def heads(self, coll: int, ids: list[str]) -> dict[str, tuple[Any, ...]]:
        """``id -> (version, rev, created, deleted, position)`` of the current versions of ``ids``."""
        out: dict[str, tuple[Any, ...]] = {}
        for i in range(0, len(ids), 5000):
            for row in self.cur.execute(_HEADS, (coll, ids[i:i + 5000])):
                out[row[0]] = row[1:]
        return out

    def version(self, coll: int, id: str, version: int) -> tuple[Any, ...] | None:
        return self.cur.execute(_VERSION, (coll, id, version - 1, version)).fetchone()

    def versions(self, coll: int, id: str, above: int = 0) -> list[tuple[Any, ...]]:
        return self.cur.execute(_VERSIONS, (coll, id, above, above)).fetchall()

    def count(self, coll: int) -> int:
        return int(self.cur.execute("SELECT count(*) FROM log WHERE coll=%s AND head=1", (coll,)).fetchone()[0])

    def ids(self, coll: int, after: str, limit: int) -> list[str]:
        return [r[0] for r in self.cur.execute(
            "SELECT id FROM log WHERE coll=%s AND head=1 AND id > %s ORDER BY id LIMIT %s",
            (coll, after, None if limit < 0 else limit))]

    def is_live(self, coll: int, id: str) -> bool:
        return self.cur.execute("SELECT 1 FROM log WHERE coll=%s AND id=%s AND head=1",
                                (coll, id)).fetchone() is not None

    # -- the change log -------------------------------------------------------------------

    def last(self) -> tuple[int, bytes | None]:
        row = self.cur.execute("SELECT position, hash FROM log ORDER BY position DESC LIMIT 1").fetchone()
        return (0, None) if row is None else (row[0], row[1])

    def entry_hash(self, position: int) -> bytes | None:
        row = self.cur.execute("SELECT hash FROM log WHERE position=%s", (position,)).fetchone()
        return None if row is None else row[0]

    def entry_time(self, position: int) -> int | None:
        row = self.cur.execute("SELECT at FROM log WHERE position=%s", (position,)).fetchone()
        return None if row is None else int(row[0])

    def changes(self, since: int, limit: int) -> list[tuple[Any, ...]]:
        return self.cur.execute(_CHANGES, (since, None if limit < 0 else limit)).fetchall()

    def audit(self, after: int, at_least: int, actor: str | None, limit: int, genesis: bytes) -> list[Any]:
        return self.cur.execute(_AUDIT, {"genesis": genesis, "after": after, "at": at_least, "actor": actor,
                                         "limit": None if limit < 0 else limit}).fetchall()

    # -- blobs and metadata ----------------------------------------------------------------

    def blob(self, hash: str, data: bool = False) -> tuple[Any, ...] | None:
        cols = "size, content_type, data" if data else "size, content_type"
        return self.cur.execute(f"SELECT {cols} FROM blobs WHERE hash=%s", (hash,)).fetchone()

    def missing_blobs(self, hashes: Iterable[str]) -> list[str]:
        wanted = list(hashes)
        have = {r[0] for r in self.cur.execute("SELECT hash FROM blobs WHERE hash = ANY(%s)", (wanted,))}
        return [h for h in wanted if h not in have]

    def file_blobs(self) -> list[str]:
        return []      # every blob is kept in the database

    def meta(self, key: str) -> str | None:
        row = self.cur.execute("SELECT value FROM meta WHERE key=%s", (key,)).fetchone()
        return None if row is None else row[0]

    def totals(self) -> dict[str, int]:
        row = self.cur.execute(
            "SELECT (SELECT count(*) FROM log WHERE head=1), (SELECT count(*) FROM log WHERE head=2),"
            " (SELECT count(*) FROM log WHERE kind='record' AND erased=0 AND version IS NOT NULL),"
            " (SELECT count(*) FROM blobs), (SELECT coalesce(sum(size), 0) FROM blobs)").fetchone()
        return dict(zip(("records", "deleted", "versions", "blobs", "blob_bytes"), map(int, row), strict=True))

    # -- statements the dialect compiled, and a collection's catalog ------------------------

    def rows(self, sql: str, params: Any = ()) -> list[Any]:
        return self.cur.execute(sql, params).fetchall()

    def stream(self, sql: str, params: Any = ()) -> Iterator[Any]:
        """Rows of a compiled statement as they come: through a server-side cursor inside a transaction
        or snapshot (bounded memory), all at once otherwise."""
        self.ready()
        conn = self.cur.connection
        if conn.info.transaction_status != conn.info.transaction_status.INTRANS:
            return iter(self.cur.execute(sql, params).fetchall())
        return self._streamed(sql, params)

    def _streamed(self, sql: str, params: Any) -> Iterator[Any]:
        with self.cur.connection.cursor(name="kura_stream") as scan:
            scan.itersize = 1000
            scan.execute(sql, params)
            yield from scan

    def catalog(self, coll: int) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        rows = self.cur.execute(_CATALOG, {"c": coll}).fetchall()
        return (tuple(r[1] for r in rows if r[0] is None),
                tuple((int(r[1]), r[2], r[3], r[4], int(r[5]), r[6]) for r in rows if r[0] is not None))


class CatalogCache:
    """What write transactions read of the catalog, kept while its stamp holds: collection rows (id,
    options, live), which collections have unique indexes and which text indexes.

    Every write reads its collection's row; a transaction reads the stamp (schema.py, migration 2)
    under the store's lock with the log's end, and the rows cached at that stamp are still the
    table's. A transaction that changes the catalog stops using the cache until the next one
    (whether it commits or rolls back, the stamp has moved). Used under the store's write lock only.
    """

    def __init__(self) -> None:
        self.stamp: int | None = None
        self.rows: dict[str, tuple[int, str, bool]] = {}
        self.unique: dict[int, bool] = {}
        self.texts: dict[int, Any] | None = None

    def check(self, stamp: int) -> None:
        if stamp != self.stamp:
            self.invalidate()
            self.stamp = stamp

    def invalidate(self) -> None:
        self.rows.clear()
        self.unique.clear()
        self.texts = None
        self.stamp = None


@translate_all
class Writes(Rows):
    """Writes, inside a write transaction (its connection holds the store's write lock)."""

    depth: int                       # 0: the transaction is one write operation (backend.py Transaction)
    pipeline: Any                    # writes queued for the COMMIT, or None
    text_indexes: dict[int, Any] | None   # each collection's text index, once read in this transaction (fts.py)

    def collection(self, name: str) -> tuple[int, str, bool] | None:
        self.ready()                     # the cache holds while the stamp read at the start does
        cache = self.backend.catalog
        found = cache.rows.get(name)
        if found is None:
            found = super().collection(name)
            if found is not None and cache.stamp is not None:
                cache.rows[name] = found
        return found

    def _catalog_changed(self) -> None:
        self.backend.catalog.invalidate()

    def _may_refuse(self, entries: list[NewEntry]) -> bool:
        """Could a unique index refuse one of these entries (a record of a collection that has one)?"""
        self.ready()
        cache = self.backend.catalog
        for coll in {e.coll for e in entries if e.kind == "record" and e.coll is not None}:
            found = cache.unique.get(coll)
            if found is None:
                found = self.cur.execute("SELECT EXISTS(SELECT 1 FROM indexes WHERE coll=%s AND is_unique)",
                                         (coll,)).fetchone()[0]
                if cache.stamp is not None:
                    cache.unique[coll] = found
            if found:
                return True
        return False

    def _text_indexes(self) -> dict[int, Any]:
        """The text index of each collection that has one: kept with the catalog stamp across transactions,
        read again in one that changed the catalog or rolled a savepoint back (backend.py)."""
        if self.text_indexes is None:
            self.ready()
            cache = self.backend.catalog
            found = cache.texts if cache.stamp is not None else None
            if found is None:
                found = fts.declared(self.cur)
                if cache.stamp is not None:
                    cache.texts = found
            self.text_indexes = found
        return self.text_indexes

    def ensure_collection(self, name: str, created: int) -> int:
        self._catalog_changed()
        row = self.cur.execute("SELECT id, live FROM collections WHERE name=%s", (name,)).fetchone()
        if row is None:
            return int(self.cur.execute("INSERT INTO collections(name, created) VALUES(%s, %s) RETURNING id",
                                        (name, created)).fetchone()[0])
        if not row[1]:
            self.cur.execute("UPDATE collections SET live=true, created=%s WHERE id=%s", (created, row[0]))
        return int(row[0])

    def set_options(self, coll: int, options: str) -> None:
        self._catalog_changed()
        self.cur.execute("UPDATE collections SET options=%s WHERE id=%s", (options, coll))

    def append(self, entries: list[NewEntry], superseded: list[int], unique: bool = False) -> None:
        """Write change-log entries; the heads at ``superseded`` stop being heads first. Only
        kuradb/changelog.py calls this. A unique index refusing a row raises IndexConflict with
        nothing of this call left behind (and the transaction still usable)."""
        cur = self.cur
        conn = cur.connection
        texts = self._text_indexes()
        if self.depth == 0 and not unique and not self._may_refuse(entries):
            self._queue_append(entries, superseded, texts)
            return
        # What could follow a refused row in the pipeline is never prepared server-side: the server skips
        # it, yet psycopg would take it as prepared and name it in a later execute. So the trailing
        # statements run unprepared, a single insert is prepared before it can be refused (Parse comes
        # before Execute), and a batch (one statement over arrays) runs unprepared: its arrays vary.
        try:   # a savepoint always (a unique index may refuse the rows): in the pipeline, it costs no round trip
            with conn.pipeline():     # one round trip for all of it
                cur.execute("SAVEPOINT kura_append", prepare=False)
                if superseded:
                    cur.execute("UPDATE log SET head=NULL WHERE position = ANY(%s)", (superseded,))
                if len(entries) == 1:
                    cur.execute(_INSERT, entries[0].row(), prepare=True)
                else:
                    cur.execute(_INSERT_MANY, _columns(entries), prepare=False)
                if texts:
                    fts.index(cur, texts, entries)   # the tokens of the new live versions, in the savepoint
                cur.execute("RELEASE SAVEPOINT kura_append", prepare=False)
                # watchers in every process wake when this commits (backend.listen)
                cur.execute("SELECT pg_notify(%s, %s)", (self.backend.channel, str(entries[-1].position)),
                            prepare=False)
        except pg.UniqueViolation as e:
            cur.execute("ROLLBACK TO SAVEPOINT kura_append")
            raise IndexConflict(str(e.diag.constraint_name or e)) from e

    def _queue_append(self, entries: list[NewEntry], superseded: list[int], texts: dict[int, Any]) -> None:
        """The writes of a transaction that is one write operation (not nested) and cannot be refused (no
        unique index): queued in a pipeline that the COMMIT closes (backend.py), so that the writes and
        the commit are one round trip. A read after them waits for their results first, as in any
        pipeline. Nothing is prepared: a statement the server skipped after a failure would otherwise
        be taken by psycopg as prepared."""
        cur = self.cur
        if self.pipeline is None:
            pipeline = cur.connection.pipeline()
            pipeline.__enter__()
            self.pipeline = pipeline
        if superseded:
            cur.execute("UPDATE log SET head=NULL WHERE position = ANY(%s)", (superseded,), prepare=False)
        if len(entries) == 1:
            cur.execute(_INSERT, entries[0].row(), prepare=False)
        else:
            cur.execute(_INSERT_MANY, _columns(entries), prepare=False)
        if texts:
            fts.index(cur, texts, entries)
        cur.execute("SELECT pg_notify(%s, %s)", (self.backend.channel, str(entries[-1].position)), prepare=False)

    def erase(self, coll: int, id: str, by: int, *, below: int | None = None, scrub: bool = False,
              unhead: bool = False) -> list[int]:
        extra = ", author=NULL, type=NULL, checksum=NULL" if scrub else ""
        only = "" if below is None else f" AND version < {int(below)}"
        kept = "" if scrub else " AND erased=0"
        positions = [p for (p,) in self.cur.execute(
            f"{_CHAIN} UPDATE log SET body=NULL, erased={int(by)}{extra}"
            f" WHERE position IN (SELECT p FROM chain){only}{kept} RETURNING position", (coll, id, 0)).fetchall()]
        if unhead:
            self.unhead(coll, id)
        if positions:
            self.cur.execute("DELETE FROM blob_refs WHERE position = ANY(%s)", (positions,))
        return positions

    def drop_collection(self, coll: int, by: int) -> None:
        self._catalog_changed()
        positions = [p for (p,) in self.cur.execute(
            "WITH RECURSIVE chain(p) AS (SELECT position FROM log WHERE coll=%s AND head IN (1, 2)"
            " UNION ALL SELECT log.prev FROM log JOIN chain ON log.position = chain.p WHERE log.prev IS NOT NULL)"
            " UPDATE log SET body=NULL, erased=%s, head=NULL WHERE position IN (SELECT p FROM chain)"
            " RETURNING position", (coll, by)).fetchall()]
        self.cur.execute("DELETE FROM blob_refs WHERE position = ANY(%s)", (positions,))
        self.cur.execute("UPDATE collections SET live=false, options='{}' WHERE id=%s", (coll,))

    def unhead(self, coll: int, id: str) -> None:
        self.cur.execute("UPDATE log SET head=NULL WHERE coll=%s AND id=%s AND head IN (1, 2)", (coll, id))

    def apply_erasure(self, position: int, erased: int, author: str | None, type: str | None,
                      checksum: bytes | None) -> None:
        self.cur.execute("UPDATE log SET body=NULL, erased=%s, author=%s, type=%s, checksum=%s WHERE position=%s",
                         (erased, author, type, checksum, position))
        self.cur.execute("DELETE FROM blob_refs WHERE position=%s", (position,))

    def current_among(self, positions: list[int]) -> int | None:
        row = self.cur.execute("SELECT position FROM log WHERE head IS NOT NULL AND position = ANY(%s) LIMIT 1",
                               (positions,)).fetchone()
        return None if row is None else int(row[0])

    def add_kept_blob_refs(self, refs: list[tuple[str, int]]) -> None:
        self.cur.executemany("INSERT INTO blob_refs(hash, position) SELECT %s, position FROM log"
                             " WHERE position = %s AND erased = 0 ON CONFLICT DO NOTHING", refs)

    def delete_blob(self, hash: str) -> None:
        self.cur.execute("DELETE FROM blobs WHERE hash=%s", (hash,))

    def add_blob_refs(self, refs: list[tuple[str, int]]) -> None:
        self.cur.executemany("INSERT INTO blob_refs(hash, position) VALUES(%s, %s) ON CONFLICT DO NOTHING", refs)

    def put_blob(self, hash: str, size: int, content_type: str | None, created: int, data: bytes | None) -> None:
        self.cur.execute("INSERT INTO blobs(hash, size, content_type, created, data) VALUES(%s,%s,%s,%s,%s)",
                         (hash, size, content_type, created, data))

    def delete_unreferenced_blobs(self, before: int) -> list[tuple[str, bool]]:
        return [(h, False) for (h,) in self.cur.execute(
            "DELETE FROM blobs WHERE created < %s AND NOT EXISTS"
            " (SELECT 1 FROM blob_refs r WHERE r.hash = blobs.hash) RETURNING hash", (before,))]

    def set_meta(self, key: str, value: str) -> None:
        self.cur.execute("INSERT INTO meta(key, value) VALUES(%s, %s)"
                         " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def add_index(self, coll: int, name: str, kind: str, fields: str, unique: bool, options: str,
                  created: int) -> None:
        self._catalog_changed()
        self.cur.execute("INSERT INTO indexes(coll, name, kind, fields, is_unique, options, created)"
                         " VALUES(%s, %s, %s, %s, %s, %s, %s)", (coll, name, kind, fields, unique, options, created))

    def remove_index(self, coll: int, name: str) -> tuple[Any, ...] | None:
        self._catalog_changed()
        return self.cur.execute("DELETE FROM indexes WHERE coll=%s AND name=%s"
                                " RETURNING name, kind, fields, is_unique::int", (coll, name)).fetchone()

    def note_array_paths(self, coll: int, paths: list[str]) -> None:
        self.cur.executemany("INSERT INTO array_paths(coll, path) VALUES(%s, %s) ON CONFLICT DO NOTHING",
                             [(coll, p) for p in paths])
