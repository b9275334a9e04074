"""The start of a write transaction sent with its first statement: BEGIN, the store's lock and the log's end.

A write transaction on PostgreSQL begins on the server only when it first
needs to: its cursor (``TxCursor``) sends ``BEGIN``, ``pg_advisory_xact_lock``
and the read of where the log ends (with the catalog stamp, rows.py) in one
pipeline with the transaction's first statement — for a put, the read of the
record's head — so that the start costs no round trip of its own. Anything that
needs the start without a statement of its own (the log's end, a server-side
cursor, ``executemany``) asks ``Transaction.ready()``. A transaction that never
ran a statement never began, and its end sends nothing.
"""
from __future__ import annotations

from typing import Any

import psycopg

# The transaction's start, after BEGIN and the lock: the log's last entry and the catalog stamp.
START = ("SELECT l.position, l.hash, (SELECT last_value FROM catalog_stamp) FROM (SELECT 1) AS one"
         " LEFT JOIN LATERAL (SELECT position, hash FROM log ORDER BY position DESC LIMIT 1) AS l ON true")


class TxCursor(psycopg.Cursor[Any]):
    """A write transaction's cursor; ``pending`` is its Transaction until the transaction has begun."""

    pending: Any = None

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                binary: bool | None = None) -> TxCursor:
        tx = self.pending
        if tx is None:
            super().execute(query, params, prepare=prepare, binary=binary)
            return self
        self.pending = None
        with self.connection.pipeline():
            start = tx.send_start()
            super().execute(query, params, prepare=prepare, binary=binary)
        tx.started(start.fetchone())
        return self

    def executemany(self, query: Any, params_seq: Any, *, returning: bool = False) -> None:
        if self.pending is not None:
            self.pending.ready()
        super().executemany(query, params_seq, returning=returning)


def send_start(conn: psycopg.Connection[Any], lock_key: int) -> psycopg.Cursor[Any]:
    """Queue (in the connection's pipeline) or run the transaction's start; the cursor that reads its row."""
    conn.execute("BEGIN", prepare=False)
    conn.execute(f"SELECT pg_advisory_xact_lock({int(lock_key)})", prepare=False)
    cur = psycopg.Cursor(conn)
    cur.execute(START)
    return cur
