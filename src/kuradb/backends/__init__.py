"""Backends: where a store lives. ``open_backend(location)`` picks one (a directory: SQLite; a
``postgresql://`` URL: PostgreSQL, extra ``[postgres]``)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import errors
from ..backend import Backend


def open_backend(location: str, **options: Any) -> Backend:
    """The backend for ``location``: a directory (SQLite, the default) or a PostgreSQL URL."""
    if location.startswith(("postgresql://", "postgres://")):
        try:
            from .postgres.backend import PostgresBackend
        except ImportError as e:
            raise errors.KuraError(f"PostgreSQL stores need psycopg ({e.name} is not installed)",
                                   hint="pip install 'kuradb[postgres]'") from e
        return PostgresBackend(location, **options)
    if location.startswith(("http://", "https://")):
        raise errors.KuraError(f"{location.split(':')[0]} stores are not available in this version",
                               hint="open a directory or ':memory:'")
    from .sqlite.backend import SQLiteBackend

    return SQLiteBackend(location, **options)


def shown(location: str) -> str:
    """A store's location as messages and stats show it: a URL without its password."""
    if "://" not in location:
        return location
    parts = urlsplit(location)
    if parts.password is None:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
