"""``kuradb.contrib.django.KuraCache``: kuradb's tiered cache as a Django cache backend.

    CACHES = {"default": {
        "BACKEND": "kuradb.contrib.django.KuraCache",
        "LOCATION": "/var/cache/myapp",            # "" keeps it in memory (plus Redis if given)
        "TIMEOUT": 300,
        "OPTIONS": {"l1_max_items": 10_000, "redis_url": "redis://127.0.0.1:6379/0"},
    }}

OPTIONS are ``kuradb.Cache`` arguments, plus Django's own ``MAX_ENTRIES`` and
``CULL_FREQUENCY`` (see ``_cull``). Values are pickled, as every Django backend
does, so model instances, querysets and responses (``cache_page``) are cached;
integers are stored as integers, so that ``incr``/``decr`` are kuradb's atomic
``incr``. Whoever can write the cache directory or the Redis can make this
process unpickle what they wrote: that is Django's trust boundary, as with its
file and Redis backends. (``kuradb.Cache`` on its own stays JSON by default.)

Django makes one backend object per alias and thread; all of them with the same
LOCATION (and, for memory-only caches, the same OPTIONS) share one
``kuradb.Cache`` in the process, so a write through one is seen at once through
the others and L1 is not duplicated per thread.
Timeouts follow Django: the backend's TIMEOUT by default, ``None`` for ever,
``0`` or less for "expire at once" (nothing is kept).
"""
from __future__ import annotations

import atexit
import inspect
import os
import pickle
import threading
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from .. import errors
from ..cache import Cache
from ..cache.codec import INT_RANGE

_MISSING = object()
_DJANGO_OPTIONS = ("MAX_ENTRIES", "CULL_FREQUENCY")
_CACHE_OPTIONS = tuple(p for p in inspect.signature(Cache).parameters if p != "path")
_shared: dict[str, tuple[dict[str, Any], Cache]] = {}
_shared_lock = threading.Lock()


def _cache_for(location: str, options: dict[str, Any]) -> Cache:
    """The process's one ``kuradb.Cache`` for ``location`` (made on first use). Two in one directory
    would not see each other's writes in memory, so a directory has one set of options; memory-only
    caches ("") with different options are different caches."""
    where = os.path.abspath(location) if location else f"memory {sorted(options.items())!r}"
    with _shared_lock:
        held = _shared.get(where)
        if held is not None and not held[1].closed:
            if held[0] != options:
                raise errors.ValidationError(
                    f"the Django cache LOCATION {location!r} is already open with OPTIONS {held[0]!r}, "
                    f"not {options!r}", path="OPTIONS",
                    hint="give every alias that shares a LOCATION the same kuradb options")
            return held[1]
        cache = Cache(where if location else None, **options)
        _shared[where] = (options, cache)
        return cache


@atexit.register
def close_all() -> None:
    """Close every cache the Django backend opened in this process (saves their statistics)."""
    with _shared_lock:
        held = list(_shared.values())
        _shared.clear()
    for _, cache in held:
        cache.close()


class KuraCache(BaseCache):
    pickle_protocol = pickle.HIGHEST_PROTOCOL

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        given = dict(params.get("OPTIONS") or {})
        for name in given:
            if name not in _CACHE_OPTIONS and name not in _DJANGO_OPTIONS:
                raise errors.ValidationError(
                    f"unknown OPTIONS key {name!r} for kuradb.contrib.django.KuraCache", path=f"OPTIONS.{name}",
                    hint=f"OPTIONS are kuradb.Cache arguments ({', '.join(_CACHE_OPTIONS)}) and Django's "
                         f"{' and '.join(_DJANGO_OPTIONS)}")
        self._culls = any(name in given for name in _DJANGO_OPTIONS)
        self.cache = _cache_for(location, {k: v for k, v in given.items() if k not in _DJANGO_OPTIONS})
        if self.cache.disk is None and self.cache.redis is not None:
            self._culls = False   # the entries are in Redis; like Django's Redis backend, leave bounds to it

    # -- values and timeouts -------------------------------------------------------------

    def _dumps(self, value: Any) -> Any:
        if type(value) is int and INT_RANGE[0] <= value <= INT_RANGE[1]:
            return value
        return pickle.dumps(value, self.pickle_protocol)   # pickle.PickleError reaches the caller, as Django's

    @staticmethod
    def _loads(stored: Any) -> Any:
        if type(stored) is not bytes:
            return stored             # an int; or a JSON value a kuradb.Cache wrote in this location
        try:
            return pickle.loads(stored)
        except Exception:  # noqa: BLE001 - not a pickle (an older kuradb's raw bytes): unreadable is a miss
            return _MISSING

    def _ttl(self, timeout: Any) -> float | None:
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else float(timeout)

    def _cull(self) -> None:
        """Django's culling, when OPTIONS give MAX_ENTRIES or CULL_FREQUENCY: before a write, if the
        cache holds MAX_ENTRIES keys or more, remove 1/CULL_FREQUENCY of them (the least valuable
        first, see ``kuradb.Cache.evict``), or all of them when CULL_FREQUENCY is 0."""
        if not self._culls:
            return
        n = self.cache.count()
        if n < self._max_entries:
            return
        if self._cull_frequency == 0:
            self.cache.clear()
        else:
            self.cache.evict(n // self._cull_frequency)

    # -- Django's cache API -----------------------------------------------------------------

    def add(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        k = self.make_and_validate_key(key, version=version)
        stored = self._dumps(value)
        ttl = self._ttl(timeout)
        if ttl is not None and ttl <= 0:
            return self.cache.get(k, _MISSING) is _MISSING
        self._cull()
        return self.cache.add(k, stored, ttl=ttl)

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        stored = self.cache.get(self.make_and_validate_key(key, version=version), _MISSING)
        value = _MISSING if stored is _MISSING else self._loads(stored)
        return default if value is _MISSING else value

    def set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        k = self.make_and_validate_key(key, version=version)
        stored = self._dumps(value)
        ttl = self._ttl(timeout)
        if ttl is not None and ttl <= 0:
            self.cache.delete(k)
        else:
            self._cull()
            self.cache.set(k, stored, ttl=ttl)

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        k = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl is not None and ttl <= 0:
            return self.cache.delete(k)
        return self.cache.set_ttl(k, ttl)

    def delete(self, key: str, version: int | None = None) -> bool:
        return self.cache.delete(self.make_and_validate_key(key, version=version))

    def has_key(self, key: str, version: int | None = None) -> bool:
        return self.get(key, _MISSING, version=version) is not _MISSING

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        """kuradb's atomic ``incr`` (docs/CACHE.md says across which processes)."""
        k = self.make_and_validate_key(key, version=version)
        try:
            return self.cache.incr(k, delta)
        except KeyError:
            raise ValueError(f"Key '{key}' not found") from None
        except errors.ValidationError as e:    # Django's backends raise TypeError for a value that is no number
            raise TypeError(str(e)) from e

    def set_many(self, data: dict[str, Any], timeout: Any = DEFAULT_TIMEOUT,
                 version: int | None = None) -> list[str]:
        for key, value in data.items():
            self.set(key, value, timeout, version)
        return []

    def clear(self) -> None:
        self.cache.clear()

    def close(self, **kwargs: Any) -> None:
        """Django calls this at the end of every request; the cache stays open for the next one."""
