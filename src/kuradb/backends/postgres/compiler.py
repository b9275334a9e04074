"""Filters, sorts and projections compiled to PostgreSQL SQL over a record's JSON (``log.body::jsonb``).

The same language and meaning as the SQLite backend's compiler.py, in
PostgreSQL's terms:

- a field is ``doc #> ARRAY[...]`` (``jsonb``, NULL when missing; a numeric
  segment indexes an array and names a member of an object, per row, as on SQLite);
- comparisons are type-strict: equality is ``jsonb`` equality (so ``"5"`` never
  equals ``5`` nor ``true`` ``1``; ``1`` equals ``1.0``), ranges test the JSON type
  and compare numbers as ``numeric`` and strings by code point (``COLLATE "C"``);
- where the path's value may be an array (the collection's catalog says so), a
  condition also matches an element; where a prefix may be, candidates fan out
  through arrays of objects level by level (one CTE per level);
- every negation is ``NOT coalesce(x, false)``: no match is never "unknown";
- a sort key is four expressions (type rank, number, string, JSON text) so that
  the documented total order holds: missing = null < numbers < strings < objects
  < arrays < false < true.

Parameters are psycopg's ``%s``; the SQL's own ``%`` are doubled. ``$regex``
runs in PostgreSQL's regular expression engine on a rewritten pattern (regex.py).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ... import errors
from ...errors import QueryError
from ...query import regex
from ...query.catalog import may_be_array
from ...query.indexes import IndexInfo
from ...query.syntax import And, Cond, Not, Or, Path, SortKey, Value, is_index, next_string
from .regex import to_are

Catalog = frozenset[tuple[str, ...]]
_SQL_OP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
MAX_PARAMS = 65535   # the PostgreSQL protocol's limit on parameters in one statement
BIG_IN = 100         # larger $in lists travel as one array parameter
# Envelope fields (query/syntax.py ENVELOPE) -> columns of log.
COLUMNS = {"id": "id", "type": "type", "version": "version", "created": "created", "modified": "at",
           "author": "author"}


def literal(text: str) -> str:
    """An SQL string literal, safe inside a statement with psycopg parameters."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def path_array(segments: tuple[str, ...]) -> str:
    """The ``text[]`` a ``#>`` takes: ``ARRAY['a','0']::text[]``."""
    return "ARRAY[" + ", ".join(literal(s) for s in segments) + "]::text[]" if segments else "'{}'::text[]"


def at(doc: str, segments: tuple[str, ...]) -> str:
    """The jsonb value at a path of single values (no fan-out), NULL when missing."""
    return f"({doc} #> {path_array(segments)})" if segments else doc


def typeof(x: str) -> str:
    return f"jsonb_typeof({x})"


def text_of(x: str) -> str:
    """A JSON string's text, compared by code point."""
    return f'(({x}) #>> \'{{}}\') COLLATE "C"'


def sort_terms(x: str, descending: bool = False, text: str | None = None) -> list[str]:
    """A value's sort key as ORDER BY terms (see the module docstring). ``text``: the same value as ``json``
    cut from a record's canonical JSON, by whose text objects and arrays sort, as on SQLite (else by
    jsonb's text, which orders object keys by length first and writes numbers its own way)."""
    d = " DESC" if descending else ""
    rank = (f"CASE {typeof(x)} WHEN 'number' THEN 1 WHEN 'string' THEN 2 WHEN 'object' THEN 3"
            f" WHEN 'array' THEN 4 WHEN 'boolean' THEN CASE WHEN {x} = 'true'::jsonb THEN 6 ELSE 5 END ELSE 0 END")
    return [rank + d,
            f"CASE WHEN {typeof(x)} = 'number' THEN ({x})::numeric END{d}",
            f"CASE WHEN {typeof(x)} = 'string' THEN {text_of(x)} END{d}",
            f"CASE WHEN {typeof(x)} IN ('object', 'array') THEN ({text or x})::text COLLATE \"C\" END{d}"]



def document(text: str, cast: str = "jsonb") -> str:
    """The jsonb (or json) of a JSON text. Neither can give U+0000 as text (PostgreSQL's text has no NUL), so
    a string's ``\\u0000`` reads as U+0001, the nearest character (the same for every query, index and value
    an aggregation computes; the record itself, its text, is untouched). Only a text holding the escape
    pays for the rewrite."""
    return (f"(CASE WHEN strpos({text}, '\\u0000') = 0 THEN {text} ELSE"
            f" regexp_replace({text}, '(?<!\\\\)((?:\\\\\\\\)*)\\\\u0000', '\\1\\\\u0001', 'g') END)::{cast}")


# -- the expressions of secondary indexes (indexes.py makes them; queries name them to use them) ----------

def row_field(segments: tuple[str, ...], row: str = "") -> str:
    """A content field of a ``log`` row (qualified by ``row``, like ``l.``) as indexes write it."""
    return at(document(f"{row}body"), segments)


def text_field(segments: tuple[str, ...], text: str) -> str:
    """A content field as ``json`` cut from the JSON text ``text`` (its spelling kept: canonical in a record)."""
    return at(document(text, "json"), segments)


def row_sort_terms(segments: tuple[str, ...], row: str = "") -> list[str]:
    """The sort terms of a content field of a ``log`` row, as non-unique indexes key it."""
    return [f"({t})" for t in sort_terms(row_field(segments, row), text=text_field(segments, f"{row}body"))]


def unique_key(x: str) -> str:
    """A unique index's key of a value: its jsonb (equal exactly when the language says so, but for the
    numbers inside objects and arrays: unique_keys), JSON null as SQL NULL (not constrained, as on SQLite)."""
    return f"(CASE WHEN {typeof(x)} = 'null' THEN NULL ELSE {x} END)"


def unique_keys(x: str) -> list[str]:
    """A unique index's key columns of a content field: unique_key, and an object's or array's text ('' for
    anything else), so that ``[1]`` and ``[1.0]`` are not duplicates (their canonical JSON differs)."""
    return [unique_key(x), f"coalesce({container_text(x)}, '')"]


def container_text(x: str) -> str:
    """An object's or array's jsonb text (NULL for anything else): equal exactly when their canonical
    JSON is, which jsonb equality is not (``1`` = ``1.0`` inside them too)."""
    return f"(CASE WHEN {typeof(x)} IN ('object', 'array') THEN ({x})::text END)"


def sql_name(coll: int, name: str) -> str:
    """The SQL name of a collection's index: a digest of its name (PostgreSQL cuts identifiers at 63
    bytes); the ``indexes`` table maps it back."""
    return f'"kura:{int(coll)}:{hashlib.sha256(name.encode()).hexdigest()[:24]}"'


def index_columns(info: IndexInfo, row: str = "") -> list[str]:
    """The key columns of an index. A unique one keys each content field by unique_key (exact equality,
    so the index refuses what SQLite's does); any other by its four sort terms, whose order is kuradb's
    total order: equality, ranges, prefixes and sorting all use it. Envelope fields are their columns."""
    cols: list[str] = []
    for path, desc in info.paths():
        if path.column:
            col = row + COLUMNS[path.column]
            cols.append(col + (" DESC" if desc else "") if info.unique else
                        col + (" DESC NULLS LAST" if desc else " NULLS FIRST"))
        elif info.unique:
            cols += [k + (" DESC" if desc else "") for k in unique_keys(row_field(path.segments, row))]
        else:
            cols += [t + (" DESC" if desc else "") for t in row_sort_terms(path.segments, row)]
    return cols


@dataclass(frozen=True)
class Source:
    """``doc``: SQL of the JSON document (jsonb); ``columns``: envelope field -> column; ``catalog``: paths
    that have held an array (None: unknown, so any may); ``row``: the qualifier of the ``log`` row the
    document is (``l.``), whose index expressions a query may use (None: not a log row); ``text``: the
    record's JSON text."""

    doc: str
    columns: Mapping[str, str] = field(default_factory=dict)
    catalog: Catalog | None = None
    row: str | None = None
    text: str | None = None     # the record's canonical JSON text, where the document is a record's

    def json(self, path: Path) -> str | None:
        """A content field as json cut from the record's text (None: not a record)."""
        return None if self.text is None else text_field(path.segments, self.text)

    def may_be_array(self, segments: tuple[str, ...]) -> bool:
        return may_be_array(self.catalog, segments)


class Compiler:
    """One statement's worth of SQL: ``where(node)``, ``order_by(keys)``; parameters in ``params``."""

    def __init__(self, source: Source, params: list[Any] | None = None, *,
                 keyed: frozenset[tuple[str, ...]] = frozenset(), index: IndexInfo | None = None,
                 sorted_by: IndexInfo | None = None) -> None:
        self.source = source
        self.params: list[Any] = [] if params is None else params
        self.python: list[str] = []
        self._aliases = 0
        # Conditions on ``keyed`` paths are also written over ``index``'s own expressions, and sort keys
        # on the fields of ``sorted_by`` as its columns, so that PostgreSQL can use the index.
        self.keyed = keyed if source.row is not None and index is not None else frozenset()
        self.index = index
        self.sorted_by = sorted_by if source.row is not None and sorted_by is not None else None

    def param(self, value: Any, cast: str = "") -> str:
        if len(self.params) >= MAX_PARAMS:
            raise QueryError(f"the query needs more than {MAX_PARAMS} values in one statement",
                             hint="many values of one field belong in one $in")
        self.params.append(value)
        return f"%s{cast}"

    def json_param(self, v: Value) -> str:
        """An operand as jsonb. Numbers and strings travel as themselves (so a cached statement can bind
        another value: kuradb/query/statements.py), objects and arrays as their canonical JSON."""
        if v.kind == "num":
            return f"to_jsonb({self.param(v.py)}::numeric)"
        if v.kind == "str":
            return f"to_jsonb({self.param(v.py)}::text)"
        text = v.text if v.kind in ("obj", "arr") else orjson.dumps(v.py).decode()
        return self.param(text, "::jsonb")

    def _alias(self, stem: str) -> str:
        self._aliases += 1
        return f"{stem}{self._aliases}"

    # -- the tree ----------------------------------------------------------------------

    def where(self, node: Any) -> str:
        if isinstance(node, Cond):
            column = self.source.columns.get(node.path.text) if node.path.column else None
            return self._column(column, node) if column else self._json(node)
        if isinstance(node, And):
            return "(" + " AND ".join(self.where(n) for n in node.items) + ")" if node.items else "true"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.where(n) for n in node.items) + ")" if node.items else "false"
        if isinstance(node, Not):
            return f"NOT coalesce({self.where(node.item)}, false)"
        raise TypeError(node)  # pragma: no cover

    # -- envelope columns --------------------------------------------------------------

    def _column(self, col: str, c: Cond) -> str:
        op, v = c.op, c.value
        if op == "eq":
            return f"{col} IS NULL" if v.kind == "null" else f"{col} = {self.param(v.py)}"
        if op == "in":
            values = [x.py for x in v if x.kind != "null"]
            parts = [f"{col} = ANY({self.param(values)})"] if values else []
            if len(values) < len(v):
                parts.append(f"{col} IS NULL")
            return "(" + " OR ".join(parts) + ")" if parts else "false"
        if op in _SQL_OP:
            return f"coalesce({col} {_SQL_OP[op]} {self.param(v.py)}, false)"
        if op == "exists":
            return "true"
        if op == "startswith":
            return f"coalesce(starts_with({col}, {self.param(v)}), false)"
        if op == "contains":
            return f"coalesce(strpos({col}, {self.param(v)}) > 0, false)"
        if op == "regex":
            return f"coalesce({self._regex(col, v)}, false)"
        raise _not_yet(f"{op} on {c.path.text}")

    # -- JSON content ------------------------------------------------------------------

    def _json(self, c: Cond) -> str:
        segs = c.path.segments
        src = self.source
        fan = [i for i in range(1, len(segs)) if src.may_be_array(segs[:i])]
        member = c.op not in ("exists", "size") and src.may_be_array(segs)
        if not fan:   # (parameters go in the order of the SQL text: the index's condition first)
            by_index = self._keyed(row_field(segs, src.row or ""), c) if segs in self.keyed and not member else None
            exact = self._leaf(at(src.doc, segs), c, member)
            return exact if by_index is None else f"({by_index} AND {exact})"
        return self._chain(c, segs, fan, member)

    # -- conditions an index serves (implied by the exact condition, which is kept beside them) --

    def _keyed(self, x: str, c: Cond) -> str | None:
        assert self.index is not None
        return self._on_unique_key(unique_key(x), c) if self.index.unique else self._on_sort_terms(x, c)

    def _on_unique_key(self, k: str, c: Cond) -> str | None:
        op, v = c.op, c.value
        if op == "eq" and v.kind == "null":
            return f"{k} IS NULL"
        if op == "eq" and v.kind in ("bool", "num", "str", "obj", "arr"):
            return f"{k} = {self.json_param(v)}"
        if op == "in" and v and all(x.kind in ("bool", "num", "str") for x in v):
            if len(v) > BIG_IN:
                return f"{k} = ANY({self.param([self._json_text(x) for x in v], '::jsonb[]')})"
            return f"{k} IN ({', '.join(self.json_param(x) for x in v)})"
        if op in _SQL_OP and v.kind == "num":   # jsonb orders strings < numbers < booleans
            bound = f"{k} {_SQL_OP[op]} {self.json_param(v)}"
            return f"({bound} AND {k} < 'false'::jsonb)" if op in ("gt", "gte") else bound
        return None   # strings compare by the database's collation in jsonb: not by code point

    def _on_sort_terms(self, x: str, c: Cond) -> str | None:
        rank, num, text, _ = sort_terms(x)
        op, v = c.op, c.value
        as_str = f"{rank} = 2 AND {num} IS NULL AND {text}"
        if op == "eq":
            if v.kind == "num":
                return f"({rank} = 1 AND {num} = {self.param(v.py, '::numeric')})"
            if v.kind == "str":
                return f"({as_str} = {self.param(v.py, '::text')})"
            ranks = {"null": 0, "obj": 3, "arr": 4}
            if v.kind == "bool":
                return f"{rank} = {6 if v.py else 5}"
            return f"{rank} = {ranks[v.kind]}" if v.kind in ranks else None
        for kind, rank_of, key, cast in (("num", f"{rank} = 1 AND ", num, "::numeric"), ("str", "", as_str, "::text")):
            if op == "in" and v and all(x.kind == kind for x in v):
                if len(v) > BIG_IN:
                    return f"({rank_of}{key} = ANY({self.param([x.py for x in v], cast + '[]')}))"
                return f"({rank_of}{key} IN ({', '.join(self.param(x.py, cast) for x in v)}))"
        if op in _SQL_OP and v.kind == "num":
            return f"({rank} = 1 AND {num} {_SQL_OP[op]} {self.param(v.py, '::numeric')})"
        if op in _SQL_OP and v.kind == "str":
            return f"({as_str} {_SQL_OP[op]} {self.param(v.py, '::text')})"
        if op == "startswith":
            high = next_string(v)
            lower = f"{as_str} >= {self.param(v, '::text')}"
            return f"({lower} AND {text} < {self.param(high, '::text')})" if high is not None else f"({lower})"
        return None

    def _chain(self, c: Cond, segs: tuple[str, ...], fan: list[int], member: bool) -> str:
        """Candidates through arrays: a CTE per level whose prefix may be an array."""
        bounds = [0, *fan, len(segs)]
        ctes: list[str] = []
        prev = None
        for k in range(len(bounds) - 1):
            lo, hi = bounds[k], bounds[k + 1]
            name = self._alias("c")
            if prev is None:
                body = f"SELECT {at(self.source.doc, segs[lo:hi])}"
            else:
                seg, rest = segs[lo], segs[lo + 1:hi]
                e = self._alias("e")
                parts = [f"SELECT {at('j', segs[lo:hi])} FROM {prev} WHERE jsonb_typeof(j) = 'object'",
                         f"SELECT {at(e + '.v', segs[lo:hi])} FROM {prev},"
                         f" jsonb_array_elements(CASE WHEN jsonb_typeof(j) = 'array' THEN j END) AS {e}(v)"
                         f" WHERE jsonb_typeof({e}.v) = 'object'"]
                if is_index(seg):
                    parts.append(f"SELECT {at('j', (seg, *rest))} FROM {prev} WHERE jsonb_typeof(j) = 'array'")
                body = " UNION ALL ".join(parts)
            ctes.append(f"{name}(j) AS ({body})")
            prev = name
        leaf = self._leaf(f"{prev}.j", c, member)
        return f"EXISTS (WITH {', '.join(ctes)} SELECT 1 FROM {prev} WHERE {prev}.j IS NOT NULL AND {leaf})"

    def _leaf(self, x: str, c: Cond, member: bool) -> str:
        pos = self._pos(x, c)
        if not member:
            return f"coalesce({pos}, false)"
        e = self._alias("m")
        inner = self._pos(f"{e}.v", c)
        return (f"coalesce({pos} OR (jsonb_typeof({x}) = 'array' AND EXISTS (SELECT 1 FROM"
                f" jsonb_array_elements(CASE WHEN jsonb_typeof({x}) = 'array' THEN {x} END) AS {e}(v)"
                f" WHERE coalesce({inner}, false))), false)")

    def _pos(self, x: str, c: Cond) -> str:
        """The condition on one candidate value ``x`` (jsonb; no membership). May be NULL for no."""
        op, v = c.op, c.value
        if op == "eq":
            return self._eq(x, v)
        if op == "in":
            if len(v) > BIG_IN:
                return self._big_in(x, v)
            parts = [self._eq(x, item) for item in v]
            return "(" + " OR ".join(parts) + ")" if parts else "false"
        if op in _SQL_OP:
            return self._range(x, op, v)
        if op == "exists":
            return f"({x} IS NOT NULL)"
        if op == "startswith":
            return f"({typeof(x)} = 'string' AND starts_with({x} #>> '{{}}', {self.param(v)}))"
        if op == "contains":
            return f"({typeof(x)} = 'string' AND strpos({x} #>> '{{}}', {self.param(v)}) > 0)"
        if op == "size":
            return f"({typeof(x)} = 'array' AND jsonb_array_length(CASE WHEN {typeof(x)} = 'array'" \
                   f" THEN {x} END) = {self.param(v)})"
        if op == "regex":
            text = f"({x} #>> '{{}}')"
            return f"({typeof(x)} = 'string' AND {self._regex(text, v)})"
        raise _not_yet(f"${op}")

    def _regex(self, text: str, v: tuple[str, int]) -> str:
        """A $regex on an SQL text: PostgreSQL's own engine, given the pattern rewritten to mean exactly
        what kuradb's does (regex.py), under COLLATE "C" (ASCII word characters for \\b); the literal
        text every match holds (query/regex.py) rules most rows out first."""
        pattern, flags = v
        required = regex.required_text(pattern, flags)
        first = "" if required is None else f"strpos({text}, {self.param(required)}) > 0 AND "
        return f"({first}({text}) COLLATE \"C\" ~ {self.param(to_are(pattern, flags))})"

    def _big_in(self, x: str, values: tuple[Value, ...]) -> str:
        """A long $in: its values as one ``jsonb[]`` parameter (jsonb equality is the language's)."""
        parts = [f"({typeof(x)} = 'null')"] if any(v.kind == "null" for v in values) else []
        texts = [self._json_text(v) for v in values if v.kind in ("bool", "num", "str")]
        if texts:
            parts.append(f"({x} = ANY({self.param(texts, '::jsonb[]')}))")
        containers = [self._json_text(v) for v in values if v.kind in ("obj", "arr")]
        if containers:
            parts.append(f"({container_text(x)} = ANY(ARRAY(SELECT t::text FROM"
                         f" unnest({self.param(containers, '::jsonb[]')}) AS t)))")
        return "(" + " OR ".join(parts) + ")"

    @staticmethod
    def _json_text(v: Value) -> str:
        if v.kind in ("obj", "arr"):
            return str(v.text)
        if v.kind not in ("bool", "num", "str"):
            raise _not_yet(f"comparing content with a {v.kind} value")
        return orjson.dumps(v.py).decode()   # a Hole (query/statements.py) raises: compiled per query

    def _eq(self, x: str, v: Value) -> str:
        if v.kind == "null":
            return f"({typeof(x)} = 'null')"
        if v.kind not in ("bool", "num", "str", "obj", "arr"):
            raise _not_yet(f"comparing content with a {v.kind} value")
        if v.kind in ("obj", "arr"):   # by their text: {"a": 1} is not {"a": 1.0} (the canonical JSON differs)
            return f"({typeof(x)} = {'object' if v.kind == 'obj' else 'array'!r} AND ({x})::text =" \
                   f" ({self.json_param(v)})::text)"
        return f"({x} = {self.json_param(v)})"

    def _range(self, x: str, op: str, v: Value) -> str:
        sql_op = _SQL_OP[op]
        if v.kind == "bool":
            ok = [b for b in (False, True) if {"gt": b > v.py, "gte": b >= v.py, "lt": b < v.py,
                                               "lte": b <= v.py}[op]]
            if not ok:
                return "false"
            return "(" + " OR ".join(f"{x} = '{'true' if b else 'false'}'::jsonb" for b in ok) + ")"
        if v.kind == "num":
            return (f"({typeof(x)} = 'number' AND (CASE WHEN {typeof(x)} = 'number' THEN ({x})::numeric END)"
                    f" {sql_op} {self.param(v.py)})")
        if v.kind == "str":
            return f"({typeof(x)} = 'string' AND {text_of(x)} {sql_op} {self.param(v.py)})"
        raise QueryError(f"a range compares numbers, strings or booleans, not a {v.kind}")  # syntax rejects it

    # -- sorting and projection ----------------------------------------------------------

    def order_by(self, keys: tuple[SortKey, ...], tiebreak: str | None) -> list[str]:
        terms: list[str] = []
        for k in keys:
            column = self.source.columns.get(k.path.text) if k.path.column else None
            if column:   # NULL (no type, no author) is the smallest, as on SQLite
                terms.append(column + (" DESC NULLS LAST" if k.descending else " NULLS FIRST"))
            elif self.sorted_by is not None and k.path.text in {f.lstrip("-") for f in self.sorted_by.fields}:
                terms += row_sort_terms(k.path.segments, self.source.row or "")
                if k.descending:
                    terms[-4:] = [t + " DESC" for t in terms[-4:]]
            else:
                terms += sort_terms(at(self.source.doc, k.path.segments), k.descending, self.source.json(k.path))
        if tiebreak is not None and not any(k.path.column == "id" for k in keys):
            terms.append(tiebreak)
        return terms

    def projection(self, path: Path) -> str:
        return f"({at(self.source.doc, path.segments)})::text"


def _not_yet(what: str) -> errors.KuraError:
    return errors.KuraError(f"{what} is not available in queries on PostgreSQL stores yet (issue #15)",
                            hint="use a SQLite store (a directory) for it meanwhile")
