"""Compiled statements cached by a query's shape: the strings and numbers it compares with become parameters.

Planning a filter and writing its SQL costs more than running it when few rows
match (about 23 us of a 50 us ``find`` on a range with a sort, against 6 us for
the statement itself). Two queries that differ only in the strings, numbers and
times they compare with compile to the same SQL with other parameters, so a
statement is compiled once per shape:

- ``shape`` names a Spec without those values (its key) and lists them;
- on a miss the dialect compiles a template of the Spec, each value replaced by
  a ``Hole``, and the statement keeps the holes among its parameters;
- ``bind`` puts this query's values where the holes are.

A template the dialect cannot compile without looking at a value (a long ``$in``
list travels as one JSON parameter, built from the values) raises on the hole,
or leaves a hole out of the parameters; that shape is compiled per query.
A statement also depends on the collection's catalog and indexes: an entry is
used only with the very Meta it was compiled against (query/indexes.py caches
a Meta by the rows it was read from, so a changed catalog is a new Meta).
"""
from __future__ import annotations

from typing import Any

from .indexes import Meta
from .syntax import And, Cond, Node, Not, Or, Value

_HOLE_KINDS = frozenset(("num", "str", "time"))
_VALUE_OPS = frozenset(("eq", "gt", "gte", "lt", "lte"))
MAX_ENTRIES = 512


class Inlined(Exception):
    """A hole was written into SQL text (or shown in a message): the shape cannot be cached."""


class Hole:
    """The place of a query's ``index``-th value in a template. It has no text and no order:
    a compiler that inlines or compares it raises, and the shape is compiled per query."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __eq__(self, other: object) -> bool:
        return type(other) is Hole and other.index == self.index

    def __hash__(self) -> int:
        return hash((Hole, self.index))

    def __repr__(self) -> str:
        raise Inlined(self.index)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        raise Inlined(self.index)


def _value_key(v: Value) -> Any:
    return v.kind if v.kind in _HOLE_KINDS else (v.kind, v.py if v.text is None else v.text)


def _key(node: Node, values: list[Any]) -> Any:
    """``node`` without its hole values (appended to ``values``, in the order ``_template`` numbers them)."""
    if isinstance(node, Cond):
        op, v = node.op, node.value
        if op in _VALUE_OPS:
            if v.kind in _HOLE_KINDS:
                values.append(v.py)
            return node.path, op, _value_key(v)
        if op == "in":
            values.extend(x.py for x in v if x.kind in _HOLE_KINDS)
            return node.path, op, tuple(_value_key(x) for x in v)
        return node.path, op, v
    if isinstance(node, (And, Or)):
        return type(node), tuple(_key(n, values) for n in node.items)
    return Not, _key(node.item, values)


def _hole(v: Value, holes: list[int]) -> Value:
    if v.kind not in _HOLE_KINDS:
        return v
    holes[0] += 1
    return Value(v.kind, Hole(holes[0] - 1))


def _template(node: Node, holes: list[int]) -> Node:
    if isinstance(node, Cond):
        if node.op in _VALUE_OPS:
            return Cond(node.path, node.op, _hole(node.value, holes))
        if node.op == "in":
            return Cond(node.path, "in", tuple(_hole(x, holes) for x in node.value))
        return node
    if isinstance(node, And):
        return And(tuple(_template(n, holes) for n in node.items))
    if isinstance(node, Or):
        return Or(tuple(_template(n, holes) for n in node.items))
    return Not(_template(node.item, holes))


class StatementCache:
    """Statements by (dialect, collection, what, shape); ``compile(spec)`` makes one from a Spec."""

    def __init__(self) -> None:
        self._entries: dict[Any, tuple[Meta, Any] | tuple[Meta, None]] = {}

    def statement(self, dialect: Any, coll: int, meta: Meta, spec: Any, what: str) -> Any:
        """The statement ``dialect.find`` makes of ``spec``, from the cache when its shape was seen."""
        values: list[Any] = []
        paged = spec.limit is not None or bool(spec.skip)
        key = (dialect.name, coll, what, _key(spec.filter, values), spec.sort, spec.limit is None, paged,
               spec.fields)
        if paged:
            if spec.limit is not None:
                values.append(spec.limit)
            values.append(spec.skip)
        entry = self._entries.get(key)
        if entry is None or entry[0] is not meta:
            entry = (meta, self._compile(dialect, coll, meta, spec, what, len(values)))
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = entry
        st = entry[1]
        if st is None:  # this shape depends on its values: compiled per query
            return dialect.find(coll, meta, spec, what)
        return type(st)(st.sql, [values[p.index] if type(p) is Hole else p for p in st.params], st.plan, st.python)

    @staticmethod
    def _compile(dialect: Any, coll: int, meta: Meta, spec: Any, what: str, count: int) -> Any:
        """The template's statement, or None when the dialect looked at a value to compile it."""
        holes = [0]
        node = _template(spec.filter, holes)
        limit = skip = None
        if spec.limit is not None or spec.skip:
            limit = None if spec.limit is None else Hole(holes[0])
            holes[0] += limit is not None
            skip = Hole(holes[0])
            holes[0] += 1
        assert holes[0] == count
        template = type(spec)(node, spec.sort, limit, skip if skip is not None else 0, spec.fields)
        try:
            st = dialect.find(coll, meta, template, what)
        except Exception:  # Inlined, a TypeError of a hole, or the query's own error (the real compile reports it)
            return None
        used = {p.index for p in st.params if type(p) is Hole}
        return st if len(used) == count else None


CACHE = StatementCache()
