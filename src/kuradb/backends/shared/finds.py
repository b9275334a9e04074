"""The statement of a find, count or exists, from an engine's compiled parts (its FROM and WHERE, columns).

Both SQL engines (backends/sqlite/queries.py, backends/postgres/queries.py) compile
the filter, sort and projection with their own compiler and hand the pieces here,
where the statement is put together once: a count, an existence check, or the
records with their columns, in the sort's order with the id last, paged.
"""
from __future__ import annotations

from typing import Any

from ...query.engine import Spec, Statement
from ...query.planner import Plan


def statement(what: str, head: str, c: Any, spec: Spec, plan: Plan, *, columns: tuple[str, ...], body: str,
              id_column: str, no_limit: int | None) -> Statement:
    """``what``: records, count or exists. ``head`` is ``FROM ... WHERE ...``; ``c`` the compiler that made
    it (its params, projection and order); ``no_limit``: the LIMIT that means none, for an OFFSET alone."""
    if what == "count":
        return Statement(f"SELECT count(*) {head}", c.params, plan, c.python)
    if what == "exists":
        return Statement(f"SELECT 1 {head} LIMIT 1", c.params, plan, c.python)
    cols = ", ".join(columns)
    if spec.fields is None:
        cols += f", {body}"
    elif spec.fields:
        cols += ", " + ", ".join(c.projection(p) for p in spec.fields)
    sql = f"SELECT {cols} {head} ORDER BY {', '.join(c.order_by(spec.sort, id_column))}"
    if spec.limit is not None or spec.skip:
        sql += f" LIMIT {c.param(no_limit if spec.limit is None else spec.limit)} OFFSET {c.param(spec.skip)}"
    return Statement(sql, c.params, plan, c.python)
