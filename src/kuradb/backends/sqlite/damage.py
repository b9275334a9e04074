"""Damage to the database file: SQLite's own checks, named for people, and reading on past what cannot be read.

``sqlite_problems`` runs SQLite's integrity check and says which kuradb
structure each finding is in (the change log, the current records, an index
of a collection...). ``Scan`` reads a table in key order as far as it can:
where a row (or a damaged page of rows) cannot be read, it records the keys
and goes on from the next one, so ``verify`` can name every record it could
not read instead of stopping at the first. ``copy_problems`` is the cheap
check a backup runs on its copy before keeping it.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import apsw

from .errors import READ_ERRORS

_SHADOW = ("_data", "_idx", "_docsize", "_config", "_content")   # FTS5's own tables of a text index
_TREE = re.compile(r"\bTree (\d+) page (\d+)")
_INDEX = re.compile(r"\bindex (\S+)")


def error_text(e: BaseException) -> str:
    """What a read error says, without the driver's class name."""
    return str(getattr(e, "message", None) or e)


def describe(name: str) -> str:
    """The kuradb structure a SQLite table or index ``name`` holds."""
    if name == "log":
        return "the change log and every record version (table log)"
    if name == "log_live":
        return "the index of live records (of table log)"
    if name == "log_dead":
        return "the index of deleted records (of table log)"
    if name == "collections" or name == "sqlite_autoindex_collections_1":
        return "the collections (table collections)"
    if name.startswith("kura:") and name.count(":") >= 2:
        coll, index = name[5:].rsplit(":", 1)
        return f"collection {coll}: index {index!r} (repair rebuilds it)"
    if name.startswith("kura_fts:"):
        coll = name[9:]
        for suffix in _SHADOW:
            if coll.endswith(suffix):
                coll = coll[:-len(suffix)]
        return f"collection {coll}: the text index (repair rebuilds it)"
    if name in ("blob_refs", "blob_refs_position", "array_paths", "log_erased"):
        return f"{name} (derived; repair rebuilds it)"
    return f"table {name}"


def _roots(cur: apsw.Cursor) -> dict[int, str]:
    try:
        return {int(root): name for root, name in cur.execute(
            "SELECT rootpage, name FROM sqlite_schema WHERE rootpage > 0")}
    except READ_ERRORS:
        return {}


def _lines(cur: apsw.Cursor, pragma: str) -> list[str]:
    out = []
    for (row,) in cur.execute(pragma).fetchall():
        out += [line for line in str(row).split("\n") if line and not line.startswith("*** in database")]
    return out


def _named(line: str, roots: dict[int, str]) -> str:
    m = _TREE.search(line)
    if m and int(m.group(1)) in roots:
        rest = line[m.end():].lstrip(" :")
        return f"{describe(roots[int(m.group(1))])}, page {m.group(2)}{': ' + rest if rest else ''}"
    m = _INDEX.search(line)
    if m and m.group(1) in roots.values():
        return f"{line} ({describe(m.group(1))})"
    return line


def sqlite_problems(cur: apsw.Cursor, limit: int = 100) -> list[str]:
    """SQLite's integrity check of the whole file, each finding named; [] when it is sound.

    ``integrity_check`` also compares every index with its table and stops
    with an error at damage it cannot walk past; then ``quick_check`` (the
    b-trees alone) and a check of each table say where the damage is.
    """
    roots = _roots(cur)
    try:
        found = _lines(cur, f"PRAGMA integrity_check({int(limit)})")
    except READ_ERRORS as e:
        found = []
        try:
            found += _lines(cur, f"PRAGMA quick_check({int(limit)})")
        except READ_ERRORS as q:
            found.append(f"the file's structure cannot be checked: {error_text(q)}")
        for name in sorted(set(roots.values()) & _tables(cur)):
            try:
                found += _lines(cur, f'PRAGMA integrity_check("{name}")')
            except READ_ERRORS as t:
                found.append(f"{describe(name)} cannot be checked against its indexes: {error_text(t)}")
        if not [f for f in found if f != "ok"]:
            found.append(f"the integrity check stopped: {error_text(e)}")
    unique = dict.fromkeys(_named(f, roots) for f in found if f != "ok")
    return list(unique)


def _tables(cur: apsw.Cursor) -> set[str]:
    try:
        return {name for (name,) in cur.execute("SELECT name FROM sqlite_schema WHERE type = 'table'"
                                                " AND sql NOT LIKE 'CREATE VIRTUAL TABLE%'")}
    except READ_ERRORS:
        return set()


def copy_problems(conn: apsw.Connection, limit: int = 20, *, schema: str = "main", full: bool = True) -> list[str]:
    """The cheap check of a database copy: the b-trees (``quick_check``) and every stored body being
    well-formed JSONB. It finds a damaged page and damaged content bytes; a change that leaves a body
    well-formed (a flipped bit inside a string) is left to verify, which checks every checksum.

    ``full=False``: only the bodies of the change log in ``schema`` (a changes file being written)."""
    found: list[str] = []
    if full:
        roots = _roots(conn.cursor())
        try:
            found += [_named(f, roots) for f in _lines(conn.cursor(), f"PRAGMA {schema}.quick_check({int(limit)})")
                      if f != "ok"]
        except READ_ERRORS as e:
            return [f"the file's structure cannot be checked: {error_text(e)}"]
    try:
        for key, coll, id in conn.execute(
                f"SELECT l.position, coalesce(c.name, l.coll), l.id FROM {schema}.log AS l"
                f" LEFT JOIN {schema}.collections AS c ON c.id = l.coll"
                f" WHERE l.body IS NOT NULL AND NOT json_valid(l.body, 8) LIMIT ?", (limit,)):
            found.append(f"{coll}/{id}: the content of change log position {key} is damaged (not well-formed JSONB)")
    except READ_ERRORS as e:
        found.append(f"stored content cannot be read: {error_text(e)}")
    return found


class Unreadable:
    """Keys a scan could not read, reported as runs: ``what 120-135 cannot be read (why)``."""

    def __init__(self, add: Callable[[str], None], what: str, plural: str) -> None:
        self.add, self.what, self.plural = add, what, plural
        self.keys: list[int] = []
        self._run: list[Any] = []   # [first, last, error]

    def note(self, key: int, error: BaseException) -> None:
        self.keys.append(key)
        if self._run and self._run[1] == key - 1:
            self._run[1] = key
            return
        self.flush()
        self._run = [key, key, error_text(error)]

    def named(self, key: int, problem: str) -> None:
        """A key that cannot be read but whose owner is known: its own problem, not part of a run."""
        self.flush()
        self.keys.append(key)
        self.add(problem)

    def flush(self) -> None:
        if self._run:
            first, last, why = self._run
            span = f"{self.what} {first}" if first == last else f"{self.plural} {first}-{last}"
            self.add(f"{span} cannot be read ({why})")
            self._run = []


class Scan:
    """The rows of ``sql`` (its first column the integer key, ``WHERE key > ?1 ORDER BY key``), read past
    damage: where the scan fails, ``probe(key)`` reads the next key on its own (None: no such row, or it
    cannot be read, which the probe notes in ``unreadable``), and the scan goes on after it.

    ``high`` is the largest key; without it (it could not be read) the scan stops at the first failure.
    """

    def __init__(self, cur: apsw.Cursor, sql: str, high: int | None,
                 probe: Callable[[int, BaseException], tuple[Any, ...] | None], unreadable: Unreadable) -> None:
        self.cur, self.sql, self.high, self.probe, self.unreadable = cur, sql, high, probe, unreadable

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        after = 0
        while True:
            try:
                for row in self.cur.execute(self.sql, (after,)):
                    after = row[0]
                    yield row
                break
            except READ_ERRORS as e:
                if self.high is None:
                    self.unreadable.add(f"{self.unreadable.plural} after {after} cannot be read ({error_text(e)})")
                    break
                if after >= self.high:
                    break
                after += 1
                row = self.probe(after, e)
                if row is not None:
                    yield row
        self.unreadable.flush()


def high(cur: apsw.Cursor, sql: str) -> int | None:
    """A largest key (``SELECT max(...)``), or None when it cannot be read."""
    try:
        row = cur.execute(sql).fetchone()
    except READ_ERRORS:
        return None
    return int(row[0] or 0) if row else 0
