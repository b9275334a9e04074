"""The store's read cache: ``kuradb.open(dir, cache="default" | CacheConfig(...))``.

``Collection.get(id)`` is served from an in-process ``kuradb.Cache`` (L1/L2; the
documents already live on disk, so no disk tier) holding the row a read
returned. The cache is derived from the change log: it remembers the log
position it has seen, and drops the records changed after it.

Strict by default: before each cached read it checks whether any connection (of
this process or another) committed since the last check, and if so catches up
with the log first. The check reads the WAL-index header in the database's
``-shm`` file: SQLite rewrites its first copy (48 bytes) as the last step of
every commit, so an unchanged header proves no commit finished since. That is
a 48-byte memory compare, ~0.1 us, where ``PRAGMA data_version`` costs ~4 us
(it starts a read transaction); the pragma is the fallback when the
``-shm`` file cannot be mapped. ``max_staleness=S`` trades strictness for
speed: other processes' commits are seen within S seconds (this process's own
commits always at once).

A read that missed fills the cache only if no invalidation ran meanwhile, so a
slow reader cannot put back a version another thread has just replaced.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import apsw

from . import atrest, errors
from .cache import Cache

_HEADER = 48
_WAL_INDEX_VERSION = 3007000


def _wal_index_header(db_path: str) -> Any:

    """The first WAL-index header in SQLite's own mapping of ``-shm`` in this process (a ctypes
    char array whose ``.raw`` reads it, ~0.06 us), or None.

    Read through SQLite's mapping, never a file descriptor of ours: closing any descriptor of
    a file releases every POSIX lock the process holds on it, SQLite's included, and another
    process could then reset the WAL index under us. The mapping lives while any connection
    of this process has the database open (this cache keeps one); region 0 never moves.
    """
    if not sys.platform.startswith("linux"):
        return None
    shm = os.path.realpath(db_path) + "-shm"
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].rstrip("\n") == shm and int(parts[2], 16) == 0:
                    header = (ctypes.c_char * _HEADER).from_address(int(parts[0].split("-")[0], 16))
                    version = int.from_bytes(header.raw[:4], sys.byteorder)
                    return header if version == _WAL_INDEX_VERSION else None
    except (OSError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class CacheConfig:
    """How the store caches reads. ``max_staleness`` 0 is strict (see the module doc)."""

    l1_max_items: int = 10_000
    l2_max_items: int = 100_000
    l1_max_bytes: int | None = None
    l2_max_bytes: int | None = 256 << 20
    max_staleness: float = 0.0

    @classmethod
    def of(cls, option: Any) -> CacheConfig | None:
        if option is None or option is False:
            return None
        if option == "default":
            return cls()
        if isinstance(option, cls):
            return option
        raise errors.ValidationError(f"cache must be None, 'default' or a kuradb.CacheConfig, not {option!r}",
                                     path="cache")


class ReadCache:
    def __init__(self, db_path: str, config: CacheConfig, key: Any = None) -> None:
        if not isinstance(config.max_staleness, int | float) or config.max_staleness < 0:
            raise errors.ValidationError("max_staleness must be a number of seconds >= 0", path="max_staleness")
        self.config = config
        self.cache = Cache(None, l1_max_items=config.l1_max_items, l2_max_items=config.l2_max_items,
                           l1_max_bytes=config.l1_max_bytes, l2_max_bytes=config.l2_max_bytes, access_log=0)
        self.get = self.cache.get
        self._conn = atrest.connect(db_path, key, apsw.SQLITE_OPEN_READONLY)
        self._conn.setbusytimeout(5000)
        self._lock = threading.Lock()
        self.gen = 0
        self.catch_ups = 0
        self._checked = 0.0
        self._conn.execute("SELECT 1 FROM log LIMIT 1").fetchall()   # opens the WAL index (maps -shm)
        self.header = _wal_index_header(db_path)
        self.head: Any = None
        self._position: int = self._one("SELECT coalesce(max(position), 0) FROM log")
        self.head = self._version()
        self.fast = self.header is not None and not config.max_staleness

    def _version(self) -> Any:
        if self.header is not None:
            return self.header.raw
        return self._one("PRAGMA data_version")

    def _one(self, sql: str) -> Any:
        row = self._conn.execute(sql).fetchone()
        assert row is not None
        return row[0]

    def fresh(self) -> None:
        """Make sure no commit that finished before this call is hidden by the cache."""
        if self.fast:
            if self.header.raw != self.head:
                self.catch_up()
            return
        if self.config.max_staleness:
            now = time.monotonic()
            if now - self._checked < self.config.max_staleness:
                return
            self._checked = now
        if self._version() != self.head:
            self.catch_up()

    def catch_up(self) -> None:
        """Drop the cached records changed by log entries after the position the cache has seen."""
        with self._lock:
            head = self._version()   # before the query: a commit racing it shows up at the next check
            rows: list[Any] = self._conn.execute("SELECT position, kind, collection, id FROM log WHERE position > ?"
                                      " ORDER BY position", (self._position,)).fetchall()
            self.gen += 1
            self.catch_ups += 1
            for position, kind, collection, id in rows:  # (int, str, str | None, str | None)
                if kind == "collection":
                    self.cache.clear()
                elif collection is not None and id is not None and kind != "index":
                    self.cache.delete(f"{collection}\0{id}")
                self._position = position
            self.head = head

    def fill(self, key: str, row: tuple[Any, ...], gen: int) -> None:
        with self._lock:
            if gen == self.gen:
                self.cache.set(key, row)

    def stats(self) -> dict[str, Any]:
        return {**self.cache.stats().as_dict(), "catch_ups": self.catch_ups, "position": self._position,
                "check": "wal-index" if self.header is not None else "data_version"}

    def close(self) -> None:
        """Forget the cache. The connection is left to the garbage collector, not closed here: a read
        still running on another thread holds this object, and with it the connection that keeps
        SQLite's mapping of the WAL index alive while that read looks at it."""
        self.cache.close()
