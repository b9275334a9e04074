"""Driver errors of the PostgreSQL backend (psycopg 3), translated at the boundary into kuradb.errors."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg

from ... import errors

F = TypeVar("F", bound=Callable[..., Any])
DRIVER_ERRORS: tuple[type[Exception], ...] = (psycopg.Error,)


def translate(e: BaseException, where: str = "") -> errors.KuraError:
    """Map a psycopg error onto the most specific kuradb error (chain it with ``from e``)."""
    suffix = f" ({where})" if where else ""
    if isinstance(e, errors.KuraError):
        return e
    if isinstance(e, pg.QueryCanceled) and "statement timeout" in str(e):
        return errors.Busy(f"the statement ran longer than the server's statement_timeout{suffix}",
                           hint="narrow the query (an index, a filter, a limit) or raise statement_timeout"
                                " (the URL's options=-c statement_timeout=...)")
    if isinstance(e, (pg.LockNotAvailable, pg.QueryCanceled, pg.DeadlockDetected, pg.SerializationFailure)):
        return errors.Busy(f"the store is locked by another writer or the statement timed out{suffix}",
                           hint="raise timeout= in kuradb.open() or shorten write transactions")
    if isinstance(e, (pg.DiskFull, pg.OutOfMemory, pg.ProgramLimitExceeded)):
        return errors.StorageFull(f"the database server is out of space: {e}{suffix}",
                                  hint="free space on the server; nothing was written")
    if isinstance(e, (pg.ReadOnlySqlTransaction,)):
        return errors.ReadOnly(f"the store is read-only{suffix}")
    if isinstance(e, (pg.InsufficientPrivilege, pg.InvalidAuthorizationSpecification, pg.InvalidPassword)):
        return errors.PermissionDenied(f"the database refused access: {e}{suffix}",
                                       hint="check the user, its password and its privileges on the schema")
    if isinstance(e, pg.DataCorrupted | pg.IndexCorrupted):
        return errors.CorruptedData(f"the database reports damage: {e}{suffix}",
                                    hint="run kuradb verify; restore from a backup (kuradb restore)")
    if isinstance(e, (psycopg.OperationalError, psycopg.InterfaceError)):
        return errors.Unavailable(f"the database server cannot be reached: {_first_line(e)}{suffix}",
                                  hint="check the server is running and the URL's host and port")
    return errors.KuraError(f"storage error: {_first_line(e)}{suffix}")


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def translated(fn: F) -> F:
    """Wrap a row operation of an object with a ``backend``: its errors come out translated."""
    where = fn.__name__.replace("_", " ")

    @functools.wraps(fn)
    def inner(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except DRIVER_ERRORS as e:
            if isinstance(e, psycopg.OperationalError) and self.backend.reconnect(self):
                try:                   # a lone read on a connection the server dropped: once more, anew
                    return fn(self, *args, **kwargs)
                except DRIVER_ERRORS as again:
                    raise self.backend.failed(again, where) from again
            raise self.backend.failed(e, where) from e
    return inner  # type: ignore[return-value]


def translate_all(cls: type) -> type:
    """``translated`` on every public method of a row-operations class."""
    for name, fn in list(vars(cls).items()):
        if not name.startswith("_") and callable(fn):
            setattr(cls, name, translated(fn))
    return cls
