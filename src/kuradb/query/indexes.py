"""Secondary and text indexes: their definitions, validation, the catalog rows, and DuplicateKey.

An index is declared on one or more fields (``"-score"`` descending) of a
collection; the backend's dialect makes it real (for SQLite a partial
expression index over the sort key of each field, kuradb/backends/sqlite/indexes.py)
so that equality, ranges, ``$in``, prefixes and sorting use it. A unique index
refuses a write that would give two live records the same values, inside the
write's own statement: nothing is written (``DuplicateKey``). Missing and null
values are not constrained by a unique index.
"""
from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import errors
from ..backend import IndexConflict, Reader, Tx
from .syntax import Path, parse_path

BUILTIN_ID = "_id"
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
    """What a query needs to know about a collection, read in the query's snapshot."""

    catalog: frozenset[tuple[str, ...]]
    indexes: tuple[IndexInfo, ...]

    @property
    def btree(self) -> tuple[IndexInfo, ...]:
        return tuple(i for i in self.indexes if i.kind == "btree")

    @property
    def text(self) -> IndexInfo | None:
        return next((i for i in self.indexes if i.kind == "text"), None)


EMPTY = Meta(frozenset(), ())
_meta_cache: dict[tuple[Any, ...], Meta] = {}


def load_meta(reader: Reader, coll: int | None) -> Meta:
    """The collection's array catalog and indexes as ``reader``'s snapshot sees them.

    Two small reads every time (about 1 us each); the parsed Meta is cached by
    the rows read, so it can never be stale.
    """
    if not coll:
        return EMPTY
    paths, rows = reader.catalog(coll)
    key = (coll, paths, rows)
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


def definition(info: IndexInfo) -> bytes:
    """What the change log keeps of an index it creates (a replay redoes it from this)."""
    return orjson.dumps({"kind": info.kind, "fields": list(info.fields), "unique": info.unique,
                         "options": info.options})


def create(tx: Tx, dialect: Any, collection: str, coll: int, info: IndexInfo,
           progress: Callable[[float], None] | None = None) -> IndexInfo:
    """Declare and build an index (idempotent for the same definition); DuplicateKey if data violates it.

    Returns ``info`` when it was made, else the existing index of that definition."""
    existing = load_meta(tx, coll).indexes
    for ix in existing:
        same_text = info.kind == "text" and ix.kind == "text"
        if ix.name == info.name or (ix.kind == info.kind and ix.fields == info.fields) or same_text:
            if (ix.kind, ix.fields, ix.unique, ix.options) == (info.kind, info.fields, info.unique, info.options):
                return ix
            if same_text:
                raise errors.AlreadyExists(f"{collection} already has a text index ({ix.name!r} on"
                                           f" {list(ix.fields)})", hint="drop it first; one text index per collection")
            raise errors.AlreadyExists(
                f"{collection}: index {ix.name!r} already exists on {list(ix.fields)} (unique={ix.unique})",
                hint="drop it first, or choose another name")
    try:
        dialect.build_index(tx, coll, info, progress)
    except IndexConflict as e:
        ids = dialect.sharing(tx, coll, info)
        raise errors.DuplicateKey(
            f"{collection}: cannot create unique index {info.name!r} on {list(info.fields)}:"
            f" records {ids or 'several records'} share a value",
            hint="make the values unique first; nothing was created") from e
    tx.add_index(coll, info.name, info.kind, orjson.dumps(list(info.fields)).decode(), info.unique,
                 orjson.dumps(info.options).decode(), time.time_ns() // 1000)
    return info


def drop(tx: Tx, dialect: Any, collection: str, coll: int, name: str) -> IndexInfo:
    if not isinstance(name, str):
        raise errors.ValidationError(f"an index name is a string, not {type(name).__name__}", path="name")
    if name == BUILTIN_ID:
        raise errors.ValidationError("the _id index cannot be dropped", path="name")
    row = tx.remove_index(coll, name)
    if row is None:
        raise errors.NotFound(f"{collection} has no index {name!r}")
    info = IndexInfo(row[0], tuple(orjson.loads(row[2])), bool(row[3]), row[1])
    dialect.drop_index(tx, coll, info)
    return info


def drop_all(tx: Tx, dialect: Any, collection: str, coll: int) -> None:
    """With drop_collection: every index of the collection goes too."""
    for ix in load_meta(tx, coll).indexes:
        drop(tx, dialect, collection, coll, ix.name)


def duplicate(tx: Tx, dialect: Any, collection: str, coll: int, conflict: IndexConflict,
              written: list[tuple[str, Any, dict[str, Any]]]) -> errors.KuraError:
    """The DuplicateKey for a write that a unique index refused, naming the index, the values and who
    holds them. ``written``: the (id, content, envelope) of each record the refused write tried to write."""
    name = dialect.refusing_index(str(conflict), coll, tx)
    info = next((i for i in load_meta(tx, coll).indexes if i.name == name), None)
    if info is None:
        return errors.DuplicateKey(f"{collection}: a unique index refused the write ({conflict})",
                                   hint="nothing was written")
    first = None
    for id, content, envelope in written:
        held_by = dialect.holder(tx, coll, info, id, content, envelope)
        if held_by is not None or first is None:
            holder_text = f" (held by {collection}/{held_by})" if held_by else ""
            first = errors.DuplicateKey(
                f"{collection}/{id}: unique index {info.name!r} already has {_values(content, envelope, info)}"
                f"{holder_text}",
                hint="change the value, or update the record that holds it; nothing was written")
            if held_by is not None:
                break
    assert first is not None
    return first


def _values(content: Any, envelope: dict[str, Any], info: IndexInfo) -> str:
    from .pipeline import get_single

    out = {}
    for p, _ in info.paths():
        out[p.text] = envelope.get(p.column) if p.column else get_single(content or {}, p.segments)
    return ", ".join(f"{k}={orjson.dumps(v, default=str).decode()}" for k, v in out.items())
