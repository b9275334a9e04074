"""kuradb.Cache: L1 LRU -> L2 LFU (or Redis) -> L3 disk -> L4 compressed archive.

Memory tiers are exclusive (a key is in L1 or in L2) and hold the caller's
object itself. An L2 hit is served where it is (moving an entry between two
dicts of one process buys no speed and costs an L1 eviction); L2 keeps it by
its frequency. Every ``set`` is written through to Redis and the disk tier when
they exist, so a memory eviction never loses a value that has a home below
(it is a demotion); reads copy a lower tier's hit up into L1 (a promotion).

Concurrency: one lock guards the memory tiers; the L1 hit path takes none (a
dict read and a counter in the entry: L1's recency is CLOCK, see memory.py). Writes
are serialized by a second lock held across the I/O and the memory update, so
memory, Redis and disk always agree on the newest value; the disk is written
first, so a write it cannot take (a full disk) changes no tier. A read that went to
Redis or disk copies its result up only if no write happened meanwhile
(``_gen``), so a slow read can never put an older value over a newer one.

``incr`` is done where the shared copy lives, in one step: in Redis (a script)
when Redis is the L2 and reachable, else in the disk tier (one SQLite write
transaction), else in memory under the write lock (docs/CACHE.md says which
processes each of these covers).

``get_or_set``'s one load per missing key and ``memoize`` are in loaders.py,
prewarming in prewarm.py, the disk tiers in disk.py (their file: backends/sqlite/cachefile.py).
"""
from __future__ import annotations

import fnmatch
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from .. import errors
from ..health import Health
from . import loaders, status
from .checks import check_key, expires_at, positive, priority_of, tags_of
from .codec import Codec, Rejected, check_finite
from .disk import DiskTiers
from .loaders import F, SingleFlight
from .memory import EXPIRES, HITS, PRIORITY, TAGS, VALUE, LFUTier, LRUTier, Sketch, size_of
from .prewarm import AccessLog, prewarm
from .remote import ABSENT, NOT_INT, Fields, RedisTier
from .stats import COUNTERS, CacheStats, TierCounters, TierStats

_MISSING: Any = object()
_time = time.time
_clock = time.perf_counter
log = logging.getLogger("kuradb.cache")


class Cache:
    """A tiered cache; see docs/CACHE.md. ``path=None`` keeps it in memory (plus Redis if given)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, l1_max_items: int = 10_000,
                 l1_max_bytes: int | None = None, l2_max_items: int = 100_000, l2_max_bytes: int | None = None,
                 disk_max_bytes: int = 1 << 30, archive_max_bytes: int = 0, archive_ttl: float | None = 30 * 86400,
                 redis_url: str | None = None, namespace: str = "kuradb", ttl: float | None = None,
                 serializer: Any = "json", access_log: int = 100_000) -> None:
        positive("l1_max_items", l1_max_items)
        positive("l2_max_items", l2_max_items, zero=True)
        positive("l1_max_bytes", l1_max_bytes, none=True)
        positive("l2_max_bytes", l2_max_bytes, none=True)
        positive("disk_max_bytes", disk_max_bytes, zero=True)
        positive("archive_max_bytes", archive_max_bytes, zero=True)
        positive("access_log", access_log, zero=True)
        expires_at(ttl)
        self.default_ttl = ttl
        self.codec = Codec(serializer)
        self._c = {name: TierCounters(name) for name in ("l1", "l2", "l3", "l4")}
        self._c1 = self._c["l1"]
        self._misses = 0
        self._lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._gen = 0
        self._flights = SingleFlight()
        self._sketch = Sketch(l1_max_items + l2_max_items)
        self._window = max(1000, 4 * (l1_max_items + l2_max_items))    # memory misses per hill-climbing step
        self._window_misses = self._window_hits_base = 0
        self._window_rate = 0.0
        self._climb_step = 1.5
        self.l1 = LRUTier(l1_max_items, l1_max_bytes)
        self._l1data = self.l1.data
        self.l2: LFUTier | None = LFUTier(l2_max_items, l2_max_bytes, self._sketch) \
            if l2_max_items and not redis_url else None
        self._l2data = self.l2.data if self.l2 is not None else None
        self.log = AccessLog(access_log) if access_log else None
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.disk: DiskTiers | None = None
        self.redis: RedisTier | None = None
        if path is not None:
            self.disk = DiskTiers(os.fspath(path), max_bytes=disk_max_bytes, archive_max_bytes=archive_max_bytes,
                                  archive_ttl=archive_ttl)
            saved = self.disk.meta("access_log")
            if saved and self.log is not None:
                self.log.loads(saved)
        if redis_url is not None:
            self.redis = RedisTier(redis_url, namespace, self._c["l2"], self._invalidated)

    def __repr__(self) -> str:
        where = self.disk.directory if self.disk else "memory"
        return f"<kuradb.Cache {where!r} l1={len(self.l1)} l2={len(self.l2) if self.l2 else 0}>"

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop background threads, save the access log, close Redis and the disk tiers. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        if self.redis is not None:
            self.redis.close()
        if self.disk is not None:
            try:
                if self.log is not None:
                    self.disk.set_meta("access_log", self.log.dumps())
                self.disk.set_meta("stats", orjson.dumps(self._saved_counters()))
            except errors.StorageFull:   # they are statistics: closing matters more than keeping them
                log.warning("the disk holding the cache %r is full: this run's statistics and access log "
                            "were not saved", self.disk.directory)
            finally:
                self.disk.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _saved_counters(self) -> dict[str, dict[str, int]]:
        """This run's counters added to those earlier runs saved in the cache directory."""
        assert self.disk is not None
        self._c["l1"].hits = self.l1.total_hits()
        if self.l2 is not None:
            self._c["l2"].hits = self.l2.total_hits()
        raw = self.disk.meta("stats")
        saved: dict[str, dict[str, int]] = orjson.loads(raw) if raw else {}
        for name, counters in self._c.items():
            tier = saved.setdefault(name, {})
            for field in COUNTERS:
                tier[field] = int(tier.get(field, 0)) + getattr(counters, field)
        saved.setdefault("cache", {})["misses"] = int(saved.get("cache", {}).get("misses", 0)) + self._misses
        return saved

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` from the first tier that has it (copied up into L1), else ``default``."""
        try:
            e = self._l1data.get(key)
        except TypeError:
            check_key(key)
            raise
        if e is not None and (not e[1] or e[1] > _time()):
            h = e[5] = e[5] + 1
            if not h & 15:
                self._sample(key)
            return e[0]
        l2 = self._l2data
        if l2 is not None:      # an L2 hit is served in place: both tiers are dicts in this process
            e = l2.get(key)
            if e is not None and (not e[1] or e[1] > _time()):
                e[5] += 1
                return e[0]
        return self._get_slow(key, default)

    def __contains__(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def _sample(self, key: str) -> None:
        """Every 16th L1 hit of a key: time one L1 lookup for the latency figures, log the access (weight 16)."""
        t = _clock()
        self._l1data.get(key)
        self._c1.latency(_clock() - t)
        if self.log is not None:
            self.log.record(key, 16.0)

    def _get_slow(self, key: str, default: Any) -> Any:
        check_key(key)
        t0 = _clock()
        now = _time()
        c = self._c
        with self._lock:
            gen = self._gen
            e = self._l1data.get(key)
            if e is not None:
                if not e[EXPIRES] or e[EXPIRES] > now:
                    return e[VALUE]
                self.l1.pop(key)
                c["l1"].expirations += 1
            c["l1"].misses += 1
            if self.log is not None:
                self.log.record(key, 1.0, now)
            if self.l2 is not None:   # the sketch only serves L2's admission
                self._sketch.add(key)
                e = self.l2.data.get(key)
                if e is not None:
                    if not e[EXPIRES] or e[EXPIRES] > now:
                        e[HITS] += 1
                        return e[VALUE]
                    self.l2.pop(key)
                    c["l2"].expirations += 1
                c["l2"].misses += 1
                self._window_misses += 1
                if self._window_misses >= self._window:
                    self._climb()
        found = self._get_io(key, now, t0)
        if found is None:
            self._misses += 1
            return default
        e, counters = found
        with self._lock:
            if gen == self._gen:
                self._promote(key, e, counters, t0)
            else:   # a write or an invalidation came in meanwhile: return what was read, keep nothing
                counters.hits += 1
                counters.latency(_clock() - t0)
        return e[VALUE]

    def _get_io(self, key: str, now: float, t0: float) -> tuple[list[Any], TierCounters] | None:
        """Redis, then disk; decoded into a memory entry. Expired and rejected values are misses."""
        c = self._c
        if self.redis is not None and self.redis.available:
            got = self.redis.get(key)
            if got is not None:
                data, expires, priority, tags = got
                e = self._decoded(key, data, expires, priority, tags, c["l2"], now)
                if e is not None:
                    return e, c["l2"]
            c["l2"].misses += 1
        if self.disk is None:
            return None
        row = self.disk.get(key)
        if row is None:
            c["l3"].misses += 1
            if self.disk.archive_max_bytes:
                c["l4"].misses += 1
            return None
        tier, data, expires, priority, tags = row
        counters = c["l3" if tier == 3 else "l4"]
        if tier == 4:
            c["l3"].misses += 1
        e = self._decoded(key, data, expires, priority, tags, counters, now)
        if e is None:
            return None
        if tier == 4:   # back up to L3: it is wanted again
            with self._write_lock:
                try:
                    self._account_dropped(self.disk.put(key, data, expires, priority, tags))
                except errors.StorageFull:
                    c["l3"].errors += 1     # it stays in L4, where it is still right
        return e, counters

    def _decoded(self, key: str, data: bytes, expires: float, priority: int, tags: tuple[str, ...],
                 counters: TierCounters, now: float) -> list[Any] | None:
        if expires and expires <= now:
            counters.expirations += 1
            return None
        try:
            value = self.codec.decode(data)
        except Rejected:
            counters.rejected += 1
            return None
        except (ValueError, UnicodeDecodeError):
            counters.errors += 1
            return None
        return [value, expires, len(data), priority, tags, 0, None]

    def _climb(self) -> None:
        """Tune how fast the sketch forgets (its halving period), by hill climbing on the memory hit rate.

        Every ``_window`` memory misses, compare this window's hit rate with the last one's: if
        it got better, take another step the same way, else turn round. A steady popularity
        (Zipf) drifts to a long memory, a shifting one (daily cycles, scans) to a short one.
        """
        assert self.l2 is not None
        hits = self.l1.total_hits() + self.l2.total_hits()
        window_hits = hits - self._window_hits_base
        rate = window_hits / (window_hits + self._window_misses)
        if rate < self._window_rate:
            self._climb_step = 1 / self._climb_step
        self._sketch.tune(self._climb_step)
        self._window_rate = rate
        self._window_hits_base = hits
        self._window_misses = 0

    def _promote(self, key: str, e: list[Any], counters: TierCounters, t0: float) -> None:
        """Put a hit from a lower tier into L1 (memory lock held)."""
        counters.hits += 1
        counters.promotions += 1
        self.l1.put(key, e)
        self._settle()
        counters.latency(_clock() - t0)

    def _settle(self) -> None:
        """Move L1's overflow down to L2 (TinyLFU admission) and L2's overflow out of memory."""
        l1, l2, sketch, c = self.l1, self.l2, self._sketch, self._c
        below = self.disk is not None or self.redis is not None
        while l1.over():
            key = l1.victim()
            e = l1.pop(key)
            assert e is not None
            if e[HITS]:
                sketch.add(key, e[HITS])
                e[HITS] = 0
            if l2 is None:
                self._out(c["l1"], below)
                continue
            c["l1"].demotions += 1
            if l2.full_for(e) and len(l2):
                victim, rank = l2.victim()
                if l2.rank(key, e) <= rank:
                    self._out(c["l2"], below)   # not admitted: it goes on down
                    continue
                l2.pop(victim)
                self._out(c["l2"], below)
            l2.put(key, e)
            while l2.over() and len(l2) > 1:
                victim, _ = l2.victim()
                l2.pop(victim)
                self._out(c["l2"], below)

    @staticmethod
    def _out(counters: TierCounters, below: bool) -> None:
        if below:
            counters.demotions += 1
        else:
            counters.evictions += 1

    def _account_dropped(self, moved: tuple[int, int]) -> None:
        demoted, dropped = moved
        self._c["l3"].demotions += demoted
        self._c["l4" if self.disk and self.disk.archive_max_bytes else "l3"].evictions += dropped

    # -- writes --------------------------------------------------------------------------

    def set(self, key: str, value: Any, *, ttl: float | None = _MISSING, priority: str = "normal",
            tags: Iterable[str] = ()) -> None:
        """Store ``value`` under ``key`` in L1, and through to Redis and disk when the cache has them.

        ``ttl`` seconds (default: the cache's ``ttl``; None: forever) holds in every tier.
        The disk tier is written first: if it cannot take the value for want of space,
        ``StorageFull`` is raised and no tier changed (the cache goes on serving what it holds).
        """
        check_key(key)
        self._store(key, value, expires_at(self.default_ttl if ttl is _MISSING else ttl), priority_of(priority),
                    tags_of(tags))

    def _store(self, key: str, value: Any, expires: float, prio: int, tag_tuple: tuple[str, ...]) -> None:
        if self.disk is not None or self.redis is not None:
            data: bytes | None = self.codec.encode(key, value)
        else:
            data = None
            if self.codec.json:     # refused in memory too, so that no tier holds what another could not
                check_finite(key, value)
        with self._write_lock:
            if self.disk is not None:
                assert data is not None
                self._on_disk(self.disk.put, key, data, expires, prio, tag_tuple)
            self._remember(key, value, expires, len(data) if data is not None else size_of(value), prio, tag_tuple)
            if self.redis is not None:
                assert data is not None
                self.redis.set(key, data, expires, prio, tag_tuple)

    def _remember(self, key: str, value: Any, expires: float, size: int, prio: int, tags: tuple[str, ...]) -> None:
        """Put a value just written into L1 (it leaves L2, which holds no key L1 has)."""
        e = [value, expires, size, prio, tags, 0, None]
        with self._lock:
            self._gen += 1
            if self.l2 is not None:
                self.l2.pop(key)
            self.l1.put(key, e)
            self._settle()

    def _on_disk(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A write to the disk tiers; its failure is counted in L3's errors and raised."""
        assert self.disk is not None
        try:
            result = call(*args, **kwargs)
        except errors.ValidationError:
            raise   # the value's fault (``incr`` of a str), not the disk's
        except errors.KuraError:
            self._c["l3"].errors += 1
            raise
        if call == self.disk.put:
            self._account_dropped(result)
        return result

    def set_many(self, items: dict[str, Any], *, ttl: float | None = _MISSING, priority: str = "normal",
                 tags: Iterable[str] = ()) -> None:
        tag_list = list(tags)
        for key, value in items.items():
            self.set(key, value, ttl=ttl, priority=priority, tags=tag_list)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The keys that are present, with their values."""
        out = {}
        for key in keys:
            v = self.get(key, _MISSING)
            if v is not _MISSING:
                out[key] = v
        return out

    def add(self, key: str, value: Any, *, ttl: float | None = _MISSING, priority: str = "normal",
            tags: Iterable[str] = ()) -> bool:
        """Set ``key`` only if it is absent; True if it was set (atomic within this process)."""
        with self._write_lock:
            if self.get(key, _MISSING) is not _MISSING:
                return False
            self.set(key, value, ttl=ttl, priority=priority, tags=tags)
            return True

    def incr(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` to an integer value, keeping its expiry, priority and tags; KeyError if absent.

        Atomic for every process sharing the Redis (when it is the L2 and reachable),
        else for every process sharing the cache directory, else within this process.
        """
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise errors.ValidationError(f"delta must be an int, not {delta!r}", path="delta")
        check_key(key)
        change = functools.partial(self._added, key, delta)
        with self._write_lock:
            if self.redis is not None and self.redis.available:
                got = self._incr_redis(key, delta, change)
                if got is not None:
                    return got
            if self.disk is not None:
                found = self._on_disk(self.disk.update, key, change)
                if found is not None:
                    data, expires, prio, tags, moved = found
                    self._account_dropped(moved)
                    value: int = self.codec.decode(data)
                    self._remember(key, value, expires, len(data), prio, tags)
                    return value
            e = self._memory_entry(key)     # the only copy is in memory (no tier below, or it dropped it)
            if e is None:
                raise KeyError(key)
            self._check_int(key, e[VALUE])
            self._store(key, e[VALUE] + delta, e[EXPIRES], e[PRIORITY], e[TAGS])
            return int(e[VALUE] + delta)

    def _incr_redis(self, key: str, delta: int, change: Callable[[bytes], bytes]) -> int | None:
        """``incr`` in Redis; None if Redis failed meanwhile (the caller goes on with the local tiers)."""
        assert self.redis is not None
        got = self.redis.incr(key, delta, change)
        if got == ABSENT:   # written while Redis was away, or evicted by it: seed it from here, once
            local = self._local_fields(key)
            if local is None:
                raise KeyError(key)
            self.redis.set(key, *local, only_new=True)
            got = self.redis.incr(key, delta, change)
        if got is None:
            return None
        if got == ABSENT:
            raise KeyError(key)
        if got == NOT_INT:
            raise errors.ValidationError(f"cache value for {key!r} is not an integer", path=key)
        assert isinstance(got, tuple)
        data, expires, prio, tags = got
        value: int = self.codec.decode(data)
        self._remember(key, value, expires, len(data), prio, tags)
        if self.disk is not None:
            try:
                self._on_disk(self.disk.put, key, data, expires, prio, tags, shadow=True)
            except errors.StorageFull:
                pass    # Redis took it, so the increment happened; the disk's stale copy is shadowed
        return value

    def _memory_entry(self, key: str) -> list[Any] | None:
        with self._lock:
            for tier in (self.l1, self.l2):
                e = tier.data.get(key) if tier is not None else None
                if e is not None and (not e[EXPIRES] or e[EXPIRES] > _time()):
                    return e
        return None

    def _local_fields(self, key: str) -> Fields | None:
        """``key`` as this process holds it (memory first: it is never older than the disk), encoded."""
        e = self._memory_entry(key)
        if e is not None:
            return self.codec.encode(key, e[VALUE]), e[EXPIRES], e[PRIORITY], e[TAGS]
        row = self.disk.get(key) if self.disk is not None else None
        if row is None or (row[2] and row[2] <= _time()):
            return None
        return row[1], row[2], row[3], row[4]

    @staticmethod
    def _check_int(key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise errors.ValidationError(f"cache value for {key!r} is not an integer", path=key)

    def _added(self, key: str, delta: int, data: bytes) -> bytes:
        """An encoded integer plus ``delta``, encoded (inside Redis's or SQLite's transaction)."""
        try:
            value = self.codec.decode(data)
        except (Rejected, ValueError, UnicodeDecodeError):
            value = None
        self._check_int(key, value)
        return self.codec.encode(key, value + delta)

    def delete(self, key: str) -> bool:
        """Remove ``key`` from every tier; True if some tier had it."""
        check_key(key)
        return self._delete([key]) > 0

    def _delete(self, keys: list[str], *, publish: bool = True) -> int:
        with self._write_lock:
            found = set()
            if self.disk is not None:   # first: if it fails for want of space, nothing changed
                if self._on_disk(self.disk.delete, keys):
                    found.update(keys)
            with self._lock:
                self._gen += 1
                for key in keys:
                    if self.l1.pop(key) is not None or (self.l2 is not None and self.l2.pop(key) is not None):
                        found.add(key)
            if self.redis is not None and publish:
                if self.redis.delete(keys):
                    found.update(keys)  # the count is of all keys; fine-grained presence is not needed
            return len(found)

    def clear(self, *, pattern: str | None = None, tag: str | None = None) -> int:
        """Remove every key, or those matching a glob ``pattern`` (``*``, ``?``, ``[abc]``), or carrying ``tag``.

        Returns how many keys were removed (an upper bound when Redis is shared).
        """
        if pattern is not None and type(pattern) is not str:
            raise errors.ValidationError(f"pattern must be a str, not {type(pattern).__name__}", path="pattern")
        if tag is not None:
            tags_of([tag])
        if pattern is None and tag is None:
            with self._write_lock:
                n = self._on_disk(self.disk.clear) if self.disk is not None else 0
                with self._lock:
                    self._gen += 1
                    n = max(n, len(self.l1) + (len(self.l2) if self.l2 else 0))
                    self._clear_memory()
                if self.redis is not None:
                    self.redis.clear_all()
                return n
        keys: set[str] = set()
        with self._lock:
            for tier in (self.l1, self.l2):
                if tier is None:
                    continue
                for k, e in list(tier.data.items()):
                    if (pattern is None or fnmatch.fnmatchcase(k, pattern)) and (tag is None or tag in e[TAGS]):
                        keys.add(k)
        for lower in (self.redis, self.disk):
            if lower is not None:
                keys.update(lower.keys(pattern=pattern, tag=tag) if tag is None or pattern is None
                            else [k for k in lower.keys(tag=tag) if fnmatch.fnmatchcase(k, pattern)])
        n = self._delete(sorted(keys))
        if tag is not None and self.redis is not None:
            self.redis.forget_tag(tag)
            self.redis.publish_tag(tag)
        return n

    def _clear_memory(self) -> None:
        for k in list(self.l1.data):
            self.l1.pop(k)
        if self.l2 is not None:
            for k in list(self.l2.data):
                self.l2.pop(k)

    def set_ttl(self, key: str, ttl: float | None) -> bool:
        """Give ``key`` a new time to live (None: forever) in every tier; False if no tier has it."""
        check_key(key)
        expires = expires_at(ttl)
        with self._write_lock:
            found = self.disk is not None and self._on_disk(self.disk.set_expires, key, expires)
            with self._lock:
                for tier in (self.l1, self.l2):
                    e = tier.data.get(key) if tier is not None else None
                    if e is not None:
                        e[EXPIRES] = expires
                        found = True
            if self.redis is not None:
                found = self.redis.set_expires(key, expires) or found
        return bool(found)

    def touch(self, key: str, ttl: float | None = _MISSING) -> bool:
        return self.set_ttl(key, self.default_ttl if ttl is _MISSING else ttl)

    def _invalidated(self, key: str | None, tag: str | None) -> None:
        """Another process changed ``key`` (or everything tagged ``tag``, or everything when both are None)."""
        with self._lock:
            self._gen += 1
            if key is not None:
                self.l1.pop(key)
                if self.l2 is not None:
                    self.l2.pop(key)
            elif tag is not None:
                for tier in (self.l1, self.l2):
                    if tier is not None:
                        for k, e in list(tier.data.items()):
                            if tag in e[TAGS]:
                                tier.pop(k)
            else:
                self._clear_memory()

    # -- loaders ---------------------------------------------------------------------------

    def get_or_set(self, key: str, loader: Callable[[], Any], *, ttl: float | None = _MISSING,
                   priority: str = "normal", tags: Iterable[str] = (), lock_timeout: float = 30.0) -> Any:
        """The cached value, or ``loader()``'s result stored and returned.

        Concurrent misses on one key call ``loader`` once: across threads, and across
        processes when Redis is the L2 (a Redis lock; the others wait for the value,
        at most ``lock_timeout`` seconds, then load it themselves). A loader's exception
        reaches every waiting caller and nothing is stored.
        """
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            return value
        return self._flights.run(key, lambda: loaders.load(self, key, loader, ttl, priority, tags, lock_timeout))

    def memoize(self, ttl: float | None = _MISSING, *, key: Callable[..., str] | None = None,
                tags: Iterable[str] = ()) -> Callable[[F], F]:
        """Decorator: cache a function's results by its arguments (JSON-encodable ones, or give ``key``).

        The wrapper has ``.invalidate(*args, **kwargs)`` and ``.cache_key(*args, **kwargs)``.
        """
        return loaders.memoize(self, ttl, key, tags)

    # -- prewarming ------------------------------------------------------------------------

    def prewarm(self, loader: Callable[[str], Any] | None = None, *, top: int = 1000,
                window: float = 3600.0) -> int:
        """Load the ``top`` keys the access log predicts for the next ``window`` seconds into memory.

        ``loader(key)`` gives a key's value (raise KeyError to skip it); without a loader
        the values come from the disk tiers. Returns how many keys were loaded.
        """
        return prewarm(self, loader, top, window)

    def prewarm_every(self, seconds: float, loader: Callable[[str], Any] | None = None, *,
                      top: int = 1000) -> None:
        """Run ``prewarm`` on a background thread every ``seconds`` (stopped by ``close``)."""
        expires_at(seconds, "seconds")

        def run() -> None:
            while not self._stop.wait(seconds):
                try:
                    self.prewarm(loader, top=top, window=seconds)
                except Exception:  # noqa: BLE001 - a failing loader must not kill the thread
                    self._c["l1"].errors += 1

        t = threading.Thread(target=run, name="kuradb-cache-prewarm", daemon=True)
        self._threads.append(t)
        t.start()

    # -- statistics ------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Counters per tier (l1..l4; l2 is Redis when ``redis_url`` is set) and overall hits/misses.

        Each tier's ``state`` is ``ok``, ``off`` (not configured), ``unreachable`` or ``refused``
        (Redis, see ``health()``) or ``full`` (the disk).
        """
        c = self._c
        with self._lock:
            c["l1"].hits = self.l1.total_hits()
            tiers = {"l1": c["l1"].snapshot(len(self.l1), self.l1.bytes)}
            if self.l2 is not None:
                c["l2"].hits = self.l2.total_hits()
                tiers["l2"] = c["l2"].snapshot(len(self.l2), self.l2.bytes)
            else:
                tiers["l2"] = c["l2"].snapshot(0, 0, self.redis.state if self.redis is not None else "off")
        usage = self.disk.usage() if self.disk is not None else {}
        disk = "off" if self.disk is None else "full" if self.disk.full_since is not None else "ok"
        tiers["l3"] = c["l3"].snapshot(*usage.get(3, (0, 0)), disk)
        tiers["l4"] = c["l4"].snapshot(*usage.get(4, (0, 0)), disk if self.disk and self.disk.archive_max_bytes
                                       else "off")
        hits = sum(t.hits for t in tiers.values())
        return CacheStats(hits=hits, misses=self._misses, tiers=tiers)

    def health(self) -> Health:
        """Checks ``redis`` (when ``redis_url`` is set) and ``disk`` (when the cache has a directory);
        see ``kuradb.cache.status``."""
        return status.health(self.redis, self.disk)

    def count(self) -> int:
        """How many keys the cache holds: the disk tiers' count when it has a directory (every ``set``
        is written through to it), else the memory tiers'. Keys only Redis holds are not counted."""
        if self.disk is not None:
            return self.disk.count()
        with self._lock:
            return len(self.l1) + (len(self.l2) if self.l2 is not None else 0)

    def evict(self, n: int) -> int:
        """Remove the ``n`` least valuable keys from every tier (the disk's order when the cache has
        a directory: archive first, then low priority, then least recently read; else L2's, then
        L1's eviction order). Returns how many were removed."""
        positive("n", n, zero=True)
        with self._write_lock:
            if self.disk is not None:
                keys = self.disk.victims(n)
            else:
                keys = []
                with self._lock:
                    while len(keys) < n and self.l2 is not None and len(self.l2):
                        keys.append(self.l2.victim()[0])
                        self.l2.pop(keys[-1])
                    while len(keys) < n and len(self.l1):
                        keys.append(self.l1.victim())
                        self.l1.pop(keys[-1])
            self._delete(keys)
            self._c["l3" if self.disk is not None else "l1"].evictions += len(keys)
            return len(keys)

    def hit_rate(self) -> float:
        return self.stats().hit_rate

    def reset_stats(self) -> None:
        with self._lock:
            for counters in self._c.values():
                counters.reset()
            self._misses = 0
            self.l1.hits = -sum(e[HITS] for e in self.l1.data.values())
            if self.l2 is not None:
                self.l2.hits = -sum(e[HITS] for e in self.l2.data.values())


__all__ = ["Cache", "CacheStats", "TierStats"]
