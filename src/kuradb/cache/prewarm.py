"""Which keys to load before they are asked for: a bounded access log and a predictor over it.

Each logged key keeps a recency-weighted frequency (halved every ``half_life``
seconds) and a histogram of its accesses by hour of the day (UTC). A key's
score for the coming window is what the histogram says it gets in those hours
on an average day, plus the decayed frequency scaled to the window: the first
term catches daily cycles (the morning's keys before the morning), the second
plain popularity and recency.
"""
from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from .. import errors
from .checks import positive

if TYPE_CHECKING:
    from .core import Cache

_HOUR = 3600.0
_DAY = 86400.0


class AccessLog:
    """At most ``max_keys`` keys; when full, the least scored tenth is forgotten."""

    def __init__(self, max_keys: int = 100_000, half_life: float = _DAY) -> None:
        self.max_keys = max_keys
        self.half_life = half_life
        self._keys: dict[str, list[Any]] = {}   # key -> [score, at, hours[24]]
        self._first: float | None = None

    def __len__(self) -> int:
        return len(self._keys)

    def record(self, key: str, weight: float = 1.0, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if self._first is None:
            self._first = now
        e = self._keys.get(key)
        if e is None:
            if len(self._keys) >= self.max_keys:
                self._forget(now)
            e = self._keys[key] = [0.0, now, [0.0] * 24]
        e[0] = self._decayed(e, now) + weight
        e[1] = now
        e[2][int(now // _HOUR) % 24] += weight

    def _decayed(self, e: list[Any], now: float) -> float:
        return float(e[0] * math.exp2(-(now - e[1]) / self.half_life)) if now > e[1] else float(e[0])

    def _forget(self, now: float) -> None:
        n = max(1, len(self._keys) // 10)
        for key in heapq.nsmallest(n, self._keys, key=lambda k: self._decayed(self._keys[k], now)):
            del self._keys[key]

    def predict(self, top: int, *, now: float | None = None, window: float = _HOUR) -> list[str]:
        """The ``top`` keys most likely to be read in ``[now, now + window)``, best first."""
        now = time.time() if now is None else now
        days = max(1.0, (now - (self._first or now)) / _DAY)
        first_hour = int(now // _HOUR)
        hours = [(first_hour + i) % 24 for i in range(max(1, math.ceil(window / _HOUR)))]
        scale = window / self.half_life

        def score(item: tuple[str, list[Any]]) -> float:
            e = item[1]
            return sum(e[2][h] for h in hours) / days + self._decayed(e, now) * scale

        return [k for k, _ in heapq.nlargest(top, self._keys.items(), key=score)]

    def dumps(self) -> bytes:
        return orjson.dumps({"first": self._first, "keys": self._keys})

    def loads(self, data: bytes) -> None:
        d = orjson.loads(data)
        self._first = d.get("first")
        self._keys = {k: v for k, v in d.get("keys", {}).items()}


def prewarm(cache: Cache, loader: Callable[[str], Any] | None, top: int, window: float) -> int:
    """``Cache.prewarm``: load the keys ``cache.log`` predicts that its memory tiers do not hold."""
    if cache.log is None:
        raise errors.ValidationError("prewarm needs the access log", path="access_log",
                                     hint="create the cache with access_log > 0")
    positive("top", top)
    missing = object()
    n = 0
    for key in cache.log.predict(top, window=window):
        if key in cache.l1.data or (cache.l2 is not None and key in cache.l2.data):
            continue
        if loader is None:
            n += cache.get(key, missing) is not missing
            continue
        try:
            value = loader(key)
        except KeyError:
            continue
        cache.set(key, value)
        n += 1
    return n
