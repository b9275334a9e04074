"""Driver errors of the SQLite backend, translated at the boundary into kuradb.errors.

Reading stored data can raise the driver's errors, ``UnicodeDecodeError`` for a
TEXT value whose bytes are not UTF-8 and ``orjson.JSONDecodeError`` for stored
JSON that does not parse; kuradb only ever writes UTF-8 and valid JSON, so both
are damage. Every typed row operation (rows.py) translates them, and notes the
damage on its backend so that ``health()`` fails on it.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import apsw
import orjson

from ... import errors

READ_ERRORS: tuple[type[Exception], ...] = (apsw.Error, UnicodeDecodeError, orjson.JSONDecodeError)
DAMAGE_HINT = "run kuradb verify to see what is damaged; restore from a backup (kuradb restore)"
F = TypeVar("F", bound=Callable[..., Any])
# SQLite's limits on one statement's size (expression depth, compound SELECTs, parameters). The
# compiler keeps ordinary queries, however long their lists, well inside them; what still reaches
# one is a query too complex to run, said as a QueryError rather than a storage error.
_TOO_COMPLEX = ("Expression tree is too large", "parser stack overflow", "too many terms in compound SELECT",
                "too many SQL variables", "too many arguments on function")


def translate(e: BaseException, where: str = "") -> errors.KuraError:
    """Map a driver error onto the most specific kuradb error (chain it with ``from e``)."""
    suffix = f" ({where})" if where else ""
    if isinstance(e, errors.KuraError):
        return e
    if isinstance(e, (apsw.BusyError, apsw.LockedError)):
        return errors.Busy(f"the store is locked by another writer{suffix}",
                           hint="raise timeout= in kuradb.open() or shorten write transactions")
    if isinstance(e, (apsw.CorruptError, apsw.NotADBError)):
        return errors.CorruptedData(f"the database file is damaged: {e}{suffix}", hint=DAMAGE_HINT)
    if isinstance(e, UnicodeDecodeError):
        return errors.CorruptedData(f"stored text is damaged (not UTF-8 at byte {e.start}){suffix}",
                                    hint=DAMAGE_HINT)
    if isinstance(e, orjson.JSONDecodeError):
        return errors.CorruptedData(f"stored JSON is damaged ({e}){suffix}", hint=DAMAGE_HINT)
    if isinstance(e, apsw.FullError):
        return errors.StorageFull(f"the disk is full{suffix}", hint="free space; nothing was written")
    if isinstance(e, apsw.ReadOnlyError):
        return errors.ReadOnly(f"the store is read-only{suffix}")
    if isinstance(e, (apsw.CantOpenError, apsw.PermissionsError, apsw.AuthError)):
        return errors.PermissionDenied(f"cannot open the database: {e}{suffix}",
                                       hint="check the directory exists and is writable")
    if isinstance(e, (apsw.ConnectionClosedError, apsw.CursorClosedError)):
        return errors.Closed(f"the store is closed{suffix}")
    if isinstance(e, apsw.SQLError) and any(m in str(e) for m in _TOO_COMPLEX):
        return errors.QueryError(f"the query is too complex for SQLite ({e})",
                                 hint="fewer nested $and/$or/$not; many values of one field belong in one $in")
    if isinstance(e, apsw.SQLError) and "malformed JSON" in str(e):
        return errors.CorruptedData(f"stored content is damaged: {e}{suffix}",
                                    hint=DAMAGE_HINT)
    if isinstance(e, apsw.IOError) and "disk" in str(e).lower() and "full" in str(e).lower():
        return errors.StorageFull(f"the disk is full{suffix}")
    return errors.KuraError(f"storage error: {e}{suffix}")


def translated(fn: F) -> F:
    """Wrap a row operation of an object with a ``backend``: its errors come out translated."""
    where = fn.__name__.replace("_", " ")

    @functools.wraps(fn)
    def inner(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except READ_ERRORS as e:
            raise self.backend.failed(e, where) from e
    return inner  # type: ignore[return-value]


def translate_all(cls: type) -> type:
    """``translated`` on every public method of a row-operations class (but those that translate inline)."""
    for name, fn in list(vars(cls).items()):
        if not name.startswith("_") and callable(fn) and not getattr(fn, "translates", False):
            setattr(cls, name, translated(fn))
    return cls


def iterate(backend: Any, rows: Any, where: str) -> Iterator[Any]:
    """Rows of a cursor, with the errors met while stepping through them translated."""
    it = iter(rows)
    while True:
        try:
            row = next(it)
        except StopIteration:
            return
        except READ_ERRORS as e:
            raise backend.failed(e, where) from e
        yield row
