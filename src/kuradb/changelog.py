"""ChangeLog: the one writer of the change log (positions, times, the audit chain, the rows).

Every change (a record version, a purge, a blob, collection options, an index
definition, a drop; later vectors and events) reaches the log through
``ChangeLog.append(tx, entries)`` inside the write's own transaction. Positions
are the previous entry's plus one, assigned while the transaction holds the
backend's write lock, so they are gapless and in commit order whatever the
number of writers, threads or processes. Each entry is hash-chained to the one
before (kuradb/audit.py). Backup replay writes the entries it restores through
``replay``, which checks they continue the log exactly.
"""
from __future__ import annotations

import time

from . import audit, errors
from .backend import NewEntry, Tx


def now_us() -> int:
    return time.time_ns() // 1000


class ChangeLog:
    """Appends to one store's log. ``author`` is the store's default actor for entries without one."""

    def __init__(self, author: str | None = None) -> None:
        self.author = author

    def next_position(self, tx: Tx) -> int:
        """The position the next entry appended in ``tx`` will get (for erasures that name their eraser)."""
        return (tx.log_head or tx.last())[0] + 1

    def append(self, tx: Tx, entries: list[NewEntry], *, superseded: list[int] | None = None, at: int | None = None,
               unique: bool = False) -> int:
        """Give ``entries`` their positions, time, actor digest and hash, and write them; the record
        versions at the ``superseded`` positions stop being current. Returns the last position.

        ``unique``: the collection has unique indexes, so the write may be refused (IndexConflict)."""
        position, prev = tx.log_head or tx.last()
        prev_hash = prev or audit.GENESIS
        at = now_us() if at is None else at
        first = tx.first if tx.first is not None else position + 1
        default = self.author
        for e in entries:
            position += 1
            e.position, e.at, e.txn = position, at, first
            if e.author is None:
                e.author = default
            e.actor_hash = actor = audit.actor_digest(e.author)
            prev_hash = e.hash = audit.entry_hash(prev_hash, position, at, e.kind, e.op, e.collection, e.id,
                                                  e.version, e.rev_text(), actor)
        tx.append(entries, superseded or [], unique)
        tx.first, tx.log_head, tx.wrote = first, (position, prev_hash), True
        return position

    def replay(self, tx: Tx, entries: list[NewEntry], *, superseded: list[int] | None = None) -> None:
        """Write entries restored from a backup as they were (positions, times, hashes): each must follow
        the log's last entry and continue its hash chain."""
        position, prev = tx.log_head or tx.last()
        prev_hash = prev or audit.GENESIS
        for e in entries:
            if e.position != position + 1:
                raise errors.RestoreError(f"change log position {e.position} does not follow {position}")
            if e.hash != audit.entry_hash(prev_hash, e.position, e.at, e.kind, e.op, e.collection, e.id, e.version,
                                          e.rev_text(), e.actor_hash):
                raise errors.RestoreError(f"change log position {e.position}: its hash does not continue the chain",
                                          hint="the backup was altered; restore an older one")
            position, prev_hash = e.position, e.hash
        tx.append(entries, superseded or [])
        tx.log_head, tx.wrote = (position, prev_hash), True
