"""Running queries on a collection: find, count, exists, scan and explain.

Each call reads the collection's catalog and indexes and runs its statement in
one snapshot, so the SQL shape always matches the data it reads.
"""
from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import apsw
import orjson

from ..errors import KuraError, QueryError
from ..records import Record
from ..sqlite import translate
from .compiler import Compiler, Source
from .indexes import Meta, live, load_meta
from .planner import Plan, choose
from .syntax import ENVELOPE, Node, Path, SortKey, check_count, parse_fields, parse_filter, parse_sort

if TYPE_CHECKING:
    from ..collection import Collection

RECORD_COLUMNS = "id, version, rev, type, created, modified, author, deleted, checksum"
# SQLite's limits on one statement's size (expression depth, compound SELECTs, parameters). The
# compiler keeps ordinary queries, however long their lists, well inside them; what still reaches
# one is a query too complex to run, said as a QueryError rather than a storage error.
_TOO_COMPLEX = ("Expression tree is too large", "parser stack overflow", "too many terms in compound SELECT",
                "too many SQL variables", "too many arguments on function")


def failed(e: apsw.Error, collection: str) -> KuraError:
    """The kuradb error for a query that SQLite refused or failed."""
    if isinstance(e, apsw.SQLError) and any(m in str(e) for m in _TOO_COMPLEX):
        return QueryError(f"the query is too complex for SQLite ({e})",
                          hint="fewer nested $and/$or/$not; many values of one field belong in one $in")
    return translate(e, collection)


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
    sql: str
    params: list[Any]
    plan: Plan
    python: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Explain:
    """How a query runs: the index used and for what, the SQL, SQLite's plan, and any Python-side work."""

    index: str
    used_for: tuple[str, ...]
    sql: str
    sqlite_plan: list[str]
    python: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "used_for": list(self.used_for), "sql": self.sql,
                "sqlite_plan": self.sqlite_plan, "python": self.python}

    def __str__(self) -> str:
        used = " and ".join(self.used_for) or "a full scan of the collection"
        lines = [f"index {self.index!r} for {used}", *(f"  sqlite: {p}" for p in self.sqlite_plan)]
        lines += [f"  python: {p}" for p in self.python] or ["  python: nothing (all in SQL)"]
        return "\n".join(lines)


def source(meta: Meta, doc: str = "body", prefix: str = "") -> Source:
    return Source(doc=prefix + doc, columns={k: prefix + v for k, v in ENVELOPE.items()},
                  catalog=meta.catalog)


def statement(collection: str, meta: Meta, spec: Spec, what: str = "records") -> Statement:
    """``what``: records, count or exists."""
    plan = choose(spec.filter, spec.sort if what == "records" else (), meta, collection)
    c = Compiler(source(meta), keyed=plan.keyed)
    where = c.where(spec.filter)
    head = f"FROM docs INDEXED BY {plan.sql_index} WHERE {live(collection)}"
    if where != "1":
        head += f" AND {where}"
    if what == "count":
        return Statement(f"SELECT count(*) {head}", c.params, plan, c.python)
    if what == "exists":
        return Statement(f"SELECT 1 {head} LIMIT 1", c.params, plan, c.python)
    if spec.fields is None:
        cols = f"{RECORD_COLUMNS}, json(body)"
    else:
        cols = ", ".join([RECORD_COLUMNS, *(c.projection(p) for p in spec.fields)]) if spec.fields else RECORD_COLUMNS
    sql = f"SELECT {cols} {head} ORDER BY {', '.join(c.order_by(spec.sort, 'id'))}"
    if spec.limit is not None or spec.skip:
        sql += f" LIMIT {c.param(-1 if spec.limit is None else spec.limit)} OFFSET {c.param(spec.skip)}"
    return Statement(sql, c.params, plan, c.python)


def _records(coll: Collection, rows: list[Any], fields: tuple[Path, ...] | None) -> list[Record]:
    if fields is None:
        return coll._live_records(rows)
    out = []
    for row in rows:
        content: dict[str, Any] = {}
        for path, text in zip(fields, row[9:], strict=True):
            if text is not None:
                _put(content, path.segments, orjson.loads(text))
        out.append(Record.partial(coll.name, row[0], row[3], row[1], row[2], row[8], row[6], content,
                                  row[4], row[5]))
    return out


def _put(target: dict[str, Any], segments: tuple[str, ...], value: Any) -> None:
    for s in segments[:-1]:
        target = target.setdefault(s, {})
    target[segments[-1]] = value


def find(coll: Collection, spec: Spec) -> list[Record]:
    try:
        with coll._backend.read() as cur:
            st = statement(coll.name, load_meta(cur, coll.name), spec)
            rows = cur.execute(st.sql, st.params).fetchall()
    except apsw.Error as e:
        raise failed(e, coll.name) from e
    return _records(coll, rows, spec.fields)


def count(coll: Collection, spec: Spec, what: str = "count") -> int:
    try:
        with coll._backend.read() as cur:
            st = statement(coll.name, load_meta(cur, coll.name), spec, what)
            row = cur.execute(st.sql, st.params).fetchone()
    except apsw.Error as e:
        raise failed(e, coll.name) from e
    return 0 if row is None else int(row[0])


def scan(coll: Collection, spec: Spec, batch_size: int) -> Iterator[Record]:
    """Stream from one snapshot: one statement, ``batch_size`` rows converted at a time.

    A batch larger than any collection (past ``sys.maxsize``, which islice refuses) is all rows at once.
    """
    batch_size = min(batch_size, sys.maxsize)
    with coll._backend.snapshot() as cur:
        try:
            st = statement(coll.name, load_meta(cur, coll.name), spec)
            rows = cur.execute(st.sql, st.params)
            while True:
                batch = list(itertools.islice(rows, batch_size))
                if not batch:
                    return
                yield from _records(coll, batch, spec.fields)
        except apsw.Error as e:
            raise failed(e, coll.name) from e


def explain(coll: Collection, spec: Spec) -> Explain:
    try:
        with coll._backend.read() as cur:
            st = statement(coll.name, load_meta(cur, coll.name), spec)
            plan = [str(r[3]) for r in cur.execute("EXPLAIN QUERY PLAN " + st.sql, st.params).fetchall()]
    except apsw.Error as e:
        raise failed(e, coll.name) from e
    return Explain(st.plan.index.name, st.plan.serves, st.sql, plan, st.python)
