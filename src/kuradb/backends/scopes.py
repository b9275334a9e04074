"""``with backend.transaction():`` for every backend: the outermost level begins, inner levels are savepoints.

A backend gives ``_local.tx`` (its thread's open transaction, with ``depth``,
``after_commit``, ``doomed`` and ``log_head``), ``_begin()``, ``_end(tx, commit=)``
and ``_savepoint(tx, statement)``, which runs ``SAVEPOINT``/``ROLLBACK TO``/``RELEASE``
and raises its driver's errors translated.
"""
from __future__ import annotations

from typing import Any

from .. import errors


class TransactionScope:
    __slots__ = ("backend", "tx", "savepoint", "mark", "doomed")

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __enter__(self) -> Any:
        b = self.backend
        tx = b._local.__dict__.get("tx")
        if tx is None:
            tx = b._begin()
            self.savepoint = None
        else:
            tx.depth += 1
            self.savepoint = f"kura_sp{tx.depth}"
            self.mark = len(tx.after_commit)
            self.doomed = tx.doomed
            b._savepoint(tx, f"SAVEPOINT {self.savepoint}")
        self.tx = tx
        return tx

    def __exit__(self, et: Any, e: Any, tb: Any) -> None:
        tx, b = self.tx, self.backend
        if self.savepoint is None:
            b._end(tx, commit=et is None)
            return
        tx.depth -= 1
        try:
            if et is not None:
                b._savepoint(tx, f"ROLLBACK TO {self.savepoint}")
                del tx.after_commit[self.mark:]
                tx.doomed = self.doomed  # a write that failed part-way inside is undone too
                tx.log_head = None
            b._savepoint(tx, f"RELEASE {self.savepoint}")
        except errors.KuraError:
            if et is None:
                raise
