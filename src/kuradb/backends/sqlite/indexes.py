"""Secondary indexes in SQLite: partial expression indexes on ``log`` over the sort key of each field.

An index on ``["owner", "-score"]`` of the collection with id 5 is

    CREATE INDEX "kura:5:owner_score_desc" ON log(<key of owner>, <key of score> DESC, id)
        WHERE coll=5 AND head=1

Partial per collection and live versions only (other collections' writes and
every superseded version skip it), keyed by the same expressions the compiler
writes (sql.py), so SQLite uses it for equality, ranges, ``$in``, prefixes and
sorting. A unique index leaves out the trailing ``id``; SQLite enforces it in
the statement that writes the version, so a violation writes nothing. Missing
and null keys are SQL NULLs, which a unique index does not constrain.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import apsw
import orjson

from ...backend import IndexConflict
from ...query.indexes import IndexInfo
from ...query.syntax import Path
from . import fts
from .sql import single

# Envelope fields (query/syntax.py ENVELOPE) -> columns of log.
COLUMNS = {"id": "id", "type": "type", "version": "version", "created": "created", "modified": "at",
           "author": "author"}
ID_INDEX = "log_live"   # the (coll, id) index of live records: the built-in _id index
_REFUSED = re.compile(r"index 'kura:(\d+):([^']+)'")


def sql_name(coll: int, name: str) -> str:
    """The SQLite name, quoted: index names cannot hold ':' or '"'."""
    return f'"kura:{int(coll)}:{name}"'


def live(coll: int, alias: str = "") -> str:
    """The partial-index condition; a query must repeat it for SQLite to use the index."""
    return f"{alias}coll={int(coll)} AND {alias}head=1"


def key_sql(path: Path, doc: str = "body") -> str:
    """The index key of one field: the envelope column, or the content's sort key."""
    return COLUMNS[path.column] if path.column else single(doc, path.segments).key


def ddl(coll: int, info: IndexInfo) -> tuple[str, list[str]]:
    """The CREATE INDEX statement of a btree index, and its key columns."""
    cols = [key_sql(p) + (" DESC" if desc else "") for p, desc in info.paths()]
    if not info.unique:
        cols.append("id")
    return (f"CREATE {'UNIQUE ' if info.unique else ''}INDEX {sql_name(coll, info.name)}"
            f" ON log({', '.join(cols)}) WHERE {live(coll)}", cols)


def _conn(cur: Any) -> apsw.Connection:
    return cur if isinstance(cur, apsw.Connection) else cur.connection


def build(cur: Any, coll: int, info: IndexInfo, progress: Callable[[float], None] | None = None) -> None:
    """Make the SQLite objects of an index and fill them from the live records; IndexConflict if a
    unique index cannot hold them."""
    if info.kind == "text":
        fts.build(cur, coll, info)
        return
    statement, cols = ddl(coll, info)
    try:
        if progress is None:
            cur.execute(statement)
        else:
            _run_with_progress(cur, coll, statement, cols, progress)
    except apsw.ConstraintError as e:
        raise IndexConflict(str(e)) from e


def drop(cur: Any, coll: int, info: IndexInfo) -> None:
    if info.kind == "text":
        fts.drop(cur, coll)
    else:
        cur.execute(f"DROP INDEX IF EXISTS {sql_name(coll, info.name)}")


def _run_with_progress(cur: Any, coll: int, statement: str, cols: list[str],
                       progress: Callable[[float], None]) -> None:
    """Run the DDL, reporting an estimated fraction done (SQLite reports no row counts)."""
    conn = _conn(cur)
    # Calibrate: VM steps for the same expressions over a sample of rows, then scale.
    total = cur.execute(f"SELECT count(*) FROM log WHERE {live(coll)}").fetchone()[0] or 1
    sample = min(total, 2000)
    steps = [0]

    def count() -> bool:
        steps[0] += 1
        return False

    conn.set_progress_handler(count, 100)
    try:
        cur.execute(f"SELECT {', '.join(c.removesuffix(' DESC') for c in cols)} FROM log"
                    f" WHERE {live(coll)} LIMIT {sample}").fetchall()
    finally:
        conn.set_progress_handler(None)
    expected = max(1.0, steps[0] * total / sample * 1.5)  # 1.5: sorting and building the b-tree
    done = [0]

    def tick() -> bool:
        done[0] += 1
        progress(min(done[0] / expected, 0.99))
        return False

    conn.set_progress_handler(tick, 100)
    try:
        cur.execute(statement)
    finally:
        conn.set_progress_handler(None)
    progress(1.0)


def refusing(message: str, coll: int) -> str | None:
    """The name of the index of collection ``coll`` that a SQLite constraint message names."""
    m = _REFUSED.search(message)
    return m.group(2) if m and int(m.group(1)) == coll else None


def holder(cur: Any, coll: int, info: IndexInfo, id: str, content: Any, envelope: dict[str, Any]) -> str | None:
    """The id of another live record with the index values ``content`` (and ``envelope``) would have."""
    args: list[Any] = [orjson.dumps(content) if content is not None else None]
    conds = []
    for p, _ in info.paths():
        if p.column:
            args.append(envelope.get(p.column))
            conds.append(f"{key_sql(p)} IS ?{len(args)}")
        else:
            conds.append(f"{key_sql(p)} IS {key_sql(p, 'jsonb(?1)')}")
    args.append(id)
    row = cur.execute(f"SELECT id FROM log INDEXED BY {sql_name(coll, info.name)}"
                      f" WHERE {live(coll)} AND {' AND '.join(conds)} AND id IS NOT ?{len(args)}", args).fetchone()
    return None if row is None else str(row[0])


def sharing(cur: Any, coll: int, info: IndexInfo) -> str | None:
    """Ids of live records that share the values of a unique index about to be made (for its error)."""
    keys = [key_sql(p) for p, _ in info.paths()]
    row = cur.execute(f"SELECT group_concat(id, ', ') FROM log WHERE {live(coll)} GROUP BY {', '.join(keys)}"
                      f" HAVING count(*) > 1 AND {' AND '.join(f'{k} IS NOT NULL' for k in keys)} LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def declared(cur: Any) -> list[tuple[int, IndexInfo]]:
    """Every index the ``indexes`` table declares, as (collection id, definition)."""
    return [(coll, IndexInfo(name, tuple(orjson.loads(fields)), bool(unique), kind, orjson.loads(options)))
            for coll, name, kind, fields, unique, options in cur.execute(
                "SELECT coll, name, kind, fields, is_unique, options FROM indexes ORDER BY coll, created, name")]


def rebuild(cur: Any, coll: int, info: IndexInfo) -> None:
    """Drop and make again the SQLite objects of one declared index (repair, migration)."""
    drop(cur, coll, info)
    build(cur, coll, info)


def rebuild_all(cur: Any) -> None:
    """Make every declared index again over the current records (migration 5)."""
    for coll, info in declared(cur):
        rebuild(cur, coll, info)


def problems(cur: Any) -> list[str]:
    """What is wrong with the SQLite objects of the declared indexes, each naming collection and index."""
    names = dict(cur.execute("SELECT id, name FROM collections").fetchall())
    schema = {name: kind for name, kind, sql in cur.execute(
        "SELECT name, type, sql FROM sqlite_schema WHERE name LIKE 'kura%'")
        if kind != "table" or str(sql).startswith("CREATE VIRTUAL TABLE")}  # not FTS5's shadow tables
    expected: set[str] = set()
    out = []
    for coll, info in declared(cur):
        where = f"{names.get(coll, coll)}: index {info.name!r}"
        if info.kind == "text":
            objects = fts.objects(coll)
            expected.update(objects)
            out += [f"{where}: {p}" for p in fts.problems(cur, coll, schema)]
        else:
            name = sql_name(coll, info.name).strip('"')
            expected.add(name)
            if name not in schema:
                out.append(f"{where}: its SQLite index is missing (repair recreates it)")
    for name, kind in sorted(schema.items()):
        if name not in expected and name.startswith(("kura:", "kura_fts:")):
            out.append(f"SQLite {kind} {name!r} belongs to no declared index")
    return out
