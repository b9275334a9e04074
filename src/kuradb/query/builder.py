"""The query builder: ``coll.query().where("score", ">=", 3).order_by("-score").limit(10).all()``.

A ``Query`` is immutable: every method returns a new one, so a base query can
be shared and refined. It builds the same filter dicts ``find`` takes.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import QueryError
from .syntax import check_count

if TYPE_CHECKING:
    from ..collection import Collection
    from ..records import Record
    from .engine import Explain

_MISSING: Any = object()
OPERATORS = {
    "==": "$eq", "=": "$eq", "eq": "$eq", "!=": "$ne", "ne": "$ne", ">": "$gt", "gt": "$gt",
    ">=": "$gte", "gte": "$gte", "<": "$lt", "lt": "$lt", "<=": "$lte", "lte": "$lte",
    "in": "$in", "not in": "$nin", "nin": "$nin", "contains": "$contains", "startswith": "$startswith",
    "regex": "$regex", "exists": "$exists", "size": "$size",
}


class Query:
    __slots__ = ("_coll", "_filters", "_sort", "_limit", "_skip", "_fields")

    def __init__(self, collection: Collection, filters: tuple[dict[str, Any], ...] = (), sort: tuple[Any, ...] = (),
                 limit: int | None = None, skip: int = 0, fields: tuple[str, ...] | None = None) -> None:
        self._coll = collection
        self._filters = filters
        self._sort = sort
        self._limit = limit
        self._skip = skip
        self._fields = fields

    def _with(self, **changes: Any) -> Query:
        values = {k: getattr(self, "_" + k) for k in ("filters", "sort", "limit", "skip", "fields")}
        values.update(changes)
        return Query(self._coll, **values)

    # -- building ----------------------------------------------------------------------

    def where(self, path_or_filter: str | dict[str, Any], op: str = _MISSING, value: Any = _MISSING) -> Query:
        """``where("score", ">=", 3)`` or ``where({"tags": "a"})``; several ``where`` must all hold."""
        if isinstance(path_or_filter, dict) and op is _MISSING:
            return self._with(filters=(*self._filters, path_or_filter))
        if not isinstance(path_or_filter, str) or op is _MISSING or value is _MISSING:
            raise QueryError("where() takes a filter dict, or a path, an operator and a value:"
                             " where('score', '>=', 3)")
        name = (op if op.startswith("$") else OPERATORS.get(op.lower())) if isinstance(op, str) else None
        if name is None:
            raise QueryError(f"where(): unknown operator {op!r}", hint=f"operators are {', '.join(OPERATORS)}")
        return self._with(filters=(*self._filters, {path_or_filter: {name: value}}))

    def order_by(self, *keys: str) -> Query:
        """``order_by("owner", "-score")``; replaces any earlier order."""
        if not keys:
            raise QueryError("order_by() needs at least one field")
        return self._with(sort=keys)

    def limit(self, n: int) -> Query:
        return self._with(limit=check_count(n, "limit"))

    def skip(self, n: int) -> Query:
        return self._with(skip=check_count(n, "skip", allow_none=False))

    def select(self, *fields: str) -> Query:
        """Keep only these content fields in the results."""
        if not fields:
            raise QueryError("select() needs at least one field")
        return self._with(fields=fields)

    @property
    def filter(self) -> dict[str, Any] | None:
        """The filter this query runs, as ``find`` would take it."""
        if not self._filters:
            return None
        return self._filters[0] if len(self._filters) == 1 else {"$and": list(self._filters)}

    def _args(self, *, limit: Any = _MISSING) -> dict[str, Any]:
        return {"sort": list(self._sort) or None, "limit": self._limit if limit is _MISSING else limit,
                "skip": self._skip, "fields": list(self._fields) if self._fields is not None else None}

    # -- running -----------------------------------------------------------------------

    def all(self) -> list[Record]:
        return self._coll.find(self.filter, **self._args())

    def first(self) -> Record | None:
        found = self._coll.find(self.filter, **self._args(limit=1))
        return found[0] if found else None

    def count(self) -> int:
        """How many records match (``limit`` and ``skip`` apply)."""
        n = self._coll.count(self.filter)
        n = max(0, n - self._skip)
        return n if self._limit is None else min(n, self._limit)

    def exists(self) -> bool:
        return self.first() is not None

    def explain(self) -> Explain:
        return self._coll.explain(self.filter, **self._args())

    def scan(self, batch_size: int = 1000) -> Iterator[Record]:
        return self._coll.scan(self.filter, sort=list(self._sort) or None, batch_size=batch_size,
                               fields=list(self._fields) if self._fields is not None else None)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.all())

    def __repr__(self) -> str:
        return (f"<Query {self._coll.name} filter={self.filter!r} sort={list(self._sort)!r}"
                f" limit={self._limit!r} skip={self._skip!r}>")
