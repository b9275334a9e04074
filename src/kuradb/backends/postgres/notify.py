"""Commits announced and watched on PostgreSQL: the LISTEN thread, and the read cache's commit signal.

Every transaction that appends to a store's log sends ``NOTIFY`` on the store's
channel (rows.py, in the append's pipeline); the server delivers it to every
listening session when the transaction commits, on any host. ``Listener`` holds
one such session in a daemon thread and calls ``wake()`` for each notification
(and once more if its connection breaks, so watchers fall back on polling).

``CommitSignal`` is what kuradb/readcache.py asks "did anyone commit?". A
notification arrives a little after the COMMIT it announces returns to the
committer, so it cannot prove that no commit finished before a read: the strict
check is a round trip for the log's last position (one index probe). Caches
that allow staleness take the notifications instead (``ReadCache`` listens).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from psycopg import sql

from .errors import DRIVER_ERRORS


def listen(backend: Any, wake: Callable[[], Any]) -> Callable[[], None]:
    """Call ``wake()`` on every commit to ``backend``'s log by any process or host; returns what stops it."""
    conn = backend.connect()
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(backend.channel)))
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.is_set():
                for _ in conn.notifies(timeout=0.5, stop_after=1):
                    wake()
        except DRIVER_ERRORS:
            if not stop.is_set():
                wake()      # the connection broke: watchers fall back on polling
        finally:
            backend.forget(conn)

    thread = threading.Thread(target=run, name=f"kuradb-listen-{backend.schema}", daemon=True)
    thread.start()

    def stopper() -> None:
        stop.set()
        if thread is not threading.current_thread():
            thread.join(timeout=2)
    return stopper


class CommitSignal:
    """A private connection to the store, and a token that changes whenever anyone commits to its log."""

    header = None            # no shared memory to peek at: every check asks the server
    kind = "log-position"

    def __init__(self, backend: Any) -> None:
        self.reader = backend.private_reader()

    def version(self) -> Any:
        return self.reader.last()[0]
