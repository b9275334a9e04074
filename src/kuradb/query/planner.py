"""Choosing the index a query runs on.

SQLite's own planner, without statistics, prefers the ``(coll, id)`` index for
any range or sort and then runs 3-5x slower than a scan (measured:
docs/DECISIONS.md), so kuradb decides and the dialect forces its choice. The
rules, like early MongoDB's:

- A condition is *sargable* when it is a top-level conjunct, its operator is
  equality, ``$in`` (without null), a range or ``$startswith``, and no part of
  its path has held an array (the catalog), so the index key is the value.
- An index scores 10 per leading field with an equality (or ``$in``), 5 for a
  range on the field after them, 2 if it also returns rows in the requested
  order, 100 more if it is unique and fully matched by equalities.
- The highest score wins; with nothing sargable, the ``_id`` index (which walks
  the collection in the default ``_id`` order) or an index matching the sort.
"""
from __future__ import annotations

from dataclasses import dataclass

from .catalog import may_be_array
from .indexes import ID_INDEX, IndexInfo, Meta
from .syntax import FALSE, And, Cond, Node, SortKey

_SARGABLE = ("eq", "in", "gt", "gte", "lt", "lte", "startswith")


@dataclass(frozen=True)
class Plan:
    index: IndexInfo                   # ID_INDEX: the collection's own (coll, id) index, or none at all
    keyed: frozenset[tuple[str, ...]]  # paths compiled with the index's key expression
    serves: tuple[str, ...]            # "filter" and/or "sort"


def sargable(node: Node, meta: Meta) -> dict[str, list[Cond]]:
    conjuncts = node.items if isinstance(node, And) else (node,)
    out: dict[str, list[Cond]] = {}
    for c in conjuncts:
        if not isinstance(c, Cond) or c.op not in _SARGABLE:
            continue
        if c.op == "in" and any(v.kind == "null" for v in c.value):
            continue  # with null: an OR the index cannot serve
        segs = c.path.segments
        if c.path.column is None and any(may_be_array(meta.catalog, segs[:i]) for i in range(1, len(segs) + 1)):
            continue  # may be an array somewhere along the path: the key is not the value
        out.setdefault(c.path.text, []).append(c)
    return out


def _serves_sort(ix: IndexInfo, rest: list[tuple[str, bool]], sort: tuple[SortKey, ...]) -> bool:
    """Whether the index, past its equality-fixed fields, returns rows in ``sort`` order."""
    if not sort:  # the default order is _id: the _id index, or a non-unique index's trailing id column
        return ix is ID_INDEX or (not rest and not ix.unique)
    if len(rest) < len(sort):
        return False
    pairs = list(zip(rest, sort, strict=False))
    if any(name != k.path.text for (name, _), k in pairs):
        return False
    return len({desc != k.descending for (_, desc), k in pairs}) == 1  # all alike, or all reversed


def choose(node: Node, sort: tuple[SortKey, ...], meta: Meta) -> Plan:
    """The index for ``node`` ordered by ``sort`` (empty: the default _id order)."""
    if node == FALSE:  # no rows: only the _id index plans a constant-false WHERE (its coll= term)
        return Plan(ID_INDEX, frozenset(), ())
    conds = sargable(node, meta)
    if len(sort) == 1 and sort[0].path.column == "id" and not sort[0].descending:
        sort = ()
    best: tuple[int, IndexInfo, list[str], bool] | None = None
    for ix in (ID_INDEX, *meta.btree):
        fields = [(f.lstrip("-"), f.startswith("-")) for f in ix.fields]
        used: list[str] = []
        eqs, pure, ranged = 0, True, False
        for name, _ in fields:
            cs = conds.get(name)
            if not cs:
                break
            used.append(name)
            if any(c.op in ("eq", "in") for c in cs):
                eqs += 1
                pure = pure and any(c.op == "eq" for c in cs)
                continue
            ranged = True
            break
        exhausted = eqs == len(fields)
        if ix.unique and exhausted and pure:
            in_order = True  # one row at most
        else:
            in_order = pure and _serves_sort(ix, fields[eqs:], sort)
        score = 10 * eqs + (5 if ranged else 0) + (2 if in_order else 0) + (100 if ix.unique and exhausted else 0)
        if best is None or score > best[0]:
            best = (score, ix, used, in_order)
    assert best is not None
    _, ix, used, in_order = best
    serves = tuple(s for s, ok in (("filter", bool(used)), ("sort", in_order)) if ok)
    return Plan(ix, frozenset(tuple(u.split(".")) for u in used), serves)
