"""The PostgreSQL dialect (kuradb/backend.py's Dialect): queries over the log's JSON, not written yet.

Records, history, transactions, the change log, blobs and the audit chain work
on PostgreSQL stores; compiling the query language to PostgreSQL (``jsonb``
expressions, expression and GIN indexes, ``tsvector`` text search) is the
next step of issue #15. Until then each query operation raises a KuraError
saying so, rather than running something that could differ from SQLite.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from ... import errors


def _not_yet(what: str) -> NoReturn:
    raise errors.KuraError(f"{what} is not available on PostgreSQL stores yet (issue #15)",
                           hint="use a SQLite store (a directory) for queries and indexes meanwhile")


class PostgresDialect:
    name = "postgresql"

    def find(self, coll: int, meta: Any, spec: Any, what: str = "records") -> Any:
        _not_yet("find/count/exists")

    def explain(self, reader: Any, st: Any) -> list[str]:
        _not_yet("explain")

    def aggregate(self, reader: Any, coll: int, meta: Any, stages: list[Any], docs: Any) -> list[dict[str, Any]]:
        _not_yet("aggregate")

    def search(self, reader: Any, target: Any, meta: Any, terms: Any, node: Any, limit: int) -> list[Any]:
        _not_yet("text search")

    def build_index(self, tx: Any, coll: int, info: Any, progress: Callable[[float], None] | None = None) -> None:
        _not_yet("indexes")

    def drop_index(self, tx: Any, coll: int, info: Any) -> None:
        _not_yet("indexes")

    def rebuild_index(self, tx: Any, coll: int, info: Any) -> None:
        _not_yet("indexes")

    def refusing_index(self, message: str, coll: int) -> str | None:
        return None

    def holder(self, tx: Any, coll: int, info: Any, id: str, content: Any, envelope: dict[str, Any]) -> str | None:
        return None

    def sharing(self, tx: Any, coll: int, info: Any) -> str | None:
        return None

    def index_problems(self, reader: Any) -> list[str]:
        return []
