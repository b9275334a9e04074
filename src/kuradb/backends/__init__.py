"""Backends: where a store lives. ``open_backend(location)`` picks one (a directory: SQLite)."""
from __future__ import annotations

from typing import Any

from .. import errors
from ..backend import Backend


def open_backend(location: str, **options: Any) -> Backend:
    """The backend for ``location``: a directory (SQLite, the default)."""
    if location.startswith(("postgresql://", "postgres://", "http://", "https://")):
        raise errors.KuraError(f"{location.split(':')[0]} stores are not available in this version",
                               hint="open a directory or ':memory:'")
    from .sqlite.backend import SQLiteBackend

    return SQLiteBackend(location, **options)
