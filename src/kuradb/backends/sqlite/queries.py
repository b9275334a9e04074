"""Queries as SQLite statements over ``log``: find, count and exists, text search, and explain.

The planner (query/planner.py) picks the index; this module says how SQLite
reads the collection for it:

- a secondary index: ``INDEXED BY`` it;
- the collection's own ``(coll, id)`` index (``log_live``): when a condition on
  ``_id`` uses it, or nothing filters and rows go out in id order (it walks the
  collection without sorting);
- otherwise a sequential scan of the log (``NOT INDEXED``), the cheap column
  tests (``coll``, ``head``) before any JSON. Reading rows through the id index
  instead costs a random row lookup each (measured 4x slower on an unindexed
  filter, bench/layout_v2.py); a log holding many versions or other collections
  per live record reads more rows, each rejected before its JSON is touched.
"""
from __future__ import annotations

from typing import Any

from ...query.engine import Spec, Statement, records
from ...query.fulltext import Hit, Terms
from ...query.indexes import ID_INDEX, Meta
from ...query.planner import choose
from ...query.syntax import ENVELOPE, TRUE, Node
from ...records import Record
from ..shared import finds
from . import fts
from .compiler import Compiler, Source
from .indexes import COLUMNS, live, sql_name
from .indexes import ID_INDEX as ID_SQL_INDEX

RECORD_COLUMNS = ("id", "version", "rev", "type", "created", "at", "author", "head = 2", "checksum")


def source(meta: Meta, doc: str = "body", prefix: str = "") -> Source:
    """A collection's records as the compiler sees them: the JSON, the envelope columns, the catalog."""
    return Source(doc=prefix + doc, columns={k: prefix + COLUMNS[v] for k, v in ENVELOPE.items()},
                  catalog=meta.catalog)


def find(coll: int, meta: Meta, spec: Spec, what: str = "records") -> Statement:
    """``what``: records, count or exists."""
    plan = choose(spec.filter, spec.sort if what == "records" else (), meta)
    c = Compiler(source(meta), keyed=plan.keyed)
    where = c.where(spec.filter)
    if plan.index is not ID_INDEX:
        how = f"INDEXED BY {sql_name(coll, plan.index.name)}"
    elif "filter" in plan.serves or spec.filter == TRUE:
        how = f"INDEXED BY {ID_SQL_INDEX}"
    else:
        how = "NOT INDEXED"
    head = f"FROM log {how} WHERE {live(coll)}"
    if where != "1":
        head += f" AND {where}"
    return finds.statement(what, head, c, spec, plan, columns=RECORD_COLUMNS, body="json(body)", id_column="id",
                           no_limit=-1)


def explain(reader: Any, st: Statement) -> list[str]:
    """SQLite's plan of a statement, one line per step."""
    return [str(r[3]) for r in reader.rows("EXPLAIN QUERY PLAN " + st.sql, st.params)]


def search(reader: Any, name: str, coll: int, meta: Meta, terms: Terms, node: Node, limit: int) -> list[Hit]:
    """The live records matching ``terms`` (and ``node``), best first by BM25."""
    c = Compiler(source(meta, prefix="d."))
    where = c.where(node)
    cols = ", ".join(f"d.{col}" for col in RECORD_COLUMNS)
    table = fts.table(coll)
    sql = (f"SELECT {cols}, json(d.body), bm25({table}) FROM {table} JOIN log AS d ON d.position = {table}.rowid"
           f" WHERE {table} MATCH {c.param(fts.match(terms))} AND {live(coll, 'd.')}"
           + ("" if where == "1" else f" AND {where}")
           + f" ORDER BY bm25({table}), d.id LIMIT {c.param(limit)}")   # equal scores: by _id
    rows = reader.rows(sql, c.params)
    found: list[Record] = records(name, [r[:10] for r in rows], None)
    return [Hit(rec, -r[10]) for rec, r in zip(found, rows, strict=True)]
