"""``kuradb.contrib.django.KuraCache``: kuradb's tiered cache as a Django cache backend.

    CACHES = {"default": {
        "BACKEND": "kuradb.contrib.django.KuraCache",
        "LOCATION": "/var/cache/myapp",            # "" keeps it in memory (plus Redis if given)
        "TIMEOUT": 300,
        "OPTIONS": {"l1_max_items": 10_000, "redis_url": "redis://127.0.0.1:6379/0"},
    }}

OPTIONS are ``kuradb.Cache`` arguments. Values are stored as JSON unless
``"serializer": "pickle"`` is given (needed for model instances and other
arbitrary objects; only when every process sharing the cache is trusted).
Timeouts follow Django: the backend's TIMEOUT by default, ``None`` for ever,
``0`` or less for "expire at once" (nothing is kept).
"""
from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from ..cache import Cache

_MISSING = object()


class KuraCache(BaseCache):
    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        options = dict(params.get("OPTIONS") or {})
        self.cache = Cache(location or None, **options)

    def _ttl(self, timeout: Any) -> float | None:
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else float(timeout)

    def add(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        k = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl is not None and ttl <= 0:
            return self.cache.get(k, _MISSING) is _MISSING
        return self.cache.add(k, value, ttl=ttl)

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        return self.cache.get(self.make_and_validate_key(key, version=version), default)

    def set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        k = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl is not None and ttl <= 0:
            self.cache.delete(k)
        else:
            self.cache.set(k, value, ttl=ttl)

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        k = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl is not None and ttl <= 0:
            return self.cache.delete(k)
        return self.cache.set_ttl(k, ttl)

    def delete(self, key: str, version: int | None = None) -> bool:
        return self.cache.delete(self.make_and_validate_key(key, version=version))

    def has_key(self, key: str, version: int | None = None) -> bool:
        return self.cache.get(self.make_and_validate_key(key, version=version), _MISSING) is not _MISSING

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        k = self.make_and_validate_key(key, version=version)
        try:
            return self.cache.incr(k, delta)
        except KeyError:
            raise ValueError(f"Key '{key}' not found") from None

    def set_many(self, data: dict[str, Any], timeout: Any = DEFAULT_TIMEOUT,
                 version: int | None = None) -> list[str]:
        for key, value in data.items():
            self.set(key, value, timeout, version)
        return []

    def clear(self) -> None:
        self.cache.clear()

    def close(self, **kwargs: Any) -> None:
        """Django calls this at the end of every request; the cache stays open for the next one."""
