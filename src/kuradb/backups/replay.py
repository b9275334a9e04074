"""Applying a backup's changes to a restored store, up to a chosen position.

A *source* is one backup's data opened read-only: the changes file of an
incremental/differential backup, or a full backup's database (which holds the
whole change log). ``replay(store, source, lo, hi)`` moves a store that is at
position ``lo`` to position ``hi``: it copies the change-log entries in
``(lo, hi]`` as they are (positions, times, revs and audit hashes unchanged),
redoes their effect on the current records, collections, indexes and blobs,
and applies the erasures (``keep_history``, ``purge``, ``drop_collection``)
made in that range to older entries.

Content erased after ``hi`` but before the backup was taken was never captured:
an entry that lost it is kept as erased, and if it is the current version of a
record at ``hi`` the replay refuses (``RestoreError``) rather than restore a
record without its content.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import apsw
import orjson

from .. import atrest, errors
from ..query import fulltext, indexes
from ..query.catalog import array_paths, encode
from ..query.indexes import IndexInfo

if TYPE_CHECKING:
    from ..store import Store

COLUMNS = ("position", "kind", "collection", "id", "version", "rev", "op", "at", "author", "type", "created",
           "checksum", "prev", "erased", "body", "actor_hash", "hash", "txn")
_INSERT = f"INSERT INTO log({', '.join(COLUMNS)}) VALUES({', '.join('?' * len(COLUMNS))})"
_DOC = ("INSERT INTO docs(collection, id, version, rev, type, created, modified, author, deleted, position,"
        " checksum, body) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(collection, id) DO UPDATE SET"
        " version=excluded.version, rev=excluded.rev, type=excluded.type, created=excluded.created,"
        " modified=excluded.modified, author=excluded.author, deleted=excluded.deleted,"
        " position=excluded.position, checksum=excluded.checksum, body=excluded.body")
P, KIND, COLL, ID, VERSION, REV, OP, AT, AUTHOR, TYPE, CREATED, CHECKSUM, PREV, ERASED, BODY = range(15)
TXN = 17


class Source:
    """One backup's data, read-only."""

    def __init__(self, path: str, bid: str, key: Any = None) -> None:
        self.bid = bid
        self.conn = atrest.connect(path, key, apsw.SQLITE_OPEN_READONLY)
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(log)")}
        self._select = ", ".join(c if c in have else "NULL" for c in COLUMNS)
        self._tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def close(self) -> None:
        self.conn.close()

    def entries(self, lo: int, hi: int) -> Any:
        return self.conn.execute(f"SELECT {self._select} FROM log WHERE position > ? AND position <= ?"
                                 " ORDER BY position", (lo, hi))

    def entry(self, position: int) -> tuple[Any, ...] | None:
        row = self.conn.execute(f"SELECT {self._select} FROM log WHERE position = ?", (position,)).fetchone()
        return None if row is None else tuple(row)

    def position_at(self, lo: int, hi: int, at_us: int) -> int:
        """The last position in ``(lo, hi]`` written at or before ``at_us`` (``lo`` if none)."""
        row = self.conn.execute("SELECT max(position) FROM log WHERE position > ? AND position <= ? AND at <= ?",
                                (lo, hi, at_us)).fetchone()
        return lo if row is None or row[0] is None else int(row[0])

    def erasures(self, lo: int, hi: int) -> list[tuple[Any, ...]]:
        """Entries at or before ``lo`` whose content was erased by a change in ``(lo, hi]``."""
        cols = "position, erased, author, type, checksum"
        found = list(self.conn.execute(f"SELECT {cols} FROM log WHERE position <= ? AND erased > ? AND erased <= ?",
                                       (lo, lo, hi)))
        if "erasures" in self._tables:
            found += self.conn.execute(f"SELECT {cols} FROM erasures WHERE position <= ? AND erased > ?"
                                       " AND erased <= ?", (lo, lo, hi))
        return found

    def blob(self, h: str) -> tuple[Any, ...] | None:
        row = self.conn.execute("SELECT hash, size, content_type, created, data FROM blobs WHERE hash=?",
                                (h,)).fetchone()
        return None if row is None else tuple(row)

    def blob_refs(self, lo: int, hi: int) -> list[tuple[Any, ...]]:
        return list(self.conn.execute("SELECT hash, position FROM blob_refs WHERE position > ? AND position <= ?",
                                      (lo, hi)))

    def index(self, collection: str, name: str) -> IndexInfo | None:
        row = self.conn.execute("SELECT kind, fields, is_unique, options FROM indexes WHERE collection=? AND name=?",
                                (collection, name)).fetchone()
        if row is None:
            return None
        return IndexInfo(name, tuple(orjson.loads(row[1])), bool(row[2]), row[0], orjson.loads(row[3]))


def committed(source: Source, position: int) -> int:
    """``position``, or the end of the last transaction committed before it when it falls inside one."""
    after = source.entry(position + 1)
    if after is not None and after[TXN] is not None and after[TXN] <= position:
        return int(after[TXN]) - 1
    return position


def replay(store: Store, source: Source, lo: int, hi: int) -> None:
    """Move ``store`` (at position ``lo``) to position ``hi`` with ``source``'s entries; one transaction."""
    lost: dict[int, str] = {}
    with store._backend.write() as tx:
        cur = tx.cur
        row: Any = cur.execute("SELECT coalesce(max(position), 0) FROM log").fetchone()
        have = int(row[0])
        if have != lo:
            raise errors.RestoreError(f"backup {source.bid} continues from position {lo}, but the store being"
                                      f" restored is at {have}")
        for entry in source.entries(lo, hi):
            row = list(entry)
            if row[ERASED] > hi:        # erased after hi, before the backup: the content was never captured
                row[ERASED], row[BODY] = hi, None
                lost[row[P]] = f"{row[COLL]}/{row[ID]} version {row[VERSION]}"
            cur.execute(_INSERT, row)
            _redo(tx, source, row)
        for h, position in source.blob_refs(lo, hi):
            cur.execute("INSERT OR IGNORE INTO blob_refs(hash, position) SELECT ?, position FROM log"
                        " WHERE position = ? AND erased = 0", (h, position))
        for position, erased, author, type_, checksum in source.erasures(lo, hi):
            cur.execute("UPDATE log SET body=NULL, erased=?, author=?, type=?, checksum=? WHERE position=?",
                        (erased, author, type_, checksum, position))
            cur.execute("DELETE FROM blob_refs WHERE position=?", (position,))
        current: Any = cur.execute("SELECT position FROM docs WHERE position IN (SELECT value FROM json_each(?))",
                                   (orjson.dumps(list(lost)).decode(),)).fetchone()
        if current is not None:
            raise errors.RestoreError(
                f"{lost[int(current[0])]}, current at position {hi}, was erased (purge, keep_history or"
                f" drop_collection) before backup {source.bid} was taken, so its content is in no backup",
                hint="restore until a position at which a backup was taken, or one after the erasure")


def _redo(tx: Any, source: Source, row: list[Any]) -> None:
    cur = tx.cur
    kind, op, coll, id = row[KIND], row[OP], row[COLL], row[ID]
    if kind == "record":
        if op == "purge":
            cur.execute("DELETE FROM docs WHERE collection=? AND id=?", (coll, id))
            return
        _ensure_collection(cur, coll, row[AT])
        body = row[BODY]
        cur.execute(_DOC, (coll, id, row[VERSION], row[REV], row[TYPE], row[CREATED], row[AT], row[AUTHOR],
                           body is None, row[P], row[CHECKSUM], body))
        if body is not None:
            text = cur.execute("SELECT json(?)", (body,)).fetchone()[0]
            if "[" in text:
                cur.executemany("INSERT OR IGNORE INTO array_paths(collection, path) VALUES(?, ?)",
                                [(coll, encode(p)) for p in array_paths(orjson.loads(text))])
    elif kind == "collection":
        if op == "drop":
            indexes.drop_all(tx, coll)
            cur.execute("DELETE FROM docs WHERE collection=?", (coll,))
            cur.execute("DELETE FROM collections WHERE name=?", (coll,))
        elif op == "options":
            _ensure_collection(cur, coll, row[AT])
            cur.execute("UPDATE collections SET options=json(?) WHERE name=?", (row[BODY], coll))
    elif kind == "index":
        if op == "create":
            info = _index_definition(cur, source, row)
            _ensure_collection(cur, coll, row[AT])
            (fulltext.create if info.kind == "text" else indexes.create)(tx, coll, info)
        elif op == "drop":
            try:
                indexes.drop(tx, coll, id)
            except errors.NotFound:
                pass
    elif kind == "blob":
        if op == "put":
            blob = source.blob(id)
            if blob is not None:
                cur.execute("INSERT OR IGNORE INTO blobs(hash, size, content_type, created, data)"
                            " VALUES(?, ?, ?, ?, ?)", blob)
        elif op == "delete":
            cur.execute("DELETE FROM blobs WHERE hash=?", (id,))


def _ensure_collection(cur: Any, name: str, at: int) -> None:
    cur.execute("INSERT OR IGNORE INTO collections(name, created) VALUES(?, ?)", (name, at))


def _index_definition(cur: Any, source: Source, row: list[Any]) -> IndexInfo:
    if row[BODY] is not None:
        d = orjson.loads(cur.execute("SELECT json(?)", (row[BODY],)).fetchone()[0])
        return IndexInfo(row[ID], tuple(d["fields"]), bool(d["unique"]), d["kind"], d.get("options") or {})
    info = source.index(row[COLL], row[ID])
    if info is None:
        raise errors.RestoreError(f"the definition of index {row[COLL]}.{row[ID]}, created at position {row[P]},"
                                  f" is in no backup (it was dropped before backup {source.bid})",
                                  hint="restore until a position where a backup was taken")
    return info
