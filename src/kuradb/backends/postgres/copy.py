"""Backups and copies of a PostgreSQL store: a neutral source over one snapshot, and the changes file.

kuradb's backup format is SQLite files (kuradb/backups/__init__.py), whatever
the store's engine, so that any backup restores anywhere:

- ``Source``: the store's change log (content as JSON text), erasures, blobs,
  blob references and index definitions in one ``REPEATABLE READ`` snapshot,
  read as backend-neutral entries (the shape of kuradb/backends/sqlite/copy.py's
  ``Source``). ``kuradb.copy`` and restores replay it into another store.
- ``changes``: an incremental/differential backup's changes file, read from one
  snapshot and written through the SQLite backend's public writer of that
  format (``sqlite.copy.ChangesFile``): the file is an SQLite database.
- ``full``: a full backup's database is a SQLite store's ``kura.db`` made by
  replaying one snapshot into a fresh SQLite store (kuradb/backups/transfer.py),
  so a full backup of a PostgreSQL store restores into a directory as one of a
  SQLite store does.

Blobs are all kept in the database here; in a copy a blob larger than what a
SQLite store keeps inline becomes a file of the backup (its row's data NULL,
the file written by kuradb/backups/take.py from the database), except in the
copy of a store opened with ``encryption_key``, whose copy is encrypted as a
whole and keeps every blob inside it.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from ... import errors
from ...backend import NewEntry
from ..sqlite import copy as sqlite_copy
from ..sqlite.backend import SQLiteBackend
from .errors import DRIVER_ERRORS

_ENTRY = ("SELECT l.position, l.kind, l.op, c.name, l.id, l.version, l.rev, l.at, l.author, l.type, l.created,"
          " l.checksum, l.prev, l.erased, l.body, l.actor_hash, l.hash, l.txn FROM log AS l"
          " LEFT JOIN collections AS c ON c.id = l.coll")
_END = "SELECT position, hash, at FROM log ORDER BY position DESC LIMIT 1"


def file_blob_limit(backend: Any) -> int | None:
    """The size above which a blob of a copy is a file of the backup, as a SQLite store keeps it (None: none
    is, the copy is encrypted as a whole)."""
    return None if backend.key is not None else SQLiteBackend.blob_inline_max


class Source:
    """One snapshot of a PostgreSQL store read as neutral entries (a private connection, ``REPEATABLE READ``)."""

    def __init__(self, backend: Any, bid: str) -> None:
        self.backend, self.bid = backend, bid
        self._snapshot = backend.snapshot()
        self.rows = self._snapshot.__enter__()
        self.cur = self.rows.cur

    def close(self) -> None:
        self._snapshot.__exit__(None, None, None)

    def _run(self, statement: str, params: Any = None) -> Any:
        try:
            return self.cur.execute(statement, params)
        except DRIVER_ERRORS as e:
            raise self.backend.failed(e, "reading the store for a copy") from e

    def end(self) -> tuple[int, bytes, int | None]:
        row = self._run(_END).fetchone()
        return (0, bytes(16), None) if row is None else (int(row[0]), bytes(row[1]), int(row[2]))

    @staticmethod
    def _entry(row: Any) -> NewEntry:
        (position, kind, op, collection, id, version, rev, at, author, type_, created, checksum, prev, erased, body,
         actor_hash, hash, txn) = row
        e = NewEntry(kind, op, None, collection, id, version=version, rev=rev, author=author, type=type_,
                     created=created, checksum=checksum, prev=prev, body=None if body is None else body.encode())
        e.position, e.at, e.txn, e.actor_hash, e.hash, e.erased = position, at, position - (txn or 0), actor_hash, \
            hash, erased
        return e

    def entries(self, lo: int, hi: int) -> Iterator[NewEntry]:
        """The entries in ``(lo, hi]`` in order, streamed (a server-side cursor in the snapshot)."""
        try:
            with self.cur.connection.cursor(name="kura_copy") as scan:
                scan.itersize = 2000
                scan.execute(f"{_ENTRY} WHERE l.position > %s AND l.position <= %s ORDER BY l.position", (lo, hi))
                for row in scan:
                    yield self._entry(row)
        except DRIVER_ERRORS as e:
            raise self.backend.failed(e, "reading the change log for a copy") from e

    def entry(self, position: int) -> NewEntry | None:
        row = self._run(f"{_ENTRY} WHERE l.position = %s", (position,)).fetchone()
        return None if row is None else self._entry(row)

    def position_at(self, lo: int, hi: int, at_us: int) -> int:
        row = self._run("SELECT max(position) FROM log WHERE position > %s AND position <= %s AND at <= %s",
                        (lo, hi, at_us)).fetchone()
        return lo if row is None or row[0] is None else int(row[0])

    def erasures(self, lo: int, hi: int) -> list[tuple[Any, ...]]:
        return list(self._run("SELECT position, erased, author, type, checksum FROM log WHERE position <= %s"
                              " AND erased > %s AND erased <= %s", (lo, lo, hi)).fetchall())

    def blob(self, h: str) -> tuple[Any, ...] | None:
        row = self._run("SELECT hash, size, content_type, created, data FROM blobs WHERE hash=%s", (h,)).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], None if row[4] is None else bytes(row[4]))

    def blob_refs(self, lo: int, hi: int) -> list[tuple[Any, ...]]:
        return list(self._run("SELECT hash, position FROM blob_refs WHERE position > %s AND position <= %s",
                              (lo, hi)).fetchall())

    def index(self, collection: str, name: str) -> tuple[str, list[str], bool, dict[str, Any]] | None:
        row = self._run("SELECT i.kind, i.fields, i.is_unique, i.options FROM indexes AS i JOIN collections AS c"
                        " ON c.id = i.coll WHERE c.name=%s AND i.name=%s", (collection, name)).fetchone()
        if row is None:
            return None
        return row[0], orjson.loads(row[1]), bool(row[2]), orjson.loads(row[3])


def changes(backend: Any, raw: str, since: int, parent_head: str | None) -> Any:
    """Write the changes after ``since`` into the new changes file ``raw`` from one snapshot (the format of
    sqlite/copy.py); BackupError if the log no longer goes through the parent's last entry."""
    source = Source(backend, "changes")
    try:
        position, head, at = source.end()
        row = source._run("SELECT hash FROM log WHERE position=%s", (since,)).fetchone()
        if row is None or row[0] is None or bytes(row[0]).hex() != parent_head:
            raise errors.BackupError(f"the store's change log no longer matches the parent backup at position"
                                     f" {since}", hint="take a full backup")
        limit = file_blob_limit(backend)
        data = "data" if limit is None else f"CASE WHEN size > {int(limit)} THEN NULL ELSE data END"
        out = sqlite_copy.ChangesFile(raw, backend.key)
        try:
            tables = {
                "log": ("SELECT position, kind, op, coll, id, version, rev, at, author, type, created, checksum,"
                        " prev, erased, head, body, actor_hash, hash, txn FROM log WHERE position > %(p)s"
                        " ORDER BY position"),
                "erasures": ("SELECT position, erased, author, type, checksum FROM log"
                             " WHERE erased > %(p)s AND position <= %(p)s"),
                "blobs": (f"SELECT hash, size, content_type, created, {data} FROM blobs WHERE hash IN"
                          " (SELECT id FROM log WHERE position > %(p)s AND kind = 'blob' AND op = 'put')"),
                "blob_refs": "SELECT hash, position FROM blob_refs WHERE position > %(p)s",
                "collections": "SELECT id, name, options, created, live::int FROM collections",
                "indexes": "SELECT coll, name, kind, fields, is_unique::int, options, created FROM indexes",
            }
            for table, select in tables.items():
                out.add(table, _stream(source, select, {"p": since}))
            out.add("range", [(since, position)])
        except BaseException:
            out.abort()
            raise
        problems = out.finish()
    finally:
        source.close()
    return sqlite_copy.Copied(position, head, at, problems)


def _stream(source: Source, select: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    try:
        with source.cur.connection.cursor(name="kura_changes") as scan:
            scan.itersize = 2000
            scan.execute(select, params)
            yield from scan
    except DRIVER_ERRORS as e:
        raise source.backend.failed(e, "reading the changes for a backup") from e


def full(backend: Any, raw: str) -> Any:
    """A full backup's database: a SQLite store's ``kura.db`` holding one snapshot (kuradb/backups/transfer.py
    replays it; imported here, when needed, since backups sit above the backends)."""
    from ...backups import transfer

    return transfer.database_file(backend, raw, file_blob_limit(backend))


def open_copy(backend: Any, raw: str) -> Any:
    """A copy written by ``changes`` or ``full`` is an SQLite file: opened as the SQLite backend opens its own."""
    return sqlite_copy.Opened(raw, backend.key)
