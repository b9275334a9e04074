"""Synthetic access traces and offline policies for bench/cache.py (hit ratio).

Keys are ints; every policy sees them as the same strings. Traces:
- zipf(alpha): independent requests, key rank r drawn with probability ~ 1/r^alpha.
- scan: Zipf 0.9 with every fifth block of requests replaced by a sequential scan of
  keys never seen before (a backup or report walking the data), plus a loop of a
  working set slightly larger than the cache (the pattern that defeats LRU).
- daily: 7 days x 24 hours; each hour has its own hot set (a Zipf 0.9 over a window of
  the key space that shifts with the hour of day and repeats every day), mixed with a
  global Zipf background. Requests carry a timestamp so prewarming can be measured.
"""
from __future__ import annotations

import heapq
import itertools
import random
from bisect import bisect

HOUR = 3600.0


def _zipf_sampler(n: int, alpha: float, rnd: random.Random):
    cum = list(itertools.accumulate(1.0 / (r ** alpha) for r in range(1, n + 1)))
    total = cum[-1]
    perm = list(range(n))
    rnd.shuffle(perm)                       # popular keys are not the small numbers

    def sample(k: int) -> list[int]:
        rand = rnd.random
        return [perm[bisect(cum, rand() * total)] for _ in range(k)]
    return sample


def zipf(n_keys: int, n_requests: int, alpha: float, seed: int = 1) -> list[int]:
    return _zipf_sampler(n_keys, alpha, random.Random(seed))(n_requests)


def scan(n_keys: int, n_requests: int, cache_size: int, seed: int = 2) -> list[int]:
    rnd = random.Random(seed)
    sample = _zipf_sampler(n_keys, 0.9, rnd)
    out: list[int] = []
    block = max(1000, n_requests // 50)
    fresh = n_keys                          # scanned keys come from beyond the Zipf range
    loop = list(range(2 * n_keys, 2 * n_keys + int(cache_size * 1.2)))
    i = 0
    while len(out) < n_requests:
        kind = i % 5
        if kind == 3:                       # a one-off scan
            out.extend(range(fresh, fresh + block))
            fresh += block
        elif kind == 4:                     # a loop over a working set 1.2x the cache
            out.extend(loop[j % len(loop)] for j in range(block))
        else:
            out.extend(sample(block))
        i += 1
    return out[:n_requests]


def daily(n_keys: int, n_requests: int, seed: int = 3, days: int = 7) -> list[tuple[float, int]]:
    """(timestamp, key) pairs over ``days`` days; the hot window moves with the hour of day."""
    rnd = random.Random(seed)
    per_hour = max(1, n_requests // (days * 24))
    window = max(100, n_keys // 24)
    hot = _zipf_sampler(window, 0.9, rnd)
    background = _zipf_sampler(n_keys, 0.8, rnd)
    out: list[tuple[float, int]] = []
    for day in range(days):
        for hour in range(24):
            start = (day * 24 + hour) * HOUR
            base = hour * window
            keys = [base + k if rnd.random() < 0.7 else b for k, b in zip(hot(per_hour), background(per_hour),
                                                                          strict=True)]
            step = HOUR / per_hour
            out.extend((start + j * step, k % n_keys) for j, k in enumerate(keys))
    return out


def belady(trace: list[int], capacity: int) -> int:
    """Hits of the optimal offline policy: evict the key whose next use is furthest away."""
    nxt = [0] * len(trace)
    last: dict[int, int] = {}
    never = len(trace) + 1
    for i in range(len(trace) - 1, -1, -1):
        k = trace[i]
        nxt[i] = last.get(k, never)
        last[k] = i
    resident: dict[int, int] = {}           # key -> its next use
    heap: list[tuple[int, int]] = []        # (-next use, key), stale entries skipped
    hits = 0
    for i, k in enumerate(trace):
        if k in resident:
            hits += 1
        elif len(resident) >= capacity:
            while True:
                neg, victim = heapq.heappop(heap)
                if resident.get(victim) == -neg:
                    del resident[victim]
                    break
        resident[k] = nxt[i]
        heapq.heappush(heap, (-nxt[i], k))
    return hits
