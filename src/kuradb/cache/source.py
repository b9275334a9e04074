"""A cache in front of an external system (a database, an API): read-through, write-through,
write-back and cache-aside, with one object.

``load(key)`` reads the system (raise KeyError when absent), ``save(key, value)``
writes it, ``remove(key)`` deletes there. Policies:

- ``"read-through"`` (and ``"cache-aside"``, where the application calls ``load``
  itself and only uses ``get``/``invalidate``): ``get`` fills the cache on a miss,
  one loader call per key at a time; ``set`` writes the system, then drops the key.
- ``"write-through"``: ``set`` writes the system first, then the cache; a failed
  save leaves the cache untouched.
- ``"write-back"``: ``set`` writes the cache and queues the save; the queue is
  flushed every ``flush_interval`` seconds, when it holds ``flush_size`` keys, and
  on ``flush()``/``close()``. A clean close loses nothing; a crash loses the saves
  still queued: at most ``flush_interval`` seconds or ``flush_size`` keys of writes.
  A save that fails stays queued and is retried at the next flush.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .. import errors
from .core import _MISSING, Cache

POLICIES = ("read-through", "write-through", "write-back", "cache-aside")


class CachedSource:
    def __init__(self, cache: Cache, load: Callable[[str], Any], save: Callable[[str, Any], Any] | None = None,
                 remove: Callable[[str], Any] | None = None, *, policy: str = "read-through",
                 ttl: float | None = _MISSING, flush_interval: float = 1.0, flush_size: int = 1000) -> None:
        if policy not in POLICIES:
            raise errors.ValidationError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}",
                                         path="policy")
        if policy in ("write-through", "write-back") and save is None:
            raise errors.ValidationError(f"the {policy} policy needs save=", path="save")
        if flush_interval <= 0 or flush_size < 1:
            raise errors.ValidationError("flush_interval must be > 0 and flush_size >= 1", path="flush_interval")
        self.cache, self.policy, self.ttl = cache, policy, ttl
        self._load, self._save, self._remove = load, save, remove
        self.flush_size = flush_size
        self._pending: dict[str, Any] = {}
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.flush_errors = 0
        if policy == "write-back":
            self._interval = flush_interval
            self._thread = threading.Thread(target=self._flusher, name="kuradb-write-back", daemon=True)
            self._thread.start()

    def __enter__(self) -> CachedSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def get(self, key: str, default: Any = None) -> Any:
        """The value from the cache, or (read-through) from ``load`` through the cache."""
        if self.policy == "cache-aside":
            return self.cache.get(key, default)
        with self._pending_lock:
            if key in self._pending:
                return self._pending[key]
        try:
            return self.cache.get_or_set(key, lambda: self._load(key), ttl=self.ttl)
        except KeyError:
            return default

    def set(self, key: str, value: Any) -> None:
        if self.policy == "write-back":
            self.cache.set(key, value, ttl=self.ttl)
            with self._pending_lock:
                self._pending[key] = value
                full = len(self._pending) >= self.flush_size
            if full:
                self._wake.set()
            return
        if self._save is not None:
            self._save(key, value)
        if self.policy == "write-through":
            self.cache.set(key, value, ttl=self.ttl)
        else:
            self.cache.delete(key)

    def delete(self, key: str) -> None:
        with self._pending_lock:
            self._pending.pop(key, None)
        if self._remove is not None:
            self._remove(key)
        self.cache.delete(key)

    def invalidate(self, key: str) -> None:
        """Drop the cached copy (cache-aside: after the application changed the system itself)."""
        self.cache.delete(key)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Save every queued write now; returns how many were saved. Failed saves stay queued."""
        with self._flush_lock:
            with self._pending_lock:
                batch, self._pending = self._pending, {}
            saved = 0
            try:
                for key, value in batch.items():
                    self._save(key, value)  # type: ignore[misc]
                    saved += 1
            except Exception:
                self.flush_errors += 1
                with self._pending_lock:   # keep the unsaved ones, unless a newer write replaced them
                    for key, value in list(batch.items())[saved:]:
                        self._pending.setdefault(key, value)
                raise
            return saved

    def _flusher(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - counted in flush_errors, retried next round
                pass

    def close(self) -> None:
        """Flush queued writes (write-back) and stop the flusher. The cache itself stays open."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._wake.set()
            self._thread.join(timeout=10)
            self.flush()
