"""The reads of ``verify`` and ``repair`` on PostgreSQL, in the orders kuradb/integrity.py reads.

The server checks its own pages (with data checksums on, a damaged page is an
error on read); what kuradb checks here is its own layer: every version's
checksum and rev, the audit chain, heads, blob references. A read that fails
is an error of the whole check (PostgreSQL does not hand back parts of a
damaged table as SQLite's file can), reported by verify as one problem.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from . import indexes
from .errors import translate_all

Note = Callable[[str], None]

# One change-log entry and its parent version (VERIFY order, as the SQLite backend's checks.py).
_LOG_SCAN = ("SELECT l.position, l.kind, coalesce(c.name, l.coll::text), l.id, l.version, l.rev, l.checksum,"
             " l.erased, l.op, CASE WHEN l.kind = 'record' THEN l.body END, l.prev, l.at, l.author, l.actor_hash,"
             " l.hash, l.head, p.rev, p.version, coalesce(pc.name, p.coll::text), p.id"
             " FROM log AS l LEFT JOIN collections AS c ON c.id = l.coll"
             " LEFT JOIN log AS p ON p.position = l.prev LEFT JOIN collections AS pc ON pc.id = p.coll"
             " WHERE l.position <= %s ORDER BY l.position")


@translate_all
class Checks:
    """Reads for verify and repair, over ``self.cur`` (in one snapshot)."""

    cur: Any
    ready: Callable[[], None]        # rows.py Rows.ready: begin a write transaction not begun yet

    def engine_problems(self, limit: int = 100) -> list[str]:
        return []     # the server's own concern; a damaged page it finds fails the reads below

    def size_hint(self) -> int:
        row = self.cur.execute("SELECT coalesce((SELECT max(position) FROM log), 0)"
                               " + (SELECT count(*) FROM blobs)").fetchone()
        return int(row[0])

    def last_position(self, note: Note) -> tuple[int | None, int | None, int | None]:
        row = self.cur.execute("SELECT count(*), min(position), max(position) FROM log").fetchone()
        return int(row[0]), row[1], row[2]

    def gaps(self, high: int) -> str:
        rows = self.cur.execute("SELECT position + 1 FROM log AS l WHERE position < %s AND NOT EXISTS"
                                " (SELECT 1 FROM log WHERE position = l.position + 1) LIMIT 10", (high,)).fetchall()
        return ", ".join(str(g[0]) for g in rows)

    def verify_entries(self, note: Note, high: int | None, skipped: list[int]) -> Iterator[tuple[Any, ...]]:
        """Every change-log entry up to ``high`` (VERIFY order), streamed through a server-side cursor."""
        if high is None:
            return
        self.ready()
        with self.cur.connection.cursor(name="kura_verify") as scan:
            scan.itersize = 2000
            scan.execute(_LOG_SCAN, (high,))
            yield from scan

    def blob_refs_all(self, note: Note) -> set[tuple[str, int]] | None:
        return {(h, p) for h, p in self.cur.execute("SELECT hash, position FROM blob_refs")}

    def array_paths_all(self, note: Note) -> dict[int, set[tuple[str, ...]]] | None:
        out: dict[int, set[tuple[str, ...]]] = {}
        for coll, path in self.cur.execute("SELECT coll, path FROM array_paths"):
            out.setdefault(coll, set()).add(tuple(orjson.loads(path)))
        return out

    def verify_blobs(self, note: Note) -> Iterator[tuple[str, int, bytes | None]]:
        self.ready()
        with self.cur.connection.cursor(name="kura_blobs") as scan:
            scan.itersize = 16
            scan.execute("SELECT hash, size, data FROM blobs ORDER BY hash")
            yield from scan

    def unstored_blobs(self, note: Note) -> list[str]:
        return [h for (h,) in self.cur.execute(
            "SELECT DISTINCT hash FROM blob_refs WHERE hash NOT IN (SELECT hash FROM blobs)")]

    def index_problems(self, note: Note) -> int:
        """Note what is wrong with the declared indexes' server objects; returns how many are declared."""
        for problem in indexes.problems(self.cur):
            note(problem)
        return len(self.declared_indexes())

    # -- what repair rebuilds from ---------------------------------------------------------

    def live_contents(self) -> Iterator[tuple[int, str]]:
        yield from self.cur.execute("SELECT coll, body FROM log WHERE head = 1 AND body IS NOT NULL"
                                    " ORDER BY position").fetchall()

    def blob_bodies(self) -> list[tuple[int, str]]:
        return self.cur.execute("SELECT position, body FROM log WHERE kind = 'record' AND body IS NOT NULL"
                                " AND strpos(body, '\"$blob\"') > 0 ORDER BY position").fetchall()

    def declared_indexes(self) -> list[tuple[int, str, Any]]:
        return indexes.declared(self.cur)
