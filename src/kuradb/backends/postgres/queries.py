"""Queries as PostgreSQL statements over ``log``: find, count and exists, and explain.

A collection's live records are its ``log`` rows with ``coll = N AND head = 1``
(found through the ``log_head`` index); each row's content is parsed once per
statement (``body::jsonb`` in a LATERAL subquery that is not flattened).
No secondary index exists yet on PostgreSQL stores, so the plan is the
collection's own: rows in id order.
"""
from __future__ import annotations

from typing import Any

from ...query.engine import Spec, Statement
from ...query.indexes import Meta
from ...query.planner import choose
from ...query.syntax import ENVELOPE, TRUE
from .compiler import COLUMNS, Compiler, Source

RECORD_COLUMNS = ("l.id", "l.version", "l.rev", "l.type", "l.created", "l.at", "l.author", "l.head = 2",
                  "l.checksum")


def source(meta: Meta) -> Source:
    return Source(doc="d.doc", columns={k: "l." + COLUMNS[v] for k, v in ENVELOPE.items()}, catalog=meta.catalog)


def find(coll: int, meta: Meta, spec: Spec, what: str = "records") -> Statement:
    """``what``: records, count or exists."""
    plan = choose(spec.filter, spec.sort if what == "records" else (), meta)
    c = Compiler(source(meta))
    where = c.where(spec.filter)
    head = (f"FROM log AS l CROSS JOIN LATERAL (SELECT l.body::jsonb AS doc OFFSET 0) AS d"
            f" WHERE l.coll = {int(coll)} AND l.head = 1")
    if spec.filter != TRUE:
        head += f" AND {where}"
    if what == "count":
        return Statement(f"SELECT count(*) {head}", c.params, plan, c.python)
    if what == "exists":
        return Statement(f"SELECT 1 {head} LIMIT 1", c.params, plan, c.python)
    cols = ", ".join(RECORD_COLUMNS)
    if spec.fields is None:
        cols += ", l.body"
    elif spec.fields:
        cols += ", " + ", ".join(c.projection(p) for p in spec.fields)
    sql = f"SELECT {cols} {head} ORDER BY {', '.join(c.order_by(spec.sort, 'l.id'))}"
    if spec.limit is not None or spec.skip:
        sql += f" LIMIT {c.param(spec.limit)} OFFSET {c.param(spec.skip)}"
    return Statement(sql, c.params, plan, c.python)


def explain(reader: Any, st: Statement) -> list[str]:
    """PostgreSQL's plan of a statement, one line per step."""
    return [str(r[0]) for r in reader.rows("EXPLAIN " + st.sql, st.params)]
