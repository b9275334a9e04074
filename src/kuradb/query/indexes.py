"""Secondary indexes: SQLite expression indexes over the sort key of each field.

An index on ``["owner", "-score"]`` of collection ``notes`` is

    CREATE INDEX "kura:notes:owner_score_desc" ON docs(<key of owner>, <key of score> DESC, id)
        WHERE collection='notes' AND deleted=0

Partial per collection (other collections' writes skip it, tombstones are not
in it) and keyed by the same expressions the compiler writes, so SQLite uses
it for equality, ranges, ``$in``, prefixes and sorting. A unique index leaves
out the trailing ``id``; SQLite enforces it inside the write's own statement,
so a violation writes nothing (``DuplicateKey``). Missing and null values are
not constrained by a unique index (SQL NULLs are distinct).
"""
from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import apsw
import orjson

from .. import errors
from ..sqlite import Transaction, scalar
from .dialect import literal, single
from .syntax import ENVELOPE, Path, parse_path

BUILTIN_ID = "_id"
ID_SQL_INDEX = "sqlite_autoindex_docs_1"  # the UNIQUE(collection, id) constraint of docs
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class IndexInfo:
    """An index of a collection. ``fields`` as given (``"-score"`` is descending)."""

    name: str
    fields: tuple[str, ...]
    unique: bool = False
    kind: str = "btree"  # or "text"
    options: dict[str, Any] = field(default_factory=dict, compare=False)

    def paths(self) -> list[tuple[Path, bool]]:
        return [(parse_path(f.lstrip("-"), "index"), f.startswith("-")) for f in self.fields]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "fields": list(self.fields), "unique": self.unique, "kind": self.kind,
                **({"options": self.options} if self.options else {})}


ID_INDEX = IndexInfo(BUILTIN_ID, ("_id",), unique=True)


@dataclass(frozen=True)
class Meta:
    """What the compiler needs to know about a collection, read in the query's snapshot."""

    catalog: frozenset[tuple[str, ...]]
    indexes: tuple[IndexInfo, ...]

    @property
    def btree(self) -> tuple[IndexInfo, ...]:
        return tuple(i for i in self.indexes if i.kind == "btree")

    @property
    def text(self) -> IndexInfo | None:
        return next((i for i in self.indexes if i.kind == "text"), None)


_meta_cache: dict[tuple[Any, ...], Meta] = {}


def load_meta(cur: apsw.Cursor, collection: str) -> Meta:
    """The collection's catalog and indexes as this cursor's snapshot sees them.

    Two small reads every time (about 1 µs each); the parsed Meta is cached by
    the rows read, so it can never be stale.
    """
    paths = tuple(p for (p,) in cur.execute("SELECT path FROM array_paths WHERE collection=?", (collection,)))
    rows = tuple(cur.execute("SELECT created, name, kind, fields, is_unique, options FROM indexes"
                             " WHERE collection=?", (collection,)))
    key = (collection, paths, rows)
    meta = _meta_cache.get(key)
    if meta is None:
        catalog = frozenset(tuple(orjson.loads(p)) for p in paths)
        indexes = tuple(IndexInfo(name, tuple(orjson.loads(fields)), bool(unique), kind, orjson.loads(options))
                        for _, name, kind, fields, unique, options in sorted(rows))
        meta = Meta(catalog, indexes)
        if len(_meta_cache) >= 1024:
            _meta_cache.clear()
        _meta_cache[key] = meta
    return meta


def sql_name(collection: str, name: str) -> str:
    """The SQLite name, quoted: collection and index names cannot hold ':' or '"'."""
    return f'"kura:{collection}:{name}"'


def key_sql(path: Path, doc: str = "body") -> str:
    """The index key of one field: the envelope column, or the content's sort key."""
    return ENVELOPE[path.text] if path.column else single(doc, path.segments).key


def live(collection: str) -> str:
    """The partial-index condition; queries must repeat it literally for SQLite to use the index."""
    return f"collection={literal(collection)} AND deleted=0"


def check_fields(fields: Any) -> tuple[str, ...]:
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, (list, tuple)) or not fields:
        raise errors.ValidationError(f"index fields must be a field path or a non-empty list of them, not {fields!r}",
                                     path="fields")
    out = []
    for i, f in enumerate(fields):
        if not isinstance(f, str):
            raise errors.ValidationError(f"index field {i} must be a string, not {f!r}", path=f"fields[{i}]")
        try:
            p = parse_path(f[1:] if f.startswith("-") else f, f"fields[{i}]")
        except errors.QueryError as e:
            raise errors.ValidationError(e.message, path=f"fields[{i}]", hint=e.hint) from e
        if p.column == "id" and len(fields) == 1:
            raise errors.ValidationError("_id is always indexed", path=f"fields[{i}]")
        out.append(f)
    if len({f.lstrip("-") for f in out}) != len(out):
        raise errors.ValidationError(f"a field appears twice in {list(out)!r}", path="fields")
    return tuple(out)


def default_name(fields: tuple[str, ...]) -> str:
    parts = [re.sub(r"[^A-Za-z0-9_.]", "_", f.lstrip("-")) + ("_desc" if f.startswith("-") else "") for f in fields]
    name = "_".join(parts)
    if len(name) > 64:
        name = name[:55] + "_" + hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return name


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name == BUILTIN_ID:
        raise errors.ValidationError(f"index name {name!r} is invalid", path="name",
                                     hint="use 1 to 64 characters from A-Z a-z 0-9 _ . - (not '_id')")
    return name


def index_ddl(collection: str, info: IndexInfo) -> tuple[str, list[str]]:
    """The CREATE INDEX statement of a btree index, and its key columns."""
    cols = [key_sql(p) + (" DESC" if desc else "") for p, desc in info.paths()]
    if not info.unique:
        cols.append("id")
    return (f"CREATE {'UNIQUE ' if info.unique else ''}INDEX {sql_name(collection, info.name)}"
            f" ON docs({', '.join(cols)}) WHERE {live(collection)}", cols)


def create(tx: Transaction, collection: str, info: IndexInfo,
           progress: Callable[[float], None] | None = None) -> IndexInfo:
    """Create a btree index (idempotent for the same definition); DuplicateKey if data violates it."""
    cur = tx.cur
    existing = load_meta(cur, collection).indexes
    for ix in existing:
        if ix.name == info.name or (ix.kind == info.kind and ix.fields == info.fields):
            if (ix.kind, ix.fields, ix.unique) == (info.kind, info.fields, info.unique):
                return ix
            raise errors.AlreadyExists(
                f"{collection}: index {ix.name!r} already exists on {list(ix.fields)} (unique={ix.unique})",
                hint="drop it first, or choose another name")
    ddl, cols = index_ddl(collection, info)
    try:
        _run_with_progress(tx, collection, ddl, cols, progress)
    except apsw.ConstraintError as e:
        raise _duplicates_on_create(cur, collection, info) from e
    cur.execute("INSERT INTO indexes(collection, name, kind, fields, is_unique, options, created)"
                " VALUES(?, ?, ?, ?, ?, ?, ?)",
                (collection, info.name, info.kind, orjson.dumps(list(info.fields)).decode(), int(info.unique),
                 orjson.dumps(info.options).decode(), time.time_ns() // 1000))
    return info


def drop(tx: Transaction, collection: str, name: str) -> IndexInfo:
    if not isinstance(name, str):
        raise errors.ValidationError(f"an index name is a string, not {type(name).__name__}", path="name")
    if name == BUILTIN_ID:
        raise errors.ValidationError("the _id index cannot be dropped", path="name")
    row = tx.cur.execute("DELETE FROM indexes WHERE collection=? AND name=? RETURNING name, kind, fields, is_unique",
                         (collection, name)).fetchone()
    if row is None:
        raise errors.NotFound(f"{collection} has no index {name!r}")
    info = IndexInfo(row[0], tuple(orjson.loads(row[2])), bool(row[3]), row[1])
    if info.kind == "text":
        from . import fulltext

        fulltext.drop_objects(tx.cur, collection)
    else:
        tx.cur.execute(f"DROP INDEX IF EXISTS {sql_name(collection, name)}")
    return info


def drop_all(tx: Transaction, collection: str) -> None:
    """With drop_collection: every index of the collection goes too."""
    for ix in load_meta(tx.cur, collection).indexes:
        drop(tx, collection, ix.name)


def _run_with_progress(tx: Transaction, collection: str, ddl: str, cols: list[str],
                       progress: Callable[[float], None] | None) -> None:
    """Run the DDL, reporting an estimated fraction done (SQLite reports no row counts)."""
    if progress is None:
        tx.cur.execute(ddl)
        return
    conn = tx.conn
    # Calibrate: VM steps for the same expressions over a sample of rows, then scale.
    total = scalar(tx.cur, "SELECT count(*) FROM docs") or 1
    sample = min(total, 2000)
    steps = [0]

    def count() -> bool:
        steps[0] += 1
        return False

    conn.set_progress_handler(count, 100)
    try:
        tx.cur.execute(f"SELECT {', '.join(c.removesuffix(' DESC') for c in cols)} FROM"
                       f" (SELECT * FROM docs LIMIT {sample}) WHERE {live(collection)}").fetchall()
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
        tx.cur.execute(ddl)
    finally:
        conn.set_progress_handler(None)
    progress(1.0)


def holder(cur: apsw.Cursor, collection: str, info: IndexInfo, id: str, text: str | None,
           envelope: dict[str, Any]) -> str | None:
    """The id of another live record with the index values of ``id``'s new content ``text``."""
    conds, args = [], [text]
    for p, _ in info.paths():
        if p.column:
            args.append(envelope.get(p.column))
            conds.append(f"{key_sql(p)} IS ?{len(args)}")
        else:
            conds.append(f"{key_sql(p)} IS {key_sql(p, 'jsonb(?1)')}")
    args.append(id)
    row = cur.execute(f"SELECT id FROM docs INDEXED BY {sql_name(collection, info.name)}"
                      f" WHERE {live(collection)} AND {' AND '.join(conds)} AND id IS NOT ?{len(args)}",
                      args).fetchone()
    return None if row is None else str(row[0])


def duplicate_error(collection: str, info: IndexInfo, id: str, text: str | None, envelope: dict[str, Any],
                    held_by: str | None) -> errors.DuplicateKey:
    holder_text = f" (held by {collection}/{held_by})" if held_by else ""
    return errors.DuplicateKey(
        f"{collection}/{id}: unique index {info.name!r} already has {_values(text, info, envelope)}{holder_text}",
        hint="change the value, or update the record that holds it; nothing was written")


def _values(text: str | None, info: IndexInfo, envelope: dict[str, Any]) -> str:
    from .pipeline import get_single

    content = orjson.loads(text) if text else {}
    out = {}
    for p, _ in info.paths():
        out[p.text] = envelope.get(p.column) if p.column else get_single(content, p.segments)
    return ", ".join(f"{k}={orjson.dumps(v, default=str).decode()}" for k, v in out.items())


def _duplicates_on_create(cur: apsw.Cursor, collection: str, info: IndexInfo) -> errors.DuplicateKey:
    keys = [key_sql(p) for p, _ in info.paths()]
    row = cur.execute(f"SELECT group_concat(id, ', ') FROM docs WHERE {live(collection)}"
                      f" GROUP BY {', '.join(keys)}"
                      f" HAVING count(*) > 1 AND {' AND '.join(f'{k} IS NOT NULL' for k in keys)} LIMIT 1"
                      ).fetchone()
    ids = row[0] if row else "several records"
    return errors.DuplicateKey(
        f"{collection}: cannot create unique index {info.name!r} on {list(info.fields)}:"
        f" records {ids} share a value", hint="make the values unique first; nothing was created")


def find_index_by_sql_name(message: str) -> tuple[str, str] | None:
    """``(collection, index)`` from a SQLite constraint message naming one of ours."""
    m = re.search(r"index 'kura:([^:]+):([^']+)'", message)
    return (m.group(1), m.group(2)) if m else None
