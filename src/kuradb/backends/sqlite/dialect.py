"""The SQLite dialect: how the query language compiles and runs for SQLite (kuradb/backend.py's Dialect).

It is the one object the query engine, the write path and repair talk to about
SQL: find/count/exists statements and their plans (queries.py, compiler.py,
sql.py), aggregation (aggregate.py), text search (fts.py) and the objects of
secondary and text indexes (indexes.py).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from ...query.engine import Spec, Statement
from ...query.fulltext import Hit, Terms
from ...query.indexes import IndexInfo, Meta
from ...query.syntax import Node
from . import aggregate, indexes, queries
from .errors import READ_ERRORS

F = TypeVar("F", bound=Callable[..., Any])


def _on(fn: F) -> F:
    """A dialect operation on a Reader or Tx (its first argument): driver errors come out translated."""
    @functools.wraps(fn)
    def inner(self: Any, rows: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, rows, *args, **kwargs)
        except READ_ERRORS as e:
            raise rows.backend.failed(e, fn.__name__.replace("_", " ")) from e
    return inner  # type: ignore[return-value]


class SQLiteDialect:
    name = "sqlite"

    def find(self, coll: int, meta: Meta, spec: Spec, what: str = "records") -> Statement:
        return queries.find(coll, meta, spec, what)

    @_on
    def explain(self, reader: Any, st: Statement) -> list[str]:
        return queries.explain(reader, st)

    @_on
    def aggregate(self, reader: Any, coll: int, meta: Meta, stages: list[Any],
                  docs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return aggregate.run(reader, coll, meta, stages, docs)

    @_on
    def search(self, reader: Any, target: Any, meta: Meta, terms: Terms, node: Node, limit: int) -> list[Hit]:
        return queries.search(reader, target.name, target.coll, meta, terms, node, limit)

    @_on
    def build_index(self, tx: Any, coll: int, info: IndexInfo,
                    progress: Callable[[float], None] | None = None) -> None:
        indexes.build(tx.cur, coll, info, progress)

    @_on
    def drop_index(self, tx: Any, coll: int, info: IndexInfo) -> None:
        indexes.drop(tx.cur, coll, info)

    @_on
    def rebuild_index(self, tx: Any, coll: int, info: IndexInfo) -> None:
        indexes.rebuild(tx.cur, coll, info)

    def refusing_index(self, message: str, coll: int, tx: Any = None) -> str | None:
        return indexes.refusing(message, coll)

    @_on
    def holder(self, tx: Any, coll: int, info: IndexInfo, id: str, content: Any,
               envelope: dict[str, Any]) -> str | None:
        return indexes.holder(tx.cur, coll, info, id, content, envelope)

    @_on
    def sharing(self, tx: Any, coll: int, info: IndexInfo) -> str | None:
        return indexes.sharing(tx.cur, coll, info)

    @_on
    def index_problems(self, reader: Any) -> list[str]:
        return indexes.problems(reader.cur)
