"""Backends: where a store lives. ``open_backend(location)`` picks one (a directory: SQLite; a
``postgresql://`` URL: PostgreSQL, extra ``[postgres]``)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import errors
from ..backend import Backend

REPLICA_WAIT = 0.05       # seconds a read waits for a replica to replay its store's last commit
REPLICA_MAX_LAG = 5.0     # seconds behind the primary past which a replica is skipped


def check_replica_options(replicas: Any, wait: Any, max_lag: Any) -> None:
    """``replicas``, ``replica_wait`` and ``replica_max_lag`` as kuradb.open() takes them (any store)."""
    if replicas is not None and (isinstance(replicas, (str, bytes)) or not isinstance(replicas, (list, tuple))):
        raise errors.ValidationError(f"replicas must be a list of postgresql:// URLs, not {replicas!r}",
                                     path="replicas", hint="e.g. replicas=['postgresql://app@replica1/db']")
    if type(wait) not in (int, float) or not 0 <= wait <= 60:
        raise errors.ValidationError(f"replica_wait must be a number of seconds from 0 to 60, not {wait!r}",
                                     path="replica_wait")
    if type(max_lag) not in (int, float) or not 0 < max_lag <= 86_400:
        raise errors.ValidationError(f"replica_max_lag must be a number of seconds above 0, up to 86400, not"
                                     f" {max_lag!r}", path="replica_max_lag")


def open_backend(location: str, **options: Any) -> Backend:
    """The backend for ``location``: a directory (SQLite, the default) or a PostgreSQL URL.
    ``replicas=[url, ...]`` (with ``replica_wait``, ``replica_max_lag``) are a PostgreSQL store's
    streaming read replicas (postgres/replicas.py)."""
    check_replica_options(options.get("replicas"), options.get("replica_wait", REPLICA_WAIT),
                          options.get("replica_max_lag", REPLICA_MAX_LAG))
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
    if options.pop("replicas", None):
        raise errors.ValidationError("replicas are streaming standbys of a PostgreSQL server; a store in a"
                                     " directory has none", path="replicas",
                                     hint="open a postgresql:// URL to read from its replicas")
    options.pop("replica_wait", None)
    options.pop("replica_max_lag", None)
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
