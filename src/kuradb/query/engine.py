"""Running queries on a collection: find, count, exists, scan and explain.

Each call reads the collection's catalog and indexes and runs the statement the
backend's dialect compiles in one snapshot, so the statement's shape always
matches the data it reads. Records come back verified against their checksums.
"""
from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..backend import Backend
from ..encoding import content_digest
from ..records import Record, corrupted
from .indexes import load_meta
from .planner import Plan
from .statements import CACHE
from .syntax import Node, Path, SortKey, check_count, parse_fields, parse_filter, parse_sort


@dataclass(frozen=True)
class Target:
    """The collection a query runs on: its store's backend, its name and id (0: it has no rows yet)."""

    backend: Backend
    name: str
    coll: int


@dataclass(frozen=True)
class Spec:
    """A parsed query: what ``find`` was asked."""

    filter: Node
    sort: tuple[SortKey, ...] = ()
    limit: int | None = None
    skip: int = 0
    fields: tuple[Path, ...] | None = None

    @classmethod
    def parse(cls, filter: Any = None, *, sort: Any = None, limit: Any = None, skip: Any = 0,
              fields: Any = None) -> Spec:
        return cls(parse_filter(filter), parse_sort(sort), check_count(limit, "limit"),
                   check_count(skip, "skip", allow_none=False) or 0, parse_fields(fields))


@dataclass(frozen=True)
class Statement:
    """A compiled query: what the dialect made of a Spec, and what runs as Python per row."""

    sql: str
    params: list[Any]
    plan: Plan
    python: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Explain:
    """How a query runs: the index used and for what, the SQL, the engine's plan, and any Python-side work."""

    index: str
    used_for: tuple[str, ...]
    sql: str
    sqlite_plan: list[str]          # the engine's own plan (named so when SQLite was the only engine)
    python: list[str]
    engine: str = "sqlite"          # the dialect whose plan that is: sqlite, postgresql

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "used_for": list(self.used_for), "sql": self.sql,
                "sqlite_plan": self.sqlite_plan, "python": self.python, "engine": self.engine}

    def __str__(self) -> str:
        used = " and ".join(self.used_for) or "a full scan of the collection"
        lines = [f"index {self.index!r} for {used}", *(f"  {self.engine}: {p}" for p in self.sqlite_plan)]
        lines += [f"  python: {p}" for p in self.python] or ["  python: nothing (all in SQL)"]
        return "\n".join(lines)


def records(collection: str, rows: list[Any], fields: tuple[Path, ...] | None) -> list[Record]:
    """Records of rows ``(id, version, rev, type, created, modified, author, deleted, checksum, text | fields...)``.

    Whole records are checked against their checksum; partial ones (``fields``) cannot be."""
    out = []
    if fields is None:
        for id, version, rev, type_, created, modified, author, _, ck, text in rows:
            if content_digest(text.encode()) != ck:
                raise corrupted(collection, id, version)
            out.append(Record(collection, id, type_, version, rev, ck, author, False, text, created, modified))
        return out
    for row in rows:
        content: dict[str, Any] = {}
        for path, text in zip(fields, row[9:], strict=True):
            if text is not None:
                _put(content, path.segments, orjson.loads(text))
        out.append(Record.partial(collection, row[0], row[3], row[1], row[2], row[8], row[6], content,
                                  row[4], row[5]))
    return out


def _put(target: dict[str, Any], segments: tuple[str, ...], value: Any) -> None:
    for s in segments[:-1]:
        target = target.setdefault(s, {})
    target[segments[-1]] = value


def _statement(target: Target, reader: Any, spec: Spec, what: str) -> Statement:
    """The statement for ``spec`` against the collection as ``reader`` sees it (compiled once per shape)."""
    return CACHE.statement(target.backend.dialect, target.coll, load_meta(reader, target.coll), spec, what)


def find(target: Target, spec: Spec) -> list[Record]:
    with target.backend.read() as r:
        st = _statement(target, r, spec, "records")
        rows = r.rows(st.sql, st.params)
    return records(target.name, rows, spec.fields)


def count(target: Target, spec: Spec, what: str = "count") -> int:
    """``what``: count, or exists (1 or 0)."""
    with target.backend.read() as r:
        st = _statement(target, r, spec, what)
        rows = r.rows(st.sql, st.params)
    return 0 if not rows else int(rows[0][0])


def scan(target: Target, spec: Spec, batch_size: int) -> Iterator[Record]:
    """Stream from one snapshot: one statement, ``batch_size`` rows converted at a time.

    A batch larger than any collection (past ``sys.maxsize``, which islice refuses) is all rows at once.
    """
    batch_size = min(batch_size, sys.maxsize)
    with target.backend.snapshot() as r:
        st = _statement(target, r, spec, "records")
        rows = r.stream(st.sql, st.params)
        while True:
            batch = list(itertools.islice(rows, batch_size))
            if not batch:
                return
            yield from records(target.name, batch, spec.fields)


def explain(target: Target, spec: Spec) -> Explain:
    with target.backend.read() as r:
        st = _statement(target, r, spec, "records")
        plan = target.backend.dialect.explain(r, st)
    return Explain(st.plan.index.name, st.plan.serves, st.sql, plan, st.python, target.backend.dialect.name)
