"""Follower: derived state kept from the change log (a checkpoint, catching up, rebuilding from zero).

The change log is the source of truth; everything derived from it follows it.
A Follower records the position it covers, applies the changes after it
(``catch_up``), and can be thrown away and rebuilt from nothing (``rebuild``),
so a crash can leave derived state behind, never wrong. The store's read cache
(kuradb/readcache.py) is one, and so are the derived structures ``repair``
rebuilds (kuradb/integrity.py); vector indexes and projections will be too.
"""
from __future__ import annotations

from typing import Any

from .backend import Reader


class Derived:
    """Derived state that ``repair`` can rebuild from the source of truth, in one write transaction.

    Most of a store's derived state (which version is current, the array catalog,
    blob references, secondary and text indexes) is kept by the transaction that
    writes, so it always covers the whole log; ``rebuild`` makes it again from zero.
    """

    name = "derived state"

    def rebuild(self, tx: Any) -> str | None:
        """Make it again; what was done, for repair's report (None: nothing needed doing)."""
        raise NotImplementedError


class Follower:
    """Derived state following the change log. Subclasses say how to ``apply`` changes and ``reset``."""

    name = "derived state"

    def __init__(self) -> None:
        self.position = 0   # the change-log position this state covers

    def apply(self, changes: list[tuple[Any, ...]]) -> None:
        """Take in CHANGE rows (kuradb/backend.py) after ``position``, oldest first."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget everything derived so far."""
        raise NotImplementedError

    def catch_up(self, reader: Reader, page: int = 1000) -> int:
        """Apply every change after ``position`` that ``reader`` sees; returns the position covered."""
        while True:
            changes = reader.changes(self.position, page)
            if changes:
                self.apply(changes)
                self.position = changes[-1][0]
            if len(changes) < page:
                return self.position

    def rebuild(self, reader: Reader) -> int:
        """Start again from nothing and catch up."""
        self.reset()
        self.position = 0
        return self.catch_up(reader)
