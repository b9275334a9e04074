"""Backup copies of a SQLite store, the changes-file format every backend writes, and reading them back.

A full copy is SQLite's online backup of one read snapshot; a changes file is a
small SQLite database of the change log's entries after a position (with their
content), the erasures made since, the new blobs and their references, and the
catalog tables, read from one snapshot. The changes file's tables are defined
once here (``CHANGES_TABLES``): this backend fills them with ``INSERT ... SELECT``
from its own database, and a backend of another engine (PostgreSQL) writes the
same file from its rows through ``ChangesFile``, this module's public writer.
``Source`` reads a copy, a changes file or (``snapshot=True``) a live store's
database back as backend-neutral entries for kuradb/backups/replay.py, from
files of this layout (schema 5) or of the one before it (schema 4), so backups
taken before a store was migrated still restore. Copies keep the store's
encryption.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import apsw
import orjson

from ... import errors
from ...backend import NewEntry
from . import atrest, damage
from .errors import READ_ERRORS, translate

LOG_COLUMNS = ("position", "kind", "op", "coll", "id", "version", "rev", "at", "author", "type", "created",
               "checksum", "prev", "erased", "head", "body", "actor_hash", "hash", "txn")
# The tables of a changes file and their columns (layout v2's), whichever backend writes it. ``log.body``
# holds SQLite JSONB, as in a store's database, so that ``Source`` reads a changes file and a full copy alike.
CHANGES_TABLES = (
    ("log", LOG_COLUMNS),
    ("erasures", ("position", "erased", "author", "type", "checksum")),
    ("blobs", ("hash", "size", "content_type", "created", "data")),
    ("blob_refs", ("hash", "position")),
    ("collections", ("id", "name", "options", "created", "live")),
    ("indexes", ("coll", "name", "kind", "fields", "is_unique", "options", "created")),
    ("range", ("since", "position")),
)
# What this backend puts in them, read from the store's snapshot (":p" is the parent's position).
CHANGES = {
    "log": "SELECT {cols} FROM main.log WHERE position > :p",
    "erasures": "SELECT {cols} FROM main.log WHERE erased > :p AND position <= :p",
    "blobs": "SELECT {cols} FROM main.blobs WHERE hash IN"
             " (SELECT id FROM main.log WHERE position > :p AND kind = 'blob' AND op = 'put')",
    "blob_refs": "SELECT {cols} FROM main.blob_refs WHERE position > :p",
    "collections": "SELECT {cols} FROM main.collections",
    "indexes": "SELECT {cols} FROM main.indexes",
}


def _create_changes_tables(conn: apsw.Connection, schema: str) -> None:
    for table, cols in CHANGES_TABLES:
        conn.execute(f"CREATE TABLE {schema}.{table}({', '.join(cols)})")


@dataclass
class Copied:
    """A copy just made: where its change log ends (position, hash, time) and the damage its check found."""

    position: int
    head: bytes
    at: int | None
    problems: list[str] = field(default_factory=list)


def full(backend: Any, raw: str) -> Copied:
    """Copy the whole database into ``raw`` (one read snapshot) and check the copy."""
    source = backend.private_reader()
    try:
        dest = atrest.connect(raw, backend.key)   # an encrypted store's copy stays encrypted
        try:
            with dest.backup("main", source.cur.connection, "main") as b:
                while not b.done:
                    b.step(-1)      # one step: one read snapshot for the whole copy
        finally:
            dest.close()
    except apsw.Error as e:
        raise backend.failed(e, "copying the database") from e
    finally:
        source.cur.connection.close()
    conn = atrest.connect(raw, backend.key)
    try:
        # SQLite's backup copies pages without reading them: damage is copied as it is, so check the copy.
        problems = damage.copy_problems(conn)
        try:
            position, head, at = _end(conn)
        except READ_ERRORS as e:
            raise backend.failed(e, "reading the change log's last entry") from e
        conn.execute("PRAGMA journal_mode=DELETE").fetchall()
    finally:
        conn.close()
    return Copied(position, head, at, problems)


def changes(backend: Any, raw: str, since: int, parent_head: str | None) -> Copied:
    """Write the changes after ``since`` into the new file ``raw``; BackupError if the store's log no
    longer goes through the parent's last entry (another store, or a history it no longer has)."""
    conn = backend.private_reader(read_only=False).cur.connection
    try:
        if backend.key is None:
            conn.execute("ATTACH ? AS out", (raw,))
        else:
            conn.execute("ATTACH ? AS out KEY ?", (raw, atrest.key_value(backend.key)))
        conn.execute("BEGIN")
        try:
            position, head, at = _end(conn)      # the snapshot starts here
            row = conn.execute("SELECT hash FROM main.log WHERE position=?", (since,)).fetchone()
            if row is None or row[0] is None or row[0].hex() != parent_head:
                raise errors.BackupError(f"the store's change log no longer matches the parent backup at position"
                                         f" {since}", hint="take a full backup")
            _create_changes_tables(conn, "out")
            for table, cols in CHANGES_TABLES[:-1]:
                names = ", ".join(cols)
                conn.execute(f"INSERT INTO out.{table}({names}) {CHANGES[table].format(cols=names)}", {"p": since})
            conn.execute("INSERT INTO out.range VALUES(?, ?)", (since, position))
            problems = damage.copy_problems(conn, schema="out", full=False)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("DETACH out")
    except READ_ERRORS as e:
        raise backend.failed(e, f"reading the changes since position {since}") from e
    finally:
        conn.close()
    return Copied(position, head, at, problems)


class ChangesFile:
    """A changes file written from another engine's rows, in ``CHANGES_TABLES``' format (the public writer of
    the format for backends that are not SQLite): ``add`` rows table by table, then ``finish``, which checks the
    file and returns the damage found (like ``changes``). Sealed with ``key`` like a store's copy."""

    def __init__(self, raw: str, key: Any) -> None:
        try:
            self.conn = atrest.connect(raw, key)
        except apsw.Error as e:
            raise translate(e, f"writing {raw}") from e
        try:
            self.conn.execute("BEGIN")
            _create_changes_tables(self.conn, "main")
        except apsw.Error as e:
            self.conn.close()
            raise translate(e, f"writing {raw}") from e

    def add(self, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """Rows of ``table`` in its columns' order; a log row's ``body`` is the content's JSON text (or None)."""
        cols = dict(CHANGES_TABLES)[table]
        marks = ", ".join("jsonb(?)" if table == "log" and c == "body" else "?" for c in cols)
        try:
            self.conn.executemany(f"INSERT INTO main.{table} VALUES({marks})", rows)
        except apsw.Error as e:
            raise translate(e, "writing a changes file") from e

    def finish(self) -> list[str]:
        try:
            problems = damage.copy_problems(self.conn, full=False)
            self.conn.execute("COMMIT")
        except apsw.Error as e:
            self.abort()
            raise translate(e, "writing a changes file") from e
        self.conn.close()
        return problems

    def abort(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except apsw.Error:
            pass
        self.conn.close()


def _end(conn: apsw.Connection) -> tuple[int, bytes, int | None]:
    row = conn.execute("SELECT position, hash, at FROM main.log ORDER BY position DESC LIMIT 1").fetchone()
    return (0, bytes(16), None) if row is None else (row[0], row[1], int(row[2]))


class Opened:
    """A copy (or an unpacked backup file) opened for reading and small fixes while a backup is made."""

    def __init__(self, path: str, key: Any) -> None:
        self.conn = atrest.connect(path, key)

    def file_blobs(self) -> list[tuple[str, int]]:
        return [(str(h), int(n)) for h, n in self.conn.execute("SELECT hash, size FROM blobs WHERE data IS NULL")]

    def referenced(self, h: str) -> bool:
        return self.conn.execute("SELECT 1 FROM blob_refs WHERE hash=? LIMIT 1", (h,)).fetchone() is not None

    def forget_blob(self, h: str) -> None:
        """A blob gc removed after the copy was taken is garbage in the copy too: drop its row."""
        self.conn.execute("DELETE FROM blobs WHERE hash=?", (h,))

    def close(self) -> None:
        self.conn.close()


# -- reading a backup's data back -------------------------------------------------------------

_V5 = ("position", "kind", "op", "coll", "id", "version", "rev", "at", "author", "type", "created", "checksum",
       "prev", "erased", "body", "actor_hash", "hash", "txn")


def _unhex(value: Any) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


def _read_errors_typed(cls: type) -> type:
    """A ``Source`` method's driver errors come out as kuradb errors naming what was read (a damaged page,
    a body that is not well-formed: CorruptedData)."""
    def wrap(fn: Any) -> Any:
        @functools.wraps(fn)
        def inner(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except READ_ERRORS as e:
                raise translate(e, f"reading {self.bid}") from e
        return inner
    for name, fn in list(vars(cls).items()):
        if callable(fn) and not name.startswith("_") and name != "close":
            setattr(cls, name, wrap(fn))
    return cls


@_read_errors_typed
class Source:
    """One backup's data (a full backup's database or a changes file), read-only, as neutral entries.

    ``snapshot=True``: ``path`` is a live store's database, read in one read transaction (``Backend.source``).
    Entries carry their content as JSON text (``NewEntry.body``), whichever engine they go to.
    """

    def __init__(self, path: str, bid: str, key: Any = None, *, snapshot: bool = False) -> None:
        self.bid = bid
        self.conn = atrest.connect(path, key, apsw.SQLITE_OPEN_READONLY)
        try:
            if snapshot:
                self.conn.execute("BEGIN")
                self.conn.execute("SELECT 1 FROM log LIMIT 1").fetchall()   # the snapshot starts here
            have = {r[1] for r in self.conn.execute("PRAGMA table_info(log)")}
            self._tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except BaseException:
            self.conn.close()
            raise
        self.v4 = "coll" not in have       # written before layout v2: collection names, hex digests
        if self.v4:
            cols = ("position", "kind", "op", "collection", "id", "version", "rev", "at", "author", "type", "created",
                    "checksum", "prev", "erased", "body", "actor_hash", "hash", "txn")
            self._select = ", ".join(("json(body)" if c == "body" else c) if c in have else "NULL" for c in cols)
            self._from = "log"
        else:
            self._select = ", ".join("c.name" if c == "coll" else "json(l.body)" if c == "body" else f"l.{c}"
                                     for c in _V5)
            self._from = "log AS l LEFT JOIN collections AS c ON c.id = l.coll"
        self._p = "position" if self.v4 else "l.position"

    def close(self) -> None:
        self.conn.close()

    def end(self) -> tuple[int, bytes, int | None]:
        """Where the change log ends: (position, hash, time); (0, zero hash, None) when empty."""
        return _end(self.conn)

    def _entry(self, row: Any) -> NewEntry:
        (position, kind, op, collection, id, version, rev, at, author, type_, created, checksum, prev, erased, body,
         actor_hash, hash, txn) = row
        if self.v4:
            rev = None if rev is None else bytes.fromhex(rev.split("-", 1)[1])
            checksum = _unhex(checksum)
            first = position if txn is None else txn
        else:
            first = position - (txn or 0)
        e = NewEntry(kind, op, None, collection, id, version=version, rev=rev, author=author, type=type_,
                     created=created, checksum=checksum, prev=prev, body=None if body is None else body.encode())
        e.position, e.at, e.txn, e.actor_hash, e.hash, e.erased = position, at, first, actor_hash, hash, erased
        return e

    def entries(self, lo: int, hi: int) -> list[NewEntry]:
        return [self._entry(r) for r in self.conn.execute(
            f"SELECT {self._select} FROM {self._from} WHERE {self._p} > ? AND {self._p} <= ? ORDER BY {self._p}",
            (lo, hi))]

    def entry(self, position: int) -> NewEntry | None:
        row = self.conn.execute(f"SELECT {self._select} FROM {self._from} WHERE {self._p} = ?", (position,)).fetchone()
        return None if row is None else self._entry(row)

    def position_at(self, lo: int, hi: int, at_us: int) -> int:
        """The last position in ``(lo, hi]`` written at or before ``at_us`` (``lo`` if none)."""
        row = self.conn.execute("SELECT max(position) FROM log WHERE position > ? AND position <= ? AND at <= ?",
                                (lo, hi, at_us)).fetchone()
        return lo if row is None or row[0] is None else int(row[0])

    def erasures(self, lo: int, hi: int) -> list[tuple[Any, ...]]:
        """(position, erased, author, type, checksum) of entries at or before ``lo`` whose content a change in
        ``(lo, hi]`` erased."""
        cols = "position, erased, author, type, checksum"
        found = list(self.conn.execute(f"SELECT {cols} FROM log WHERE position <= ? AND erased > ? AND erased <= ?",
                                       (lo, lo, hi)))
        if "erasures" in self._tables:
            found += self.conn.execute(f"SELECT {cols} FROM erasures WHERE position <= ? AND erased > ?"
                                       " AND erased <= ?", (lo, lo, hi))
        if self.v4:
            found = [(p, e, a, t, _unhex(c)) for p, e, a, t, c in found]
        return found

    def blob(self, h: str) -> tuple[Any, ...] | None:
        row = self.conn.execute("SELECT hash, size, content_type, created, data FROM blobs WHERE hash=?",
                                (h,)).fetchone()
        return None if row is None else tuple(row)

    def blob_refs(self, lo: int, hi: int) -> list[tuple[Any, ...]]:
        return list(self.conn.execute("SELECT hash, position FROM blob_refs WHERE position > ? AND position <= ?",
                                      (lo, hi)))

    def index(self, collection: str, name: str) -> tuple[str, list[str], bool, dict[str, Any]] | None:
        """(kind, fields, unique, options) of an index the backup's catalog declares."""
        if self.v4:
            row = self.conn.execute("SELECT kind, fields, is_unique, options FROM indexes WHERE collection=?"
                                    " AND name=?", (collection, name)).fetchone()
        else:
            row = self.conn.execute("SELECT i.kind, i.fields, i.is_unique, i.options FROM indexes AS i JOIN"
                                    " collections AS c ON c.id = i.coll WHERE c.name=? AND i.name=?",
                                    (collection, name)).fetchone()
        if row is None:
            return None
        return row[0], orjson.loads(row[1]), bool(row[2]), orjson.loads(row[3])
