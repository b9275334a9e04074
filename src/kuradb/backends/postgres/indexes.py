"""Secondary indexes on PostgreSQL: partial expression indexes on ``log`` per collection (live records only).

An index on ``["owner", "-score"]`` of the collection with id 5 is

    CREATE INDEX "kura:5:<digest of the name>" ON log(<keys of owner>, <keys of score> DESC, id)
        WHERE coll = 5 AND head = 1

with the key columns of compiler.index_columns: for a unique index a content field's
key is its ``jsonb`` value with JSON null as SQL NULL (so that, as on SQLite, a unique
index constrains neither missing nor null values; ``jsonb`` equality is the language's,
``1`` = ``1.0``, ``"1"`` ≠ ``1``, so it refuses exactly what SQLite's does); for any other
index its four sort terms (kuradb's total order, so that ranges, prefixes and sorts use
it). An envelope field's key is its column. Queries write the same expressions
(compiler.py) for the index the planner chose. Index names are digests (PostgreSQL cuts
identifiers at 63 bytes); the ``indexes`` table maps them back.
A text index is tables of FTS5's tokens instead (fts.py).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from psycopg import errors as pg

from ...backend import IndexConflict
from ...query.indexes import IndexInfo
from ...query.syntax import Path
from . import fts
from .compiler import COLUMNS, document, index_columns, path_array, sql_name, unique_keys

_REFUSED = re.compile(r"kura:(\d+):([0-9a-f]{24})")


def key_sql(path: Path, doc: str = document("body")) -> list[str]:
    """A unique index's key columns of a field (compiler.unique_keys), over the document ``doc``."""
    if path.column:
        return [COLUMNS[path.column]]
    return unique_keys(f"(({doc}) #> {path_array(path.segments)})")


def live(coll: int) -> str:
    return f"coll = {int(coll)} AND head = 1"


def build(cur: Any, coll: int, info: IndexInfo, progress: Callable[[float], None] | None = None) -> None:
    if info.kind == "text":
        fts.build(cur, coll, info)
        if progress is not None:
            progress(1.0)
        return
    cols = index_columns(info)
    if not info.unique:
        cols.append("id")
    statement = (f"CREATE {'UNIQUE ' if info.unique else ''}INDEX {sql_name(coll, info.name)}"
                 f" ON log({', '.join(cols)}) WHERE {live(coll)}")
    cur.execute("SAVEPOINT kura_index")
    try:
        cur.execute(statement)
    except pg.UniqueViolation as e:
        cur.execute("ROLLBACK TO SAVEPOINT kura_index")
        raise IndexConflict(str(e.diag.constraint_name or e)) from e
    cur.execute("RELEASE SAVEPOINT kura_index")
    # Statistics of the new index's expressions (which only ANALYZE gathers), so that PostgreSQL's planner
    # knows how selective a condition on them is from now on, not from autovacuum's next visit.
    cur.execute("ANALYZE log")
    if progress is not None:
        progress(1.0)


def drop(cur: Any, coll: int, info: IndexInfo) -> None:
    if info.kind == "text":
        fts.drop(cur, coll)
    else:
        cur.execute(f"DROP INDEX IF EXISTS {sql_name(coll, info.name)}")


def refusing(cur: Any, message: str, coll: int) -> str | None:
    """The name of the index of collection ``coll`` whose constraint ``message`` names."""
    m = _REFUSED.search(message)
    if not m or int(m.group(1)) != coll:
        return None
    for (name,) in cur.execute("SELECT name FROM indexes WHERE coll = %s", (coll,)):
        if sql_name(coll, name).strip('"') == m.group(0):
            return str(name)
    return None


def holder(cur: Any, coll: int, info: IndexInfo, id: str, content: Any, envelope: dict[str, Any]) -> str | None:
    """The id of another live record with the index values ``content`` (and ``envelope``) would have."""
    args: list[Any] = [orjson.dumps(content).decode() if content is not None else None]
    conds = []
    for p, _ in info.paths():
        if p.column:
            args.append(envelope.get(p.column))
            conds.append(f"{key_sql(p)[0]} IS NOT DISTINCT FROM %s")
        else:
            conds += [f"{mine} IS NOT DISTINCT FROM {theirs}" for mine, theirs in zip(key_sql(p), key_sql(p, "v.doc"),
                                                                                       strict=True)]
    args.append(id)
    row = cur.execute(f"WITH t(x) AS (SELECT %s::text), v(doc) AS (SELECT {document('t.x')} FROM t)"
                      f" SELECT id FROM log, v WHERE {live(coll)}"
                      f" AND {' AND '.join(conds)} AND id <> %s LIMIT 1", args).fetchone()
    return None if row is None else str(row[0])


def sharing(cur: Any, coll: int, info: IndexInfo) -> str | None:
    keys = [k for p, _ in info.paths() for k in key_sql(p)]
    row = cur.execute(f"SELECT string_agg(id, ', ' ORDER BY id) FROM log WHERE {live(coll)} GROUP BY"
                      f" {', '.join(keys)} HAVING count(*) > 1 AND {' AND '.join(f'{k} IS NOT NULL' for k in keys)}"
                      " LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def declared(cur: Any) -> list[tuple[int, str, IndexInfo]]:
    """Every declared index as (collection id, collection name, definition)."""
    return [(coll, collection or str(coll),
             IndexInfo(name, tuple(orjson.loads(fields)), bool(unique), kind, orjson.loads(options)))
            for coll, collection, name, kind, fields, unique, options in cur.execute(
                "SELECT i.coll, c.name, i.name, i.kind, i.fields, i.is_unique, i.options FROM indexes AS i"
                " LEFT JOIN collections AS c ON c.id = i.coll ORDER BY i.coll, i.created, i.name")]


def problems(cur: Any) -> list[str]:
    """What is wrong with the server objects of the declared indexes, each naming collection and index."""
    have = {name: {"r": "table", "i": "index"}[kind] for name, kind in cur.execute(
        "SELECT relname, relkind FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
        " AND relkind IN ('r', 'i') AND relname LIKE 'kura%'")}
    have.update((name, "trigger") for (name,) in cur.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'log'::regclass AND NOT tgisinternal"))
    expected: set[str] = set()
    out = []
    for coll, collection, info in declared(cur):
        where = f"{collection}: index {info.name!r}"
        if info.kind == "text":
            objects = fts.objects(coll)
            expected.update(objects, [f"kura_fts:{coll}:docs_pkey"])
            out += [f"{where}: {p}" for p in fts.problems(cur, coll, info, have)]
        else:
            name = sql_name(coll, info.name).strip('"')
            expected.add(name)
            if have.get(name) != "index":
                out.append(f"{where}: its PostgreSQL index is missing (repair recreates it)")
    for name, kind in sorted(have.items()):
        if name not in expected and name.startswith(("kura:", "kura_fts:")):
            out.append(f"PostgreSQL {kind} {name!r} belongs to no declared index")
    return out
