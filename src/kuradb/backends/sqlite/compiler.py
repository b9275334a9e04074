"""Filters, sorts and projections compiled to SQLite SQL over a document source (the JSON in ``log.body``).

Three shapes of SQL, picked per condition:

- **direct**: no part of the path has ever held an array in this collection
  (the catalog says so), so the value is one ``json_extract``. The common case;
  a non-matching row costs one JSON lookup.
- **keyed**: a direct path that the chosen index covers, written with the
  index's own sort-key expression so that SQLite uses the index.
- **chain**: some prefix of the path may be an array, so candidates fan out
  over array elements, one correlated CTE per such level (linear in the path).

Where the path's own value may be an array, a condition also matches when an
element matches (membership), except ``$size`` and ``$exists``.
Every negation is ``NOT coalesce(x, 0)``: SQL's NULL means "did not match"
here, never "unknown", so ``$ne`` and ``$nin`` match missing fields.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...errors import QueryError
from ...query import regex
from ...query.catalog import may_be_array
from ...query.syntax import And, Cond, Not, Or, Path, SortKey, Value, is_index, next_string
from .sql import (
    NUM_HIGH,
    NUMBER_TYPES,
    STR_HIGH,
    STR_LOW,
    Element,
    Field,
    key_param,
    literal,
    object_path,
    regexp,
    single,
)

Catalog = frozenset[tuple[str, ...]]
_JSON_TYPE = {"str": "'text'", "arr": "'array'", "obj": "'object'"}
_SQL_OP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_BIG_IN = 100  # larger $in lists travel as one JSON parameter
MAX_PARAMS = 32766  # SQLite's limit on parameters in one statement (SQLITE_MAX_VARIABLE_NUMBER)


def join(op: str, parts: list[str]) -> str:
    """``(a AND b AND c)``. SQLite parses a chain as a left-deep tree and limits expression depth
    (to 1000), so a long one is split in halves: the depth grows with log n, not n."""
    if len(parts) <= 4:
        return "(" + f" {op} ".join(parts) + ")"
    mid = len(parts) // 2
    return f"({join(op, parts[:mid])} {op} {join(op, parts[mid:])})"


@dataclass(frozen=True)
class Source:
    """What a filter is compiled against.

    ``doc``: SQL of the JSON document; ``columns``: envelope field -> SQL column
    (empty for pipeline documents); ``catalog``: content paths that have held an
    array (None: unknown, so any path may).
    """

    doc: str
    columns: Mapping[str, str] = field(default_factory=dict)
    catalog: Catalog | None = None

    def may_be_array(self, segments: tuple[str, ...]) -> bool:
        return may_be_array(self.catalog, segments)



def _bool_ok(op: str, b: bool, operand: bool) -> bool:
    return {"gt": b > operand, "gte": b >= operand, "lt": b < operand, "lte": b <= operand}[op]


class Compiler:
    """One statement's worth of SQL: ``where(node)``, ``order_by(keys)``; parameters in ``params``."""

    def __init__(self, source: Source, *, keyed: frozenset[tuple[str, ...]] = frozenset(),
                 params: list[Any] | None = None, namespace: str = "") -> None:
        self.source = source
        self.namespace = namespace  # alias prefix, when several compilers write one statement
        self.keyed = keyed
        self.params: list[Any] = [] if params is None else params
        self.python: list[str] = []  # what runs as Python per row, for explain()
        self._aliases = 0
        self._bounded: set[int] = set()  # keyed range Conds (ids) whose type a sibling bound implies

    def param(self, value: Any) -> str:
        if len(self.params) >= MAX_PARAMS:
            raise QueryError(f"the query needs more than {MAX_PARAMS} values in one statement",
                             hint="many values of one field belong in one $in (it travels as a single value)")
        self.params.append(value)
        return f"?{len(self.params)}"

    def _alias(self, stem: str) -> str:
        self._aliases += 1
        return f"{self.namespace}{stem}{self._aliases}"

    # -- the tree ----------------------------------------------------------------------

    def where(self, node: Any) -> str:
        if isinstance(node, Cond):
            column = self.source.columns.get(node.path.text) if node.path.column else None
            return self._column(column, node) if column else self._json(node)
        if isinstance(node, And):
            if not node.items:
                return "1"
            bounded = self._bounded_pairs(node) if self.keyed else set()
            self._bounded |= bounded
            sql = join("AND", [self.where(n) for n in node.items])
            self._bounded -= bounded
            return sql
        if isinstance(node, Or):
            return join("OR", [self.where(n) for n in node.items]) if node.items else "0"
        if isinstance(node, Not):
            return f"NOT coalesce({self.where(node.item)}, 0)"
        raise TypeError(node)  # pragma: no cover

    def _bounded_pairs(self, node: And) -> set[int]:
        """A keyed lower and upper bound of one type on one path bracket each other's type:
        ``key >= 1 AND key < 2`` holds only for numbers, so neither needs ``key < ''``."""
        sides: dict[tuple[tuple[str, ...], str], dict[bool, list[Cond]]] = {}
        for c in node.items:
            if (isinstance(c, Cond) and c.op in _SQL_OP and c.path.column is None
                    and c.path.segments in self.keyed and c.value.kind in ("num", "str")):
                lower = c.op in ("gt", "gte")
                sides.setdefault((c.path.segments, c.value.kind), {}).setdefault(lower, []).append(c)
        return {id(c) for both in sides.values() if len(both) == 2 for cs in both.values() for c in cs}

    # -- envelope columns --------------------------------------------------------------

    def _column(self, col: str, c: Cond) -> str:
        op, v = c.op, c.value
        keyed = c.path.segments in self.keyed
        if op == "eq":
            return f"{col} IS NULL" if v.kind == "null" else f"{col} = {self.param(v.py)}"
        if op == "in":
            values = [x.py for x in v if x.kind != "null"]
            parts = [f"{col} IN {self._list(values)}"] if values else []
            if len(values) < len(v):
                parts.append(f"{col} IS NULL")
            return "(" + " OR ".join(parts) + ")" if parts else "0"
        if op in _SQL_OP:
            return f"{col} {_SQL_OP[op]} {self.param(v.py)}"
        if op == "exists":
            return "1"  # envelope fields always exist
        if op == "startswith":
            return self._prefix(col, col, v, keyed, "1")
        if op == "contains":
            return f"coalesce(instr({col}, {self.param(v)}) > 0, 0)"
        if op == "regex":
            return self._regex(c.path.text, col, "1", v)
        raise QueryError(f"{c.path.text} does not support {op}")  # pragma: no cover - syntax rejects it

    # -- JSON content ------------------------------------------------------------------

    def _json(self, c: Cond) -> str:
        segs = c.path.segments
        src = self.source
        fan = [i for i in range(1, len(segs)) if src.may_be_array(segs[:i])]
        member = c.op not in ("exists", "size") and src.may_be_array(segs)
        if not fan:
            keyed = segs in self.keyed
            f = single(src.doc, segs) if keyed else Field(src.doc, literal(object_path(segs)))
            return self._leaf(f, c, member, keyed)
        return self._chain(c, segs, fan, member)

    def _chain(self, c: Cond, segs: tuple[str, ...], fan: list[int], member: bool) -> str:
        """Candidates through arrays: a CTE per level whose prefix may be an array."""
        bounds = [0, *fan, len(segs)]
        ctes: list[str] = []
        prev = None
        for k in range(len(bounds) - 1):
            lo, hi = bounds[k], bounds[k + 1]
            name = self._alias("c")
            if prev is None:
                body = f"SELECT {self.source.doc} -> {literal(object_path(segs[lo:hi]))}"
            else:
                seg, rest = segs[lo], segs[lo + 1:hi]
                e = self._alias("e")
                parts = [
                    f"SELECT j -> {literal(object_path(segs[lo:hi]))} FROM {prev} WHERE json_type(j) = 'object'",
                    f"SELECT {e}.value -> {literal(object_path(segs[lo:hi]))} FROM {prev}, json_each({prev}.j)"
                    f" AS {e} WHERE json_type({prev}.j) = 'array' AND {e}.type = 'object'",
                ]
                if is_index(seg):
                    parts.append(f"SELECT j -> {literal(object_path(rest, f'$[{int(seg)}]'))} FROM {prev}"
                                 " WHERE json_type(j) = 'array'")
                body = " UNION ALL ".join(parts)
            ctes.append(f"{name}(j) AS ({body})")
            prev = name
        leaf = self._leaf(Field(f"{prev}.j", "'$'"), c, member, keyed=False)
        return f"EXISTS (WITH {', '.join(ctes)} SELECT 1 FROM {prev} WHERE {prev}.j IS NOT NULL AND {leaf})"

    def _leaf(self, f: Field, c: Cond, member: bool, keyed: bool) -> str:
        pos = self._pos(f, c, keyed)
        if not member:
            return pos
        e = self._alias("m")
        inner = self._pos(Element(e), c, keyed=False)
        return f"({pos} OR ({f.t} = 'array' AND EXISTS (SELECT 1 FROM {f.each(e)} WHERE {inner})))"

    def _pos(self, f: Field | Element, c: Cond, keyed: bool) -> str:
        """The condition on one candidate value (no membership)."""
        op, v = c.op, c.value
        if op == "eq":
            return self._eq(f, v, keyed)
        if op == "in":
            return self._in(f, v, keyed)
        if op in _SQL_OP:
            return self._range(f, op, v, keyed, bracket=id(c) not in self._bounded)
        if op == "exists":
            return f"{f.t} IS NOT NULL"
        if op == "startswith":
            return self._prefix(f.key if keyed else f.v, f.v, v, keyed, f"{f.t} = 'text'")
        if op == "contains":
            return f"(instr({f.v}, {self.param(v)}) > 0 AND {f.t} = 'text')"
        if op == "regex":
            return self._regex(c.path.text, f.v, f"{f.t} = 'text'", v)
        if op == "size":
            return f"({f.alen} = {self.param(v)} AND {f.t} = 'array')"
        raise AssertionError(op)  # pragma: no cover

    def _eq(self, f: Field | Element, v: Value, keyed: bool) -> str:
        if v.kind == "null":
            return f"({f.key} IS NULL AND {f.t} = 'null')" if keyed else f"{f.t} = 'null'"
        if keyed:
            return f"{f.key} = {self.param(key_param(v.kind, v.py, v.text))}"
        if v.kind == "bool":
            return f"{f.t} = {'true' if v.py else 'false'!r}"
        if v.kind == "num":
            return f"({f.v} = {self.param(v.py)} AND {f.t} IN {NUMBER_TYPES})"
        if v.kind == "str":
            return f"({f.v} = {self.param(v.py)} AND {f.t} = 'text')"
        return f"({f.v} = {self.param(v.text)} AND {f.t} = {_JSON_TYPE[v.kind]})"

    def _in(self, f: Field | Element, values: tuple[Value, ...], keyed: bool) -> str:
        parts: list[str] = []
        if any(v.kind == "null" for v in values):
            parts.append(f"{f.t} = 'null'")
        if keyed:
            keyed_values = [v for v in values if v.kind != "null"]
            if keyed_values:
                parts.append(f"{f.key} IN {self._key_list(keyed_values)}")
            return "(" + " OR ".join(parts) + ")" if parts else "0"
        bools = sorted({v.py for v in values if v.kind == "bool"})
        if bools:
            parts.append(f"{f.t} IN ({', '.join(repr('true' if b else 'false') for b in bools)})")
        for kind, types in (("num", NUMBER_TYPES), ("str", "('text')"), ("arr", "('array')"), ("obj", "('object')")):
            group = [v.text if kind in ("arr", "obj") else v.py for v in values if v.kind == kind]
            if group:
                parts.append(f"({f.v} IN {self._list(group)} AND {f.t} IN {types})")
        return "(" + " OR ".join(parts) + ")" if parts else "0"

    def _list(self, items: list[Any]) -> str:
        """An IN list of numbers and strings: parameters, or one JSON array parameter when long."""
        if len(items) > _BIG_IN:
            return f"(SELECT value FROM json_each({self.param(orjson.dumps(items).decode())}))"
        return "(" + ", ".join(self.param(x) for x in items) + ")"

    def _key_list(self, values: list[Value]) -> str:
        """An IN list of sort keys (dialect.py): a long one is built in SQL from JSON array parameters,
        the keys of objects and arrays by the same expression as the index's."""
        if len(values) <= _BIG_IN:
            return "(" + ", ".join(self.param(key_param(v.kind, v.py, v.text)) for v in values) + ")"
        selects = []
        plain = [v.py for v in values if v.kind in ("num", "str")]
        if plain:
            selects.append(f"SELECT value FROM json_each({self.param(orjson.dumps(plain).decode())})")
        for kind, prefix in (("obj", 1), ("arr", 2)):
            texts = [v.text for v in values if v.kind == kind]
            if texts:
                selects.append(f"SELECT CAST(char({prefix})||value AS BLOB)"
                               f" FROM json_each({self.param(orjson.dumps(texts).decode())})")
        selects += [f"SELECT {self.param(key_param('bool', b, None))}"
                    for b in sorted({v.py for v in values if v.kind == "bool"})]
        return "(" + " UNION ALL ".join(selects) + ")"

    def _range(self, f: Field | Element, op: str, v: Value, keyed: bool, bracket: bool = True) -> str:
        sql_op = _SQL_OP[op]
        if v.kind == "bool":
            ok = [b for b in (False, True) if _bool_ok(op, b, v.py)]
            if not ok:
                return "0"
            if keyed:
                return f"{f.key} IN ({', '.join(self.param(key_param('bool', b, None)) for b in ok)})"
            return f"{f.t} IN ({', '.join(repr('true' if b else 'false') for b in ok)})"
        if keyed:
            key, p = f.key, self.param(v.py)
            if not bracket:
                return f"{key} {sql_op} {p}"
            if v.kind == "num":  # numbers sort below strings; NULL never compares true
                return f"({key} {sql_op} {p} AND {key} < {NUM_HIGH})" if op in ("gt", "gte") else f"{key} {sql_op} {p}"
            return (f"({key} {sql_op} {p} AND {key} < {STR_HIGH})" if op in ("gt", "gte")
                    else f"({key} {sql_op} {p} AND {key} >= {STR_LOW})")
        types = NUMBER_TYPES if v.kind == "num" else "('text')"
        return f"({f.v} {sql_op} {self.param(v.py)} AND {f.t} IN {types})"

    def _prefix(self, key: str, value: str, prefix: str, keyed: bool, guard: str) -> str:
        if keyed:  # a range on the key, which the index serves
            high = next_string(prefix)
            upper = f"{key} < {self.param(high)}" if high is not None else f"{key} < {STR_HIGH}"
            return f"({key} >= {self.param(prefix)} AND {upper})"
        return f"(substr({value}, 1, {len(prefix)}) = {self.param(prefix)} AND {guard})"

    def _regex(self, where: str, value: str, guard: str, v: tuple[str, int]) -> str:
        pattern, flags = v
        note = f"$regex on {where!r}: {regex.engine()}, per row"
        if note not in self.python:
            self.python.append(note)
        required = regex.required_text(pattern, flags)
        if required is not None:  # SQL rules out most rows before any Python runs
            guard += f" AND instr({value}, {self.param(required)}) > 0"
        return f"({guard} AND {regexp(self.param(pattern), self.param(flags), value)})"

    # -- sorting and projection ----------------------------------------------------------

    def sort_key(self, path: Path) -> str:
        column = self.source.columns.get(path.text) if path.column else None
        return column or single(self.source.doc, path.segments).key

    def order_by(self, keys: tuple[SortKey, ...], tiebreak: str | None) -> list[str]:
        terms = [self.sort_key(k.path) + (" DESC" if k.descending else "") for k in keys]
        if tiebreak is not None and not any(k.path.column == "id" for k in keys):
            terms.append(tiebreak)
        return terms

    def projection(self, path: Path) -> str:
        return single(self.source.doc, path.segments).json
