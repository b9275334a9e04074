"""Cache statistics: counters per tier, sampled latencies, and their summary."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from .. import errors
from ..backends.sqlite.cachefile import read_saved

TIERS = ("l1", "l2", "l3", "l4")
COUNTERS = ("hits", "misses", "promotions", "demotions", "evictions", "expirations", "errors", "rejected")
_RING = 1024  # latency samples kept per tier


class TierCounters:
    """Mutable counters of one tier; read through ``snapshot()``.

    Updated without a lock on the hit path: under heavy thread contention a
    counter may miss an increment (the GIL can switch between load and store).
    """

    __slots__ = ("name", "hits", "misses", "promotions", "demotions", "evictions", "expirations", "errors",
                 "rejected", "_lat", "_i")

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = self.misses = self.promotions = self.demotions = 0
        self.evictions = self.expirations = self.errors = self.rejected = 0
        self._lat = [0.0] * _RING
        self._i = 0

    def latency(self, seconds: float) -> None:
        self._lat[self._i % _RING] = seconds
        self._i += 1

    def percentiles(self) -> tuple[float, float]:
        n = min(self._i, _RING)
        if not n:
            return 0.0, 0.0
        s = sorted(self._lat[:n])
        return s[n // 2] * 1e6, s[min(n - 1, (n * 99) // 100)] * 1e6

    def reset(self) -> None:
        self.__init__(self.name)  # type: ignore[misc]

    def snapshot(self, items: int, nbytes: int, state: str = "ok") -> TierStats:
        p50, p99 = self.percentiles()
        return TierStats(self.hits, self.misses, self.promotions, self.demotions, self.evictions,
                         self.expirations, self.errors, self.rejected, items, nbytes, round(p50, 2), round(p99, 2),
                         state)


@dataclass(frozen=True)
class TierStats:
    """One tier. Latencies are microseconds over the last 1,024 sampled reads of that tier.

    ``state``: ``ok``, ``off`` (the tier is not configured), ``unreachable`` / ``refused``
    (Redis: see ``Cache.health()``) or ``full`` (the disk tiers could not take the last write).
    """

    hits: int = 0
    misses: int = 0
    promotions: int = 0
    demotions: int = 0
    evictions: int = 0
    expirations: int = 0
    errors: int = 0
    rejected: int = 0
    items: int = 0
    bytes: int = 0
    p50_us: float = 0.0
    p99_us: float = 0.0
    state: str = "ok"


@dataclass(frozen=True)
class CacheStats:
    """A cache's statistics: ``hits``/``misses`` count whole ``get`` calls; ``tiers`` the absent tiers too."""

    hits: int
    misses: int
    tiers: dict[str, TierStats] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hit_rate"] = self.hit_rate
        return d


def saved_stats(path: str | os.PathLike[str]) -> CacheStats:
    """The statistics a cache directory holds: items and bytes of L3/L4 now, and the counters every
    process that used it saved when it closed (the CLI's ``kuradb cache stats``)."""
    found = read_saved(os.fspath(path))
    if found is None:
        raise errors.NotFound(f"no kuradb cache at {os.fspath(path)!r}", hint="a Cache(path) creates one")
    usage, raw = found
    saved = orjson.loads(raw) if raw else {}
    tiers = {}
    for name in ("l1", "l2", "l3", "l4"):
        counts: dict[str, Any] = {f: int(saved.get(name, {}).get(f, 0)) for f in COUNTERS}
        items, nbytes = usage.get(int(name[1]), (0, 0)) if name in ("l3", "l4") else (0, 0)
        tiers[name] = TierStats(**counts, items=items, bytes=nbytes, state="")
    return CacheStats(hits=sum(t.hits for t in tiers.values()),
                      misses=int(saved.get("cache", {}).get("misses", 0)), tiers=tiers)
