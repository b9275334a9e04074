"""The store's read cache: ``kuradb.open(dir, cache="default" | CacheConfig(...))``, a Follower of the log.

``Collection.get(id)`` is served from an in-process ``kuradb.Cache`` (L1/L2; the
documents already live on disk, so no disk tier) holding the row a read
returned. The cache is derived from the change log (kuradb/follower.py): it
remembers the log position it covers and drops the records changed after it.

Strict by default: before each cached read it checks whether any connection (of
this process or another) committed since the last check (the backend's commit
signal: for SQLite, the WAL-index header, ~0.1 us; for PostgreSQL, a round trip
for the log's last position), and if so catches up with the log first.
``max_staleness=S`` trades strictness for speed: other processes' commits are
seen within S seconds (this process's own commits always at once; on
PostgreSQL other hosts' too, as soon as their NOTIFY arrives).

A read that missed fills the cache only if no invalidation ran meanwhile, so a
slow reader cannot put back a version another thread has just replaced.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from . import errors
from .cache import Cache
from .follower import Follower


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


class ReadCache(Follower):
    name = "read cache"

    def __init__(self, backend: Any, config: CacheConfig) -> None:
        super().__init__()
        if not isinstance(config.max_staleness, int | float) or config.max_staleness < 0:
            raise errors.ValidationError("max_staleness must be a number of seconds >= 0", path="max_staleness")
        self.config = config
        self.cache = Cache(None, l1_max_items=config.l1_max_items, l2_max_items=config.l2_max_items,
                           l1_max_bytes=config.l1_max_bytes, l2_max_bytes=config.l2_max_bytes, access_log=0)
        self.get = self.cache.get
        self._signal = backend.commit_signal()
        self._lock = threading.Lock()
        self.gen = 0
        self.catch_ups = 0
        self._checked = 0.0
        self.header = self._signal.header
        self.head: Any = None
        self.position = self._signal.reader.last()[0]
        self.head = self._signal.version()
        self.fast = self.header is not None and not config.max_staleness
        self._unlisten = None
        if config.max_staleness:
            backend.on_commit(self.refresh)   # this process's own commits: seen at once
            # Where the backend pushes other processes' commits (PostgreSQL's NOTIFY), they invalidate at
            # once too; the check every max_staleness seconds still bounds what a lost notification costs.
            self._unlisten = backend.listen(self._pushed)

    def fresh(self) -> None:
        """Make sure no commit that finished before this call is hidden by the cache."""
        if self.fast:
            if self.header.raw != self.head:
                self.refresh()
            return
        if self.config.max_staleness:
            now = time.monotonic()
            if now - self._checked < self.config.max_staleness:
                return
            self._checked = now
        if self._signal.version() != self.head:
            self.refresh()

    def refresh(self) -> None:
        """Catch up with the log: drop the cached records changed after the position covered."""
        with self._lock:
            head = self._signal.version()   # before reading: a commit racing it shows up at the next check
            self.gen += 1
            self.catch_ups += 1
            self.catch_up(self._signal.reader)
            self.head = head

    def _pushed(self) -> None:
        """A commit announced by the backend (on its listening thread)."""
        try:
            self.refresh()
        except errors.KuraError:
            pass    # the store closed, or the server is unreachable: the next timed check catches up

    def apply(self, changes: list[tuple[Any, ...]]) -> None:
        for _, kind, collection, id, *_ in changes:
            if kind == "collection":
                self.cache.clear()
            elif collection is not None and id is not None and kind == "record":
                self.cache.delete(f"{collection}\0{id}")

    def reset(self) -> None:
        self.cache.clear()

    def fill(self, key: str, row: tuple[Any, ...], gen: int) -> None:
        with self._lock:
            if gen == self.gen:
                self.cache.set(key, row)

    def stats(self) -> dict[str, Any]:
        return {**self.cache.stats().as_dict(), "catch_ups": self.catch_ups, "position": self.position,
                "check": self._signal.kind}

    def close(self) -> None:
        """Forget the cache. The connection is left to the garbage collector, not closed here: a read
        still running on another thread holds this object, and with it the connection that keeps
        SQLite's mapping of the WAL index alive while that read looks at it."""
        if self._unlisten is not None:
            self._unlisten()
        self.cache.close()
