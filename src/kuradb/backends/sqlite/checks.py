"""The reads of ``verify`` and ``repair`` in SQLite, past damage: what cannot be read is named, the rest read.

Each scan walks a table in key order (damage.py's ``Scan``); where a row or a
page of rows cannot be read it notes the keys (``note`` gets each problem as
text) and goes on, so verify can name every record it could not read instead of
stopping at the first. Rows come out in the orders kuradb/integrity.py reads.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import apsw
import orjson

from . import damage, indexes
from .errors import READ_ERRORS, translate_all

Note = Callable[[str], None]

# One change-log entry and the entry before it in its record's history (VERIFY order):
# position, kind, collection, id, version, rev, checksum, erased, op, text, prev, at, author,
# actor_hash, hash, head, then the previous version's rev, version, collection and id.
_LOG_SCAN = ("SELECT l.position, l.kind, coalesce(c.name, l.coll), l.id, l.version, l.rev, l.checksum, l.erased,"
             " l.op, CASE WHEN l.kind = 'record' THEN json(l.body) END, l.prev, l.at, l.author, l.actor_hash, l.hash,"
             " l.head, p.rev, p.version, coalesce(pc.name, p.coll), p.id"
             " FROM log AS l LEFT JOIN collections AS c ON c.id = l.coll"
             " LEFT JOIN log AS p ON p.position = l.prev LEFT JOIN collections AS pc ON pc.id = p.coll"
             " WHERE l.position > ?1 ORDER BY l.position")
_LOG_ONE = ("SELECT l.position, l.kind, coalesce(c.name, l.coll), l.id, l.version, l.rev, l.checksum, l.erased,"
            " l.op, l.prev, l.at, l.author, l.actor_hash, l.hash, l.head FROM log AS l"
            " LEFT JOIN collections AS c ON c.id = l.coll WHERE l.position = ?")


class Damaged:
    """A value that could not be read (its row could)."""

    def __init__(self, error: BaseException) -> None:
        self.why = damage.error_text(error)


_UNKNOWN = (Damaged(Exception("unreadable")),) * 4   # the previous entry of a version, when it cannot be read


@translate_all
class Checks:
    """Reads for verify and repair, over ``self.cur``."""

    cur: apsw.Cursor

    def engine_problems(self, limit: int = 100) -> list[str]:
        """SQLite's own integrity check of the whole file, each finding named by the structure it is in."""
        return damage.sqlite_problems(self.cur, limit)

    def size_hint(self) -> int:
        """About how many rows verify will read (for its progress)."""
        return damage.high(self.cur, "SELECT (SELECT max(position) FROM log) + (SELECT count(*) FROM blobs)") or 0

    def last_position(self, note: Note) -> tuple[int | None, int | None, int | None]:
        """count, min and max of the log's positions (None where they cannot be read)."""
        try:
            row: Any = self.cur.execute("SELECT count(*), min(position), max(position) FROM log").fetchone()
            return row
        except READ_ERRORS:
            return None, None, damage.high(self.cur, "SELECT max(position) FROM log")

    def gaps(self, high: int) -> str:
        try:
            rows = self.cur.execute("SELECT position + 1 FROM log AS l WHERE position < ?1 AND NOT EXISTS"
                                    " (SELECT 1 FROM log WHERE position = l.position + 1) LIMIT 10", (high,)).fetchall()
            return ", ".join(str(g[0]) for g in rows)
        except READ_ERRORS:
            return "?"

    def verify_entries(self, note: Note, high: int | None, skipped: list[int]) -> Iterator[tuple[Any, ...]]:
        """Every change-log entry (VERIFY order) that can be read; the others are noted by position, and
        their positions added to ``skipped`` as the scan passes them."""
        unreadable = damage.Unreadable(note, "change log position", "change log positions")
        unreadable.keys = skipped
        probe = _log_probe(self.cur.connection.cursor(), unreadable)
        yield from damage.Scan(self.cur, _LOG_SCAN, high, probe, unreadable)

    def blob_refs_all(self, note: Note) -> set[tuple[str, int]] | None:
        try:
            return {(h, p) for h, p in self.cur.execute("SELECT hash, position FROM blob_refs")}
        except READ_ERRORS as e:
            note(f"{damage.describe('blob_refs')} cannot be read ({damage.error_text(e)})")
            return None

    def array_paths_all(self, note: Note) -> dict[int, set[tuple[str, ...]]] | None:
        out: dict[int, set[tuple[str, ...]]] = {}
        try:
            for coll, path in self.cur.execute("SELECT coll, path FROM array_paths"):
                out.setdefault(coll, set()).add(tuple(orjson.loads(path)))
        except READ_ERRORS as e:
            note(f"{damage.describe('array_paths')} cannot be read ({damage.error_text(e)})")
            return None
        return out

    def collection_ids(self) -> dict[str, int]:
        try:
            return {name: id for id, name in self.cur.execute("SELECT id, name FROM collections")}
        except READ_ERRORS:
            return {}

    def verify_blobs(self, note: Note) -> Iterator[tuple[str, int, bytes | None]]:
        """(hash, size, inline bytes or None) of every blob. When the table cannot be read through,
        each blob the change log says was put is looked up on its own, so the ones that cannot be read
        are named."""
        seen: set[str] = set()
        try:
            for row in self.cur.execute("SELECT hash, size, data FROM blobs ORDER BY hash"):
                seen.add(row[0])
                yield row
            return
        except READ_ERRORS as e:
            note(f"blobs (table blobs) cannot be read through ({damage.error_text(e)}); each blob is read alone")
        one = self.cur.connection.cursor()
        for (h,) in self.cur.execute("SELECT DISTINCT id FROM log WHERE kind = 'blob' AND op = 'put' ORDER BY id"):
            if h in seen:
                continue
            try:
                row = one.execute("SELECT hash, size, data FROM blobs WHERE hash = ?", (h,)).fetchone()
            except READ_ERRORS as e:
                note(f"blob {h}: its row cannot be read ({damage.error_text(e)})")
                continue
            if row is not None:
                yield row

    def unstored_blobs(self, note: Note) -> list[str]:
        """Blobs that record versions refer to but that are not stored."""
        try:
            return [h for (h,) in self.cur.execute(
                "SELECT DISTINCT hash FROM blob_refs WHERE hash NOT IN (SELECT hash FROM blobs)")]
        except READ_ERRORS as e:
            note(f"blobs: whether every referenced blob is stored cannot be checked ({damage.error_text(e)})")
            return []

    def index_problems(self, note: Note) -> int:
        """Note what is wrong with the declared indexes' SQLite objects; returns how many are declared."""
        try:
            for problem in indexes.problems(self.cur):
                note(problem)
            return len(indexes.declared(self.cur))
        except READ_ERRORS as e:
            note(f"the index definitions (table indexes) cannot be read ({damage.error_text(e)})")
            return 0

    # -- what repair rebuilds from ---------------------------------------------------------

    def live_contents(self) -> Iterator[tuple[int, str]]:
        """(collection id, JSON) of every live record that can be read."""
        for _, coll, text in _readable(
                self.cur, "SELECT position, coll, json(body) FROM log WHERE position > ?1 AND head = 1"
                          " AND body IS NOT NULL ORDER BY position", "SELECT max(position) FROM log",
                "SELECT position, coll, json(body) FROM log WHERE position = ? AND head = 1 AND body IS NOT NULL"):
            yield coll, text

    def blob_bodies(self) -> list[tuple[int, str]]:
        """(position, JSON) of every kept record version that refers to a blob and can be read."""
        return list(_readable(
            self.cur, "SELECT position, json(body) FROM log WHERE position > ?1 AND kind = 'record'"
                      " AND body IS NOT NULL AND instr(json(body), '\"$blob\"') ORDER BY position",
            "SELECT max(position) FROM log",
            "SELECT position, json(body) FROM log WHERE position = ? AND kind = 'record' AND body IS NOT NULL"
            " AND instr(json(body), '\"$blob\"')"))

    def declared_indexes(self) -> list[tuple[int, str, Any]]:
        """(collection id, collection name, IndexInfo) of every declared index."""
        names = self.collection_ids()
        by_id = {v: k for k, v in names.items()}
        return [(coll, by_id.get(coll, str(coll)), info) for coll, info in indexes.declared(self.cur)]


def _log_probe(cur: apsw.Cursor, unreadable: damage.Unreadable) -> Callable[[int, BaseException], Any]:
    """Read change-log entry ``p`` in parts, so a damaged body or parent still leaves the rest checkable."""
    def probe(p: int, _: BaseException) -> tuple[Any, ...] | None:
        try:
            own: Any = cur.execute(_LOG_ONE, (p,)).fetchone()
        except READ_ERRORS as e:
            try:   # say whose entry it is, when that much can be read
                named: Any = cur.execute("SELECT l.coll, l.id, l.version FROM log AS l WHERE l.position = ?",
                                         (p,)).fetchone()
            except READ_ERRORS:
                named = None
            if named is None:
                unreadable.note(p, e)
                return None
            coll, id, version = named
            unreadable.named(p, f"collection {coll}: {id} version {version} (change log position {p}): its entry is"
                                f" damaged and cannot be read ({damage.error_text(e)})")
            return None
        if own is None:
            return None
        position, kind, coll, id, version, rev, ck, erased, op, prev, at, author, actor, stored, head = own
        text: Any = None
        if kind == "record":
            try:
                got: Any = cur.execute("SELECT json(body) FROM log WHERE position = ?", (p,)).fetchone()
                text = got[0]
            except READ_ERRORS as e:
                text = Damaged(e)
        parent: Any = (None,) * 4
        if prev is not None:
            try:
                parent = cur.execute("SELECT p.rev, p.version, coalesce(c.name, p.coll), p.id FROM log AS p"
                                     " LEFT JOIN collections AS c ON c.id = p.coll WHERE p.position = ?",
                                     (prev,)).fetchone() or parent
            except READ_ERRORS:
                parent = _UNKNOWN
        return (position, kind, coll, id, version, rev, ck, erased, op, text, prev, at, author, actor, stored, head,
                *parent)
    return probe


def _readable(cur: apsw.Cursor, scan: str, high: str, one: str) -> Iterator[Any]:
    """The rows of ``scan`` that can be read (``one`` reads a key alone); verify names the others."""
    probe_cur = cur.connection.cursor()

    def probe(key: int, _: BaseException) -> Any:
        try:
            return probe_cur.execute(one, (key,)).fetchone()
        except READ_ERRORS:
            return None
    return iter(damage.Scan(cur, scan, damage.high(cur, high), probe, damage.Unreadable(lambda _: None, "", "")))
