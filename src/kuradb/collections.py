"""Collection names, their permanent ids, and their saved options (the one source of truth for both).

A name gets an integer id the first time it is used and keeps it for ever,
across ``drop_collection`` too (a dropped collection's row stays, marked not
live), so a process may cache name -> id without ever being wrong. Options are
read from the row in the transaction that writes (kuradb/options.py).
"""
from __future__ import annotations

import threading
from typing import Any

import orjson

from . import options
from .backend import NewEntry, Reader, Tx
from .changelog import ChangeLog, now_us
from .options import Options


class Collections:
    """One store's view of its collections' rows."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def id(self, reader: Reader, name: str) -> int | None:
        """The collection's id, None if the name was never used."""
        coll = self._ids.get(name)
        if coll is None:
            row = reader.collection(name)
            if row is None:
                return None
            coll = self._remember(name, row[0])
        return coll

    def _remember(self, name: str, coll: int) -> int:
        with self._lock:
            self._ids[name] = coll
        return coll

    def for_write(self, tx: Tx, name: str) -> tuple[int, Options]:
        """The id and saved options of the collection a write goes to, making it live if it is not."""
        row = tx.collection(name)
        if row is None or not row[2]:
            coll = tx.ensure_collection(name, now_us())
            self._remember(name, coll)
            return coll, options.parse(name, row[1] if row else None) if row and row[2] else options.NONE
        if name not in self._ids:
            self._remember(name, row[0])
        return row[0], options.parse(name, row[1])

    def options(self, reader: Reader, name: str) -> Options:
        row = reader.collection(name)
        return options.parse(name, row[1]) if row is not None and row[2] else options.NONE

    def configure(self, tx: Tx, log: ChangeLog, name: str, *, keep_history: Any, schema: Any,
                  explicit: bool) -> Options:
        """Change a collection's saved options in ``tx`` (logged as ``collection.options``)."""
        row = tx.collection(name)
        live = row is not None and row[2]
        saved = options.parse(name, row[1]) if row is not None and live else options.NONE
        new = options.merge(name, saved, live, keep_history=keep_history, schema=schema, explicit=explicit)
        if new is not saved:
            body = new.to_json()
            coll, _ = self.for_write(tx, name)
            text = orjson.dumps(body)
            tx.set_options(coll, text.decode())
            log.append(tx, [NewEntry("collection", "options", coll, name, None, body=text)])
        return new
