"""Collection: versioned JSON records of one name, each write one transaction with its log entry."""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import apsw
import orjson

from . import errors
from .encoding import checksum, encode_content, make_rev, merge_patch
from .ids import check_id, new_id
from .matching import compile_equality
from .records import Record
from .schemas import Validator
from .sqlite import Transaction, all_rows, scalar, translate

if TYPE_CHECKING:
    from .store import Store

_MISSING: Any = object()

_COLS = "version, rev, type, created, modified, author, deleted, checksum, json(body)"
_GET = f"SELECT {_COLS} FROM docs WHERE collection=? AND id=?"
_LOG_COLS = "version, rev, type, created, at, author, op='delete', checksum, json(body)"
# The versions of one record, newest first, walking the prev chain from docs.position
# down to version ? (exclusive).
_CHAIN = ("WITH RECURSIVE chain(p) AS (SELECT position FROM docs WHERE collection=? AND id=?"
          " UNION ALL SELECT log.prev FROM log JOIN chain ON log.position = chain.p"
          " WHERE log.prev IS NOT NULL AND log.version > ?)")
_GET_VERSION = (f"{_CHAIN} SELECT {_LOG_COLS} FROM log JOIN chain ON log.position = chain.p"
                " WHERE version=? AND erased=0")
_HISTORY = (f"{_CHAIN} SELECT {_LOG_COLS} FROM log JOIN chain ON log.position = chain.p"
            " WHERE erased=0 AND version > ? ORDER BY version")
_CURRENT = "SELECT version, rev, created, deleted, position FROM docs WHERE collection=? AND id=?"
_GET_WITH_POSITION = f"SELECT {_COLS}, position FROM docs WHERE collection=? AND id=?"
_LOG_INSERT = ("INSERT INTO log(kind, collection, id, version, rev, op, at, author, type, created,"
               " checksum, prev, body) VALUES('record', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, jsonb(?))")
_LOG_INSERT_AT = ("INSERT INTO log(position, kind, collection, id, version, rev, op, at, author, type,"
                  " created, checksum, prev, body) VALUES(?, 'record', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, jsonb(?))")
_CURRENT_MANY = ("SELECT id, version, rev, created, deleted, position FROM docs WHERE collection=?"
                 " AND id IN (SELECT value FROM json_each(?))")
_DOC_UPSERT = (
    "INSERT INTO docs(collection, id, version, rev, type, created, modified, author, deleted,"
    " position, checksum, body) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, jsonb(?))"
    " ON CONFLICT(collection, id) DO UPDATE SET version=excluded.version, rev=excluded.rev,"
    " type=excluded.type, created=excluded.created, modified=excluded.modified,"
    " author=excluded.author, deleted=excluded.deleted, position=excluded.position,"
    " checksum=excluded.checksum, body=excluded.body")


def now_us() -> int:
    return time.time_ns() // 1000


def _next_version(current: Any, data: bytes | None, now: int) -> tuple[int, str | None, str, int, str | None]:
    """Version, checksum, rev, created time and text of the version that follows ``current``.

    ``current`` is the docs row (version, rev, created, deleted, position) or None;
    ``data`` the canonical content, or None for a deletion.
    """
    version = current[0] + 1 if current else 1
    ck = None if data is None else checksum(data)
    rev = make_rev(version, current[1] if current else None, ck)
    created = current[2] if current is not None and not current[3] else now
    return version, ck, rev, created, None if data is None else data.decode()


class Collection:
    """A named set of records. Get one with ``store.collection(name)`` or ``store[name]``."""

    def __init__(self, store: Store, name: str, *, validator: Validator | None,
                 keep_history: int | None, schema: Any = None) -> None:
        self._store = store
        self._backend = store._backend
        self.name = name
        self.schema = schema
        self.keep_history = keep_history
        self._validate = validator

    def __repr__(self) -> str:
        return f"<Collection {self.name!r}>"

    # -- reads -----------------------------------------------------------------------

    def _record(self, id: str, row: tuple[Any, ...]) -> Record:
        version, rev, type_, created, modified, author, deleted, ck, text = row
        if text is not None and checksum(text.encode()) != ck:
            raise self._corrupted(id, version)
        return Record(self.name, id, type_, version, rev, ck, author, bool(deleted), text,
                      created, modified)

    def _corrupted(self, id: str, version: int) -> errors.CorruptedData:
        return errors.CorruptedData(f"{self.name}/{id} version {version}: content does not match its checksum",
                                    hint="run verify and restore from a backup")

    def _fetch(self, sql: str, args: tuple[Any, ...]) -> Any:
        try:
            return self._backend.reader().execute(sql, args).fetchone()
        except apsw.Error as e:
            raise translate(e, f"{self.name}/{args[1]}") from e

    def get(self, id: str, default: Any = _MISSING, *, version: int | None = None) -> Record:
        """The current record (or ``version=N``); NotFound, or ``default`` when given.

        The content is checked against its checksum (CorruptedData on mismatch).
        This is the hot path, so the common case is written out inline.
        """
        name = self.name
        try:
            if version is None:
                row = self._backend.reader().execute(_GET, (name, id)).fetchone()
            else:
                row = self._backend.reader().execute(_GET_VERSION, (name, id, version - 1, version)).fetchone()
                if row is not None and self._hidden_by_keep_history(id, version):
                    row = None
        except apsw.Error as e:
            raise translate(e, f"{name}/{id}") from e
        if row is not None and not row[6]:
            text = row[8]
            if checksum(text.encode()) != row[7]:
                raise self._corrupted(id, row[0])
            return Record(name, id, row[2], row[0], row[1], row[7], row[5], False, text, row[3], row[4])
        if default is not _MISSING:
            return default
        if row is not None:
            raise errors.NotFound(f"{name}/{id} was deleted at version {row[0]}")
        check_id(id)
        what = f"{name}/{id}" + ("" if version is None else f" version {version}")
        raise errors.NotFound(f"{what} does not exist")

    def get_many(self, ids: Iterable[str]) -> list[Record | None]:
        """Records for ``ids`` in order, None where missing; read in one snapshot."""
        ids = list(ids)
        out: list[Record | None] = []
        conn = self._backend.reader()
        own = not self._backend.in_transaction()
        # one read transaction: a consistent snapshot, and one lock for all the keys
        try:
            if own:
                conn.execute("BEGIN")
            try:
                for id in ids:
                    row = conn.execute(_GET, (self.name, id)).fetchone()
                    out.append(None if row is None or row[6] else self._record(id, row))
            finally:
                if own:
                    conn.execute("COMMIT")
        except apsw.Error as e:
            raise translate(e, self.name) from e
        return out

    def history(self, id: str) -> list[Record]:
        """Every kept version of ``id``, oldest first, deletions included."""
        try:
            conn = self._backend.reader()
            floor = 0
            if self.keep_history is not None:
                head = conn.execute(_CURRENT, (self.name, id)).fetchone()
                floor = head[0] - self.keep_history if head else 0
            rows = conn.execute(_HISTORY, (self.name, id, floor, floor)).fetchall()
        except apsw.Error as e:
            raise translate(e, f"{self.name}/{id}") from e
        if not rows:
            check_id(id)
            raise errors.NotFound(f"{self.name}/{id} has no history")
        return [self._record(id, row) for row in rows]

    def _hidden_by_keep_history(self, id: str, version: int) -> bool:
        """Versions beyond keep_history are erased in steps; until then reads hide them."""
        if self.keep_history is None:
            return False
        head = self._fetch(_CURRENT, (self.name, id))
        return head is not None and version <= head[0] - self.keep_history

    def __len__(self) -> int:
        return int(scalar(self._backend.reader(), "SELECT count(*) FROM docs WHERE collection=? AND deleted=0",
                          (self.name,)))

    def __contains__(self, id: object) -> bool:
        if not isinstance(id, str):
            return False
        row = self._fetch("SELECT deleted FROM docs WHERE collection=? AND id=?", (self.name, id))
        return row is not None and not row[0]

    def __iter__(self) -> Iterator[str]:
        """Live record ids in id order, read in pages so a long iteration holds no lock."""
        last = ""
        while True:
            rows = all_rows(
                self._backend.reader(),
                "SELECT id FROM docs WHERE collection=? AND id>? AND deleted=0 ORDER BY id LIMIT 1000",
                (self.name, last))
            for (id,) in rows:
                yield id
            if len(rows) < 1000:
                return
            last = rows[-1][0]

    def find(self, filter: dict[str, Any] | None = None, *, limit: int | None = None) -> list[Record]:
        """Records whose fields equal the given values (dotted paths; on arrays, membership).

        The full query language (operators, sort, indexes) arrives with the query engine.
        """
        where, args = compile_equality(filter or {})
        sql = f"SELECT id, {_COLS} FROM docs WHERE collection=? AND deleted=0{where} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        try:
            rows = all_rows(self._backend.reader(), sql, (self.name, *args))
        except apsw.Error as e:
            raise translate(e, self.name) from e
        return [self._record(row[0], row[1:]) for row in rows]

    def scan(self, filter: dict[str, Any] | None = None, *, batch_size: int = 1000) -> Iterator[Record]:
        """Stream live records in id order from one point-in-time snapshot, ``batch_size`` at a time.

        Memory stays constant; writers are not blocked while it runs.
        """
        where, args = compile_equality(filter or {})
        sql = (f"SELECT id, {_COLS} FROM docs WHERE collection=? AND deleted=0 AND id > ?{where}"
               f" ORDER BY id LIMIT {int(batch_size)}")
        last = ""
        with self._backend.snapshot() as cur:
            while True:
                try:
                    rows = all_rows(cur, sql, (self.name, last, *args))
                except apsw.Error as e:
                    raise translate(e, self.name) from e
                for row in rows:
                    yield self._record(row[0], row[1:])
                if len(rows) < batch_size:
                    return
                last = rows[-1][0]

    # -- writes ----------------------------------------------------------------------

    def _prepare(self, content: Any) -> tuple[bytes, list[str]]:
        data, blobs = encode_content(content, max_bytes=self._store.max_document_size)
        if self._validate is not None:
            self._validate(content)
        return data, blobs

    def put(self, content: dict[str, Any], *, id: str | None = None, type: str | None = None,
            author: str | None = None, if_version: int | None = None) -> Record:
        """Create or replace a record; ``if_version=N`` writes only if the current version is N."""
        id = new_id() if id is None else check_id(id)
        data, blobs = self._prepare(content)
        with self._backend.write() as tx:
            return self._write(tx, id, data, blobs, type=type, author=author,
                               if_version=if_version, op="put")

    def insert(self, content: dict[str, Any], *, id: str | None = None, type: str | None = None,
               author: str | None = None) -> Record:
        """Create a record; AlreadyExists if ``id`` is live."""
        id = new_id() if id is None else check_id(id)
        data, blobs = self._prepare(content)
        with self._backend.write() as tx:
            return self._write(tx, id, data, blobs, type=type, author=author, op="insert",
                               must_not_exist=True)

    def update(self, id: str, patch: dict[str, Any], *, if_version: int | None = None,
               author: str | None = None) -> Record:
        """Apply a JSON merge patch (RFC 7386) to the current content, as a new version."""
        check_id(id)
        if not isinstance(patch, dict):
            raise errors.ValidationError(
                f"a merge patch must be a dict, not {type(patch).__name__}", path="patch")
        with self._backend.write() as tx:
            current, head = self._current(tx, id, if_version)
            content = merge_patch(current.content, patch)
            data, blobs = self._prepare(content)
            return self._write(tx, id, data, blobs, type=current.type, author=author, op="update", head=head)

    def delete(self, id: str, *, if_version: int | None = None, author: str | None = None) -> Record:
        """Write a tombstone version; NotFound if ``id`` is not live."""
        check_id(id)
        with self._backend.write() as tx:
            current, head = self._current(tx, id, if_version)
            return self._write(tx, id, None, [], type=current.type, author=author, op="delete", head=head)

    def revert(self, id: str, version: int, *, author: str | None = None) -> Record:
        """Write a new version whose content is that of ``version``."""
        check_id(id)
        with self._backend.write() as tx:
            old = self.get(id, version=version)
            data, blobs = self._prepare(old.content)
            return self._write(tx, id, data, blobs, type=old.type, author=author, op="revert")

    def purge(self, id: str) -> None:
        """Erase every version of ``id`` and its content (right to erasure); NotFound if unknown.

        The change log keeps that positions were used (so it has no gaps) but
        no content, author or type of the purged versions.
        """
        check_id(id)
        with self._backend.write() as tx:
            conn = tx.cur
            row = conn.execute(_CURRENT, (self.name, id)).fetchone()
            if row is None:
                raise errors.NotFound(f"{self.name}/{id} does not exist")
            self._erase(conn, (self.name, id, 0), scrub=True)
            conn.execute("DELETE FROM docs WHERE collection=? AND id=?", (self.name, id))
            self._store._append_log(tx, "record", self.name, id, None, None, "purge", None)

    def put_many(self, items: Iterable[Any], *, type: str | None = None,
                 author: str | None = None) -> list[Record]:
        """Write many records in one transaction; items are content dicts or (id, content) pairs.

        Every item is validated before anything is written: one bad item writes none.
        """
        prepared = []
        for i, item in enumerate(items):
            if isinstance(item, tuple) and len(item) == 2:
                id, content = check_id(item[0], where=f"items[{i}] id"), item[1]
            else:
                id, content = new_id(), item
            try:
                prepared.append((id, *self._prepare(content)))
            except errors.ValidationError as e:
                raise errors.ValidationError(f"items[{i}]: {e.message}", path=e.path, hint=e.hint) from e
        with self._backend.transaction() as tx:  # a savepoint when nested: all or nothing
            return self._write_many(tx, prepared, type=type, author=author)

    # -- the write path --------------------------------------------------------------

    def _current(self, tx: Transaction, id: str, if_version: int | None) -> tuple[Record, tuple[Any, ...]]:
        """The live record and its docs head (version, rev, created, deleted, position), read once."""
        row = tx.cur.execute(_GET_WITH_POSITION, (self.name, id)).fetchone()
        if if_version is not None and if_version != (row[0] if row else 0):
            raise self._conflict(id, if_version, row and row[:9])
        if row is None or row[6]:
            raise errors.NotFound(f"{self.name}/{id} does not exist" if row is None
                                  else f"{self.name}/{id} was deleted at version {row[0]}")
        return self._record(id, row[:9]), (row[0], row[1], row[3], row[6], row[9])

    def _conflict(self, id: str, expected: int, row: Any) -> errors.ConflictError:
        current = None if row is None else self._record(id, row)
        found = "does not exist" if row is None else f"is at version {row[0]}"
        return errors.ConflictError(
            f"{self.name}/{id} {found}, expected version {expected}", current=current,
            hint="read the record again and retry with its version")

    def _write(self, tx: Transaction, id: str, data: bytes | None, blobs: list[str], *,
               type: str | None, author: str | None, op: str, if_version: int | None = None,
               must_not_exist: bool = False, head: Any = _MISSING) -> Record:
        """Write the next version of ``id``. ``head`` is the docs head when the caller
        already read it under this transaction's lock (update, delete)."""
        conn = tx.cur
        store = self._store
        name = self.name
        try:
            row = conn.execute(_CURRENT, (name, id)).fetchone() if head is _MISSING else head
            if if_version is not None and if_version != (row[0] if row else 0):
                raise self._conflict(id, if_version, conn.execute(_GET, (name, id)).fetchone())
            if must_not_exist and row is not None and not row[3]:
                raise errors.AlreadyExists(f"{name}/{id} already exists at version {row[0]}",
                                           hint="use put() to replace it or update() to patch it")
            if blobs:
                store.blobs._check_refs(conn, blobs, f"{name}/{id}")
            if name not in store._ensured and name not in tx.ensured:
                store._ensure_collection(tx, name)
            now = now_us()
            version, ck, rev, created, text = _next_version(row, data, now)
            author = author or store.author
            deleted = data is None
            conn.execute(_LOG_INSERT, (name, id, version, rev, op, now, author, type, created, ck,
                                       row[4] if row else None, text))
            position = tx.conn.last_insert_rowid()
            conn.execute(_DOC_UPSERT, (name, id, version, rev, type, created, now, author, deleted,
                                       position, ck, text))
            if blobs:
                conn.executemany("INSERT OR IGNORE INTO blob_refs(hash, position) VALUES(?, ?)",
                                 [(h, position) for h in set(blobs)])
            keep = self.keep_history
            if keep is not None and version > keep and (version - keep) % max(1, keep // 4) == 0:
                # Erase in steps of keep/4 versions so a write walks the chain rarely;
                # reads already hide the versions past the limit.
                self._erase(conn, (name, id, 0), below=version - keep + 1)
        except apsw.Error as e:
            raise translate(e, f"{name}/{id}") from e
        tx.wrote = True
        return Record(name, id, type, version, rev, ck, author, deleted, data, created, now)

    def _write_many(self, tx: Transaction, prepared: list[tuple[str, bytes, list[str]]], *,
                    type: str | None, author: str | None) -> list[Record]:
        """The batch form of ``_write``: one lookup of the current versions, then ``executemany``.

        Positions are assigned explicitly from the log's maximum, which is safe
        because this transaction holds the write lock.
        """
        cur, store, name = tx.cur, self._store, self.name
        current: dict[str, Any] = {}
        unique = list(dict.fromkeys(id for id, _, _ in prepared))
        try:
            for i in range(0, len(unique), 500):
                chunk = orjson.dumps(unique[i:i + 500]).decode()
                for row in all_rows(cur, _CURRENT_MANY, (name, chunk)):
                    current[row[0]] = row[1:]
            all_blobs = [h for _, _, blobs in prepared for h in blobs]
            if all_blobs:
                store.blobs._check_refs(cur, all_blobs, name)
            if name not in store._ensured and name not in tx.ensured:
                store._ensure_collection(tx, name)
            position: int = scalar(cur, "SELECT coalesce(max(position), 0) FROM log")
            now = now_us()
            author = author or store.author
            log_rows: list[tuple[Any, ...]] = []
            doc_rows: dict[str, tuple[Any, ...]] = {}
            refs: list[tuple[str, int]] = []
            records: list[Record] = []
            first_version: dict[str, int] = {}
            for id, data, blobs in prepared:
                position += 1
                row = current.get(id)
                version, ck, rev, created, text = _next_version(row, data, now)
                first_version.setdefault(id, version)
                log_rows.append((position, name, id, version, rev, "put", now, author, type, created, ck,
                                 row[4] if row else None, text))
                doc_rows[id] = (name, id, version, rev, type, created, now, author, False, position, ck, text)
                current[id] = (version, rev, created, 0, position)
                refs += [(h, position) for h in set(blobs)]
                records.append(Record(name, id, type, version, rev, ck, author, False, data, created, now))
            cur.executemany(_LOG_INSERT_AT, log_rows)
            cur.executemany(_DOC_UPSERT, list(doc_rows.values()))
            if refs:
                cur.executemany("INSERT OR IGNORE INTO blob_refs(hash, position) VALUES(?, ?)", refs)
            keep = self.keep_history
            if keep is not None:
                step = max(1, keep // 4)
                for id, first in first_version.items():
                    last = current[id][0]
                    if last > keep and any((v - keep) % step == 0 for v in range(max(first, keep + 1), last + 1)):
                        self._erase(cur, (name, id, 0), below=last - keep + 1)
        except apsw.Error as e:
            raise translate(e, name) from e
        tx.wrote = True
        return records

    def _erase(self, conn: apsw.Cursor, chain_args: tuple[str, str, int], *,
               below: int | None = None, scrub: bool = False) -> None:
        """Remove the content of a record's versions (those under ``below``, else all)
        and release their blob references. ``scrub`` also removes author and type."""
        extra = ", author=NULL, type=NULL, checksum=NULL" if scrub else ""
        only = "" if below is None else f" AND version < {int(below)}"
        kept = "" if scrub else " AND erased=0"
        positions = conn.execute(
            f"{_CHAIN} UPDATE log SET body=NULL, erased=1{extra}"
            f" WHERE position IN (SELECT p FROM chain){only}{kept} RETURNING position",
            chain_args).fetchall()
        if positions:
            conn.executemany("DELETE FROM blob_refs WHERE position=?", positions)
