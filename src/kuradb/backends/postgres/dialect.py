"""The PostgreSQL dialect (kuradb/backend.py's Dialect): find, count and exists over the log's JSON.

Filters, sorts and projections compile to SQL over ``jsonb`` (compiler.py,
queries.py), ``$regex`` to PostgreSQL's regular expressions (regex.py),
aggregation to one statement of CTEs (aggregate.py), text search over FTS5's
tokens ranked by BM25 (fts.py); secondary indexes are expression indexes
(indexes.py) that queries name.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import aggregate, fts, indexes, queries


class PostgresDialect:
    name = "postgresql"

    def find(self, coll: int, meta: Any, spec: Any, what: str = "records") -> Any:
        return queries.find(coll, meta, spec, what)

    def explain(self, reader: Any, st: Any) -> list[str]:
        return queries.explain(reader, st)

    def aggregate(self, reader: Any, coll: int, meta: Any, stages: list[Any], docs: Any) -> list[dict[str, Any]]:
        return aggregate.run(reader, coll, meta, stages, docs)

    def search(self, reader: Any, target: Any, meta: Any, terms: Any, node: Any, limit: int) -> list[Any]:
        return fts.search(reader, target.name, target.coll, meta, terms, node, limit)

    def build_index(self, tx: Any, coll: int, info: Any, progress: Callable[[float], None] | None = None) -> None:
        indexes.build(tx.cur, coll, info, progress)
        tx.text_indexes = None   # the next append reads which collections have a text index again

    def drop_index(self, tx: Any, coll: int, info: Any) -> None:
        indexes.drop(tx.cur, coll, info)
        tx.text_indexes = None

    def rebuild_index(self, tx: Any, coll: int, info: Any) -> None:
        indexes.drop(tx.cur, coll, info)
        indexes.build(tx.cur, coll, info)
        tx.text_indexes = None

    def refusing_index(self, message: str, coll: int, tx: Any = None) -> str | None:
        return None if tx is None else indexes.refusing(tx.cur, message, coll)

    def holder(self, tx: Any, coll: int, info: Any, id: str, content: Any, envelope: dict[str, Any]) -> str | None:
        return indexes.holder(tx.cur, coll, info, id, content, envelope)

    def sharing(self, tx: Any, coll: int, info: Any) -> str | None:
        return indexes.sharing(tx.cur, coll, info)

    def index_problems(self, reader: Any) -> list[str]:
        return indexes.problems(reader.cur)
