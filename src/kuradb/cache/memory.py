"""The in-process tiers: L1 (LRU) and L2 (LFU with TinyLFU admission), and the frequency sketch.

An entry is a list ``[value, expires, size, priority, tags, hits, seen]`` (a list, not
an object: the L1 hit path reads it a few million times a second).
``expires`` is a wall-clock time (0 = never) so it means the same in every tier
and process; ``hits`` counts L1 hits not yet added to the sketch (they are added
in one step when the entry leaves L1, which keeps the sketch off the hit path).
"""
from __future__ import annotations

import random
import sys
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

VALUE, EXPIRES, SIZE, PRIORITY, TAGS, HITS, SEEN = range(7)
PRIORITIES = {"low": 0, "normal": 1, "high": 2}
_HALVE = bytes(i >> 1 for i in range(256))


def size_of(value: Any) -> int:
    """The bytes an in-memory entry is charged: exact for bytes/str, shallow ``getsizeof`` otherwise."""
    if type(value) is bytes or type(value) is str:
        return len(value)
    return sys.getsizeof(value)


class Sketch:
    """Count-min sketch of access frequency (4 rows, conservative update, halved every ``period`` adds).

    Frequencies saturate at ``cap``; halving makes old popularity fade, so a key
    that was hot yesterday does not keep out one that is hot now. The period starts
    long (a steady popularity is best served by a long memory, and a halving's effect
    takes a whole period to show) and ``tune`` shortens it when the cache sees that helps.
    """

    __slots__ = ("_t", "_mask", "_width", "_adds", "_period", "_capacity", "cap")

    WIDTH = 4       # counters per row per cached item
    PERIOD = 200    # halve after this many adds per cached item, at first
    PERIODS = (2, 200)  # the range ``tune`` keeps it in
    MAX_WIDTH = 1 << 24  # 64 MiB of counters at most: past that, more width buys less than it costs

    def __init__(self, capacity: int, cap: int = 15) -> None:
        width = 64
        while width < capacity * self.WIDTH and width < self.MAX_WIDTH:
            width <<= 1
        self._width = width
        self._mask = width - 1
        self._t = bytearray(4 * width)
        self._adds = 0
        self._capacity = max(capacity, 100)
        self._period = max(self.PERIOD * capacity, 1000)
        self.cap = cap

    def _slots(self, key: Any) -> tuple[int, int, int, int]:
        h = hash(key)
        g = (h * 0x9E3779B97F4A7C15) >> 11
        m, w = self._mask, self._width
        return h & m, w + ((h >> 21) & m), 2 * w + (g & m), 3 * w + ((g >> 23) & m)

    def frequency(self, key: Any) -> int:
        t = self._t
        a, b, c, d = self._slots(key)
        return min(t[a], t[b], t[c], t[d])

    def tune(self, factor: float) -> None:
        """Scale the halving period by ``factor``, within ``PERIODS`` adds per cached item."""
        low, high = self.PERIODS
        self._period = int(min(max(self._period * factor, low * self._capacity), high * self._capacity))

    def add(self, key: Any, n: int = 1) -> None:
        t, m, w = self._t, self._mask, self._width
        h = hash(key)
        g = (h * 0x9E3779B97F4A7C15) >> 11
        a, b, c, d = h & m, w + ((h >> 21) & m), 2 * w + (g & m), 3 * w + ((g >> 23) & m)
        va, vb, vc, vd = t[a], t[b], t[c], t[d]
        new = min(va, vb, vc, vd) + n
        if new > self.cap:
            new = self.cap
        # conservative update: raise only the counters below the new minimum
        if va < new:
            t[a] = new
        if vb < new:
            t[b] = new
        if vc < new:
            t[c] = new
        if vd < new:
            t[d] = new
        self._adds += n
        if self._adds >= self._period:
            self._t = bytearray(self._t.translate(_HALVE))
            self._adds //= 2


class _Tier:
    """What both memory tiers keep: entries by key, their bytes, and the hits of entries gone."""

    def __init__(self, max_items: int, max_bytes: int | None) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.data: dict[str, list[Any]] = {}
        self.bytes = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self.data)

    def keys(self) -> Iterator[str]:
        return iter(list(self.data))

    def over(self) -> bool:
        return len(self.data) > self.max_items or (self.max_bytes is not None and self.bytes > self.max_bytes)

    def total_hits(self) -> int:
        return self.hits + sum(e[HITS] for e in list(self.data.values()))


class LRUTier(_Tier):
    """L1: least recently used goes first (approximated by CLOCK), within priority classes: every low
    entry goes before any normal one.

    A hit only counts (``entry[HITS] += 1``); it does not reorder anything, so the hit path
    is a dict lookup. Eviction walks from the oldest entry: one hit since it was last
    looked at (``HITS > SEEN``) buys it a second chance at the young end, the first
    without one goes. This is the second-chance approximation of LRU page caches use.
    """

    def __init__(self, max_items: int, max_bytes: int | None) -> None:
        super().__init__(max_items, max_bytes)   # hits: of entries that have left; the rest count in their entry
        self.order: tuple[OrderedDict[str, None], ...] = (OrderedDict(), OrderedDict(), OrderedDict())

    def put(self, key: str, entry: list[Any]) -> None:
        old = self.data.get(key)
        if old is not None:
            self.bytes -= old[SIZE]
            if old[PRIORITY] != entry[PRIORITY]:
                del self.order[old[PRIORITY]][key]
        self.data[key] = entry
        entry[HITS] = 0
        entry[SEEN] = -1     # a newcomer has its second chance already: the next insert cannot push it out
        order = self.order[entry[PRIORITY]]
        order[key] = None
        order.move_to_end(key)
        self.bytes += entry[SIZE]

    def pop(self, key: str) -> list[Any] | None:
        e = self.data.pop(key, None)
        if e is not None:
            self.order[e[PRIORITY]].pop(key, None)
            self.bytes -= e[SIZE]
            self.hits += e[HITS]
        return e

    def victim(self) -> str:
        data = self.data
        for order in self.order:
            while order:
                key = next(iter(order))
                e = data[key]
                if e[HITS] > e[SEEN]:
                    e[SEEN] = e[HITS]
                    order.move_to_end(key)
                    continue
                return key
        raise KeyError("empty tier")


class LFUTier(_Tier):
    """L2: evicts the least frequently used of a random sample, lower priority first.

    A newcomer from L1 enters only if the sketch says it is used more often than the
    entry it would replace (TinyLFU admission); otherwise it goes on down (or out).
    A hit is served in place and only counted in the entry (like L1); the count reaches
    the sketch when the entry is next weighed as a victim or leaves the tier.
    """

    SAMPLE = 8

    def __init__(self, max_items: int, max_bytes: int | None, sketch: Sketch) -> None:
        super().__init__(max_items, max_bytes)   # hits: those already added to the sketch
        self.sketch = sketch
        self._keys: list[str] = []   # for sampling: index-addressable, swap-removed
        self._at: dict[str, int] = {}
        self._rand = random.Random(0x6B757261).random

    def put(self, key: str, entry: list[Any]) -> None:
        old = self.data.get(key)
        if old is not None:
            self.bytes -= old[SIZE]
        else:
            self._at[key] = len(self._keys)
            self._keys.append(key)
        entry[HITS] = 0
        self.data[key] = entry
        self.bytes += entry[SIZE]

    def pop(self, key: str) -> list[Any] | None:
        e = self.data.pop(key, None)
        if e is not None:
            self._flush(key, e)
            self.bytes -= e[SIZE]
            i = self._at.pop(key)
            last = self._keys.pop()
            if last != key:
                self._keys[i] = last
                self._at[last] = i
        return e

    def full_for(self, entry: list[Any]) -> bool:
        return len(self.data) >= self.max_items or (
            self.max_bytes is not None and self.bytes + entry[SIZE] > self.max_bytes)

    def _flush(self, key: str, e: list[Any]) -> None:
        if e[HITS]:
            self.sketch.add(key, e[HITS])
            self.hits += e[HITS]
            e[HITS] = 0

    def rank(self, key: str, entry: list[Any]) -> tuple[int, int]:
        self._flush(key, entry)
        return entry[PRIORITY], self.sketch.frequency(key)

    def victim(self) -> tuple[str, tuple[int, int]]:
        keys, n, data, rand = self._keys, len(self._keys), self.data, self._rand
        best: tuple[int, int] | None = None
        best_key = keys[0]
        for _ in range(min(self.SAMPLE, n)):
            k = keys[int(rand() * n)]
            r = self.rank(k, data[k])
            if best is None or r < best:
                best, best_key = r, k
        assert best is not None
        return best_key, best
