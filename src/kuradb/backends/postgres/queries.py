"""Queries as PostgreSQL statements over ``log``: find, count and exists, and explain.

A collection's live records are its ``log`` rows with ``coll = N AND head = 1``;
each row's content is parsed once per statement (compiler.document, in a
LATERAL subquery that is not flattened). The planner (query/planner.py) picks the index,
as for SQLite; here the conditions it serves are also written over that index's
own expressions (compiler.py: its jsonb keys for a unique index, its four sort terms
for any other), beside the exact ones, and a sort it serves is written as its
columns, so that PostgreSQL can use it. PostgreSQL's own planner then decides,
with its statistics, whether it does: on a small collection a scan may win.
"""
from __future__ import annotations

from typing import Any

from ...query.engine import Spec, Statement
from ...query.indexes import ID_INDEX, Meta
from ...query.planner import Plan, choose
from ...query.syntax import ENVELOPE, TRUE
from ..shared import finds
from .compiler import COLUMNS, Compiler, Source, document, sql_name

RECORD_COLUMNS = ("l.id", "l.version", "l.rev", "l.type", "l.created", "l.at", "l.author", "l.head = 2",
                  "l.checksum")
LIVE_FROM = f"log AS l CROSS JOIN LATERAL (SELECT {document('l.body')} AS doc OFFSET 0) AS d"


def live(coll: int) -> str:
    """The condition of a collection's live records (it implies every index's own, indexes.live)."""
    return f"l.coll = {int(coll)} AND l.head = 1"


def source(meta: Meta) -> Source:
    return Source(doc="d.doc", columns={k: "l." + COLUMNS[v] for k, v in ENVELOPE.items()}, catalog=meta.catalog,
                  row="l.", text="l.body")


def compiler(meta: Meta, plan: Plan, params: list[Any] | None = None) -> Compiler:
    """A compiler that writes what ``plan``'s index serves over the index's expressions."""
    index = None if plan.index is ID_INDEX else plan.index
    sorted_by = index if index is not None and "sort" in plan.serves and not index.unique else None
    return Compiler(source(meta), params, keyed=plan.keyed, index=index, sorted_by=sorted_by)


def find(coll: int, meta: Meta, spec: Spec, what: str = "records") -> Statement:
    """``what``: records, count or exists."""
    plan = choose(spec.filter, spec.sort if what == "records" else (), meta)
    c = compiler(meta, plan)
    where = c.where(spec.filter)
    head = f"FROM {LIVE_FROM} WHERE {live(coll)}"
    if spec.filter != TRUE:
        head += f" AND {where}"
    return finds.statement(what, head, c, spec, plan, columns=RECORD_COLUMNS, body="l.body", id_column="l.id",
                           no_limit=None)


def explain(reader: Any, st: Statement) -> list[str]:
    """PostgreSQL's plan of a statement, one line per step; secondary indexes named ``kura:<collection
    id>:<name>`` (PostgreSQL's names for them are digests of the name)."""
    names = {sql_name(coll, name).strip('"'): f"kura:{coll}:{name}"
             for coll, name in reader.rows("SELECT coll, name FROM indexes WHERE kind <> 'text'")}
    lines = []
    for (line,) in reader.rows("EXPLAIN " + st.sql, st.params):
        line = str(line)
        for digest, name in names.items():
            line = line.replace(digest, name)
        lines.append(line)
    return lines
