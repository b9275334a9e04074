"""Filling the cache from a loader: one load per missing key (single flight), and ``memoize``'s keys.

Concurrent misses on one key call the loader once: across the threads of a
process (``SingleFlight``), and across processes when Redis is the L2 (a Redis
lock, ``load``: the others wait for the value, at most ``lock_timeout`` seconds,
then load it themselves). A loader's exception reaches every waiting caller and
nothing is stored.
"""
from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from .. import errors

if TYPE_CHECKING:
    from .core import Cache

F = TypeVar("F", bound=Callable[..., Any])
_ABSENT: Any = object()


class _Flight:
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """``run(key, fn)``: the first caller for ``key`` runs ``fn``; those arriving meanwhile wait for its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def run(self, key: str, fn: Callable[[], Any]) -> Any:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        assert flight is not None
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            flight.value = fn()
            return flight.value
        except BaseException as e:
            flight.error = e
            raise
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()


def load(cache: Cache, key: str, loader: Callable[[], Any], ttl: Any, priority: str, tags: Iterable[str],
         lock_timeout: float) -> Any:
    """``key``'s value: another process's if it is loading it (Redis lock), else ``loader()``'s, stored."""
    redis = cache.redis
    locked = redis.lock(key, lock_timeout) if redis is not None else None
    if locked is False:   # another process is loading it: wait for its value
        assert redis is not None
        deadline = time.monotonic() + lock_timeout
        pause = 0.001
        while time.monotonic() < deadline:
            value = cache.get(key, _ABSENT)
            if value is not _ABSENT:
                return value
            if not redis.locked(key):
                break
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        value = cache.get(key, _ABSENT)
        if value is not _ABSENT:
            return value
    try:
        value = cache.get(key, _ABSENT)   # a racing thread may have set it meanwhile
        if value is _ABSENT:
            value = loader()
            try:
                cache.set(key, value, ttl=ttl, priority=priority, tags=tags)
            except errors.StorageFull:
                pass    # the caller gets its value; the full disk is logged, counted and in health()
        return value
    finally:
        if locked:
            assert redis is not None
            redis.unlock(key)


def memoize(cache: Cache, ttl: Any, key: Callable[..., str] | None, tags: Iterable[str]) -> Callable[[F], F]:
    """``Cache.memoize``: a decorator caching a function's results by its arguments."""
    tag_list = list(tags)

    def decorate(fn: F) -> F:
        prefix = f"memo:{fn.__module__}.{fn.__qualname__}:"

        def cache_key(*args: Any, **kwargs: Any) -> str:
            if key is not None:
                return prefix + key(*args, **kwargs)
            try:
                raw = orjson.dumps([args, kwargs], option=orjson.OPT_SORT_KEYS)
            except TypeError as e:
                raise errors.ValidationError(
                    f"arguments of {fn.__qualname__} cannot be made into a cache key: {e}",
                    path=fn.__qualname__, hint="pass key=lambda *args, **kwargs: '...' to memoize") from e
            return prefix + hashlib.blake2b(raw, digest_size=16).hexdigest()

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return cache.get_or_set(cache_key(*args, **kwargs), lambda: fn(*args, **kwargs), ttl=ttl, tags=tag_list)

        wrapper.cache_key = cache_key  # type: ignore[attr-defined]
        wrapper.invalidate = lambda *a, **kw: cache.delete(cache_key(*a, **kw))  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]
    return decorate
