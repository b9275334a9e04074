"""``Cache.health()``: whether the tiers that leave the process (Redis, the disk) are doing their part.

    redis  ok; degraded while Redis is unreachable or the invalidation listener reconnects
           (the cache serves from its own tiers meanwhile); failing when Redis refuses the
           cache (a database index it does not have, a bad password: that does not heal by itself)
    disk   ok; failing while writes fail for want of space (they raise StorageFull and change
           nothing; the cache serves what it holds)

The result is a ``kuradb.health.Health``, as ``store.health()`` gives.
"""
from __future__ import annotations

import time

from ..health import ORDER, Check, Health
from .disk import DiskTiers
from .remote import RedisTier


def _since(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _redis(r: RedisTier) -> Check:
    if r.state != "ok" and r.available:
        r.ping()     # it may have come back while nobody used the cache
    if r.state == "refused":
        return Check("failing", f"Redis at {r.url} refuses this cache since {_since(r.since)} ({r.detail}): "
                                "caching in this process's own tiers only", r.state)
    if r.state == "unreachable":
        return Check("degraded", f"Redis at {r.url} is unreachable since {_since(r.since)} ({r.detail}): "
                                 "caching in this process's own tiers only", r.state)
    if not r.listening.is_set():
        return Check("degraded", f"Redis at {r.url} answers, but the invalidation listener is reconnecting: "
                                 "changes other processes make may be missed meanwhile", "listening")
    return Check("ok", f"Redis at {r.url}", r.state)


def _disk(d: DiskTiers) -> Check:
    if d.full_since is not None:
        return Check("failing", f"the disk holding {d.directory!r} is full since {_since(d.full_since)}: writes "
                                "raise StorageFull and change nothing; the cache serves what it holds", "full")
    return Check("ok", f"{d.count():,} entries in {d.directory!r}", "ok")


def health(redis: RedisTier | None, disk: DiskTiers | None) -> Health:
    checks: dict[str, Check] = {}
    if redis is not None:
        checks["redis"] = _redis(redis)
    if disk is not None:
        checks["disk"] = _disk(disk)
    worst = max((c.status for c in checks.values()), key=ORDER.__getitem__, default="ok")
    return Health(worst, checks)
