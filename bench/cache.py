"""Cache benchmark: hit ratio against cachetools, theine and Belady; latency per tier against
dict, cachetools, theine, diskcache and raw redis-py; the store's cached get against diskcache.

Run:  python bench/cache.py [--keys 1000000] [--requests 2000000] [--rounds 5] [--only ratio,latency,store]

(a) Hit ratio: each trace (bench/cache_traces.py) is replayed through every policy at the
    same capacity (1% and 10% of the keys): kuradb's memory tiers (L1 = 9% of the capacity,
    the default 10k:100k split, L2 the rest), cachetools LRU and LFU, theine (W-TinyLFU,
    Rust core) and Belady's offline optimum. On a miss the key is set. The daily trace is
    also replayed with ``prewarm`` at every hour boundary (loader = the key itself).
(b) Latency: get-hit, get-miss and set, medians of interleaved rounds, per tier for kuradb
    (each tier forced by sizing the ones above it to 1 item), p99 per op from a timed pass.
(c) Store: ``get(id)`` on 100k ~200-byte documents, random ids, with cache="default"
    (warm), without, diskcache get of the same documents, and raw SQLite (apsw) as the floor.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, HERE)
import cache_traces as traces  # noqa: E402

import kuradb  # noqa: E402

# -- (a) hit ratio ----------------------------------------------------------------------------------

def hits_kuradb(trace: list[str], cap: int) -> int:
    l1 = max(1, cap * 9 // 100)
    c = kuradb.Cache(None, l1_max_items=l1, l2_max_items=cap - l1, access_log=0)
    get, put, h = c.get, c.set, 0
    for k in trace:
        if get(k) is None:
            put(k, 1)
        else:
            h += 1
    return h


def hits_cachetools(cls: Any) -> Callable[[list[str], int], int]:
    def run(trace: list[str], cap: int) -> int:
        c = cls(cap)
        h = 0
        for k in trace:
            if c.get(k) is None:
                c[k] = 1
            else:
                h += 1
        return h
    return run


def hits_theine(trace: list[str], cap: int) -> int:
    import theine
    c = theine.Cache(cap)
    h = 0
    for k in trace:
        if c.get(k)[1]:
            h += 1
        else:
            c.set(k, 1)
    return h


def hits_prewarmed(timed: list[tuple[float, int]], cap: int) -> tuple[int, int]:
    """Daily trace with and without prewarm(top=cap/10) at each hour; returns (without, with) hits."""
    from kuradb.cache import prewarm
    out = []
    for warm in (False, True):
        l1 = max(1, cap * 9 // 100)
        c = kuradb.Cache(None, l1_max_items=l1, l2_max_items=cap - l1, access_log=0)
        log = prewarm.AccessLog(max_keys=cap * 10)
        h, hour = 0, -1
        for t, k in timed:
            key = str(k)
            if warm and int(t // 3600) != hour:
                hour = int(t // 3600)
                for p in log.predict(cap // 10, now=t):
                    if c.get(p) is None:
                        c.set(p, 1)
                c.reset_stats()
            log.record(key, now=t)
            if c.get(key) is None:
                c.set(key, 1)
            else:
                h += 1
        out.append(h)
    return out[0], out[1]


def ratio_table(n_keys: int, n_requests: int) -> None:
    import cachetools
    policies: dict[str, Callable[[list[str], int], int]] = {
        "kuradb": hits_kuradb, "cachetools LRU": hits_cachetools(cachetools.LRUCache),
        "cachetools LFU": hits_cachetools(cachetools.LFUCache), "theine": hits_theine}
    print(f"\n(a) hit ratio, {n_keys:,} keys, {n_requests:,} requests; % of requests that hit")
    print(f"{'trace':<22}{'cache':>8}" + "".join(f"{p:>16}" for p in policies) + f"{'Belady':>10}"
          f"{'vs theine':>11}{'gap to Belady':>15}")
    daily = traces.daily(n_keys, n_requests)
    made = {"zipf 0.8": traces.zipf(n_keys, n_requests, 0.8), "zipf 0.99": traces.zipf(n_keys, n_requests, 0.99),
            "scan + loop": None, "daily cycle": [k for _, k in daily]}
    for pct in (1, 10):
        cap = n_keys * pct // 100
        for name, trace in made.items():
            if trace is None:
                trace = traces.scan(n_keys, n_requests, cap)
            keys = [str(k) for k in trace]
            got = {p: fn(keys, cap) / len(keys) * 100 for p, fn in policies.items()}
            best = traces.belady(trace, cap) / len(trace) * 100
            print(f"{name:<22}{str(pct) + '%':>8}" + "".join(f"{v:>16.2f}" for v in got.values())
                  + f"{best:>10.2f}{got['kuradb'] - got['theine']:>+11.2f}{best - got['kuradb']:>15.2f}", flush=True)
    cap = n_keys // 100
    without, with_ = hits_prewarmed(daily, cap)
    print(f"prewarm on the daily trace (1% cache, top {cap // 10} keys at each hour): hit ratio "
          f"{without / len(daily) * 100:.2f}% without, {with_ / len(daily) * 100:.2f}% with")


# -- (b) latency -----------------------------------------------------------------------------------

def timed(fn: Callable[[str], Any], keys: list[str], rounds: int) -> tuple[float, float]:
    """(median us/op over rounds, p99 us/op from one per-op timed pass)."""
    per_round = []
    for _ in range(rounds):
        t = time.perf_counter()
        for k in keys:
            fn(k)
        per_round.append((time.perf_counter() - t) / len(keys) * 1e6)
    clock = time.perf_counter
    lat = []
    for k in keys[:5000]:
        t = clock()
        fn(k)
        lat.append(clock() - t)
    lat.sort()
    return statistics.median(per_round), lat[int(len(lat) * 0.99)] * 1e6


def latency_table(rounds: int, tmp: str) -> None:
    import cachetools
    import diskcache
    import redis
    import theine
    n = 20_000
    keys = [f"key:{i}" for i in range(n)]
    value = {"name": "sketch", "layers": [1, 2, 3], "text": "lorem ipsum dolor sit amet " * 4}
    missing = [f"nope:{i}" for i in range(n)]
    rows: list[tuple[str, str, float, float]] = []

    def add(system: str, op: str, fn: Callable[[str], Any], ks: list[str]) -> None:
        med, p99 = timed(fn, ks, rounds)
        rows.append((system, op, med, p99))

    d: dict[str, Any] = {}
    add("dict", "set", lambda k: d.__setitem__(k, value), keys)
    add("dict", "get hit", d.get, keys)
    lru = cachetools.LRUCache(n * 2)
    add("cachetools LRU", "set", lambda k: lru.__setitem__(k, value), keys)
    add("cachetools LRU", "get hit", lru.get, keys)
    add("cachetools LRU", "get miss", lru.get, missing)
    th = theine.Cache(n * 2)
    add("theine", "set", lambda k: th.set(k, value), keys)
    add("theine", "get hit", th.get, keys)
    add("theine", "get miss", th.get, missing)
    dc = diskcache.Cache(os.path.join(tmp, "diskcache"))
    add("diskcache", "set", lambda k: dc.set(k, value), keys[:5000])
    add("diskcache", "get hit", dc.get, keys[:5000])
    add("diskcache", "get miss", dc.get, missing[:5000])
    dc.close()
    r = redis.Redis()
    try:
        r.ping()
        import orjson
        prefix = f"kuradb-bench-{os.getpid()}:"
        add("redis-py raw", "set", lambda k: r.set(prefix + k, orjson.dumps(value)), keys[:3000])
        add("redis-py raw", "get hit", lambda k: r.get(prefix + k), keys[:3000])
        for k in keys[:3000]:
            r.delete(prefix + k)
    except redis.RedisError:
        print("(redis not reachable at 127.0.0.1:6379: raw redis-py rows skipped)")
        r = None  # type: ignore[assignment]

    mem = kuradb.Cache(None, l1_max_items=n * 2, l2_max_items=0)
    add("kuradb L1", "set", lambda k: mem.set(k, value), keys)
    add("kuradb L1", "get hit", mem.get, keys)
    add("kuradb L1", "get miss", mem.get, missing)
    two = kuradb.Cache(None, l1_max_items=1, l2_max_items=n * 2)
    for k in keys:
        two.set(k, value)
    add("kuradb L2 (memory)", "get hit", two.get, keys)
    if r is not None:
        red = kuradb.Cache(None, l1_max_items=1, redis_url="redis://127.0.0.1:6379/0",
                           namespace=f"kuradb-bench-{os.getpid()}")
        add("kuradb L2 (Redis)", "set", lambda k: red.set(k, value), keys[:3000])
        add("kuradb L2 (Redis)", "get hit", red.get, keys[:3000])
        red.clear()
        red.close()
    disk = kuradb.Cache(os.path.join(tmp, "l3"), l1_max_items=1, l2_max_items=0)
    add("kuradb L3 (disk)", "set", lambda k: disk.set(k, value), keys[:5000])
    add("kuradb L3 (disk)", "get hit", disk.get, keys[:5000])
    add("kuradb L3 (disk)", "get miss", disk.get, missing[:5000])
    disk.close()
    arch = kuradb.Cache(os.path.join(tmp, "l4"), l1_max_items=1, l2_max_items=0, disk_max_bytes=1,
                        archive_max_bytes=1 << 30)
    for k in keys[:5000]:
        arch.set(k, value)
    add("kuradb L4 (archive)", "get hit", arch.get, keys[:5000])
    arch.close()

    print(f"\n(b) latency, ~{len(str(value))}-byte JSON values; median us/op of {rounds} rounds, p99 from a timed pass")
    print(f"{'system':<22}{'op':<10}{'us/op':>9}{'ops/s':>12}{'p99 us':>10}")
    for system, op, med, p99 in rows:
        print(f"{system:<22}{op:<10}{med:>9.2f}{1e6 / med:>12,.0f}{p99:>10.1f}")
    look = {(s, o): m for s, o, m, _ in rows}
    print("ratios (>1 = kuradb faster):")
    for ours, theirs, op in (("kuradb L1", "cachetools LRU", "get hit"), ("kuradb L1", "theine", "get hit"),
                             ("kuradb L2 (memory)", "cachetools LRU", "get hit"),
                             ("kuradb L3 (disk)", "diskcache", "get hit"), ("kuradb L3 (disk)", "diskcache", "set"),
                             ("kuradb L3 (disk)", "diskcache", "get miss")):
        print(f"  {ours} {op} vs {theirs} {op}: {look[theirs, op] / look[ours, op]:.2f}x")


# -- (c) store get -----------------------------------------------------------------------------------

def store_table(rounds: int, tmp: str) -> None:
    import apsw
    import diskcache
    import orjson
    sys.path.insert(0, HERE)
    from kv import make_docs
    docs = make_docs(100_000)
    path = os.path.join(tmp, "store")
    with kuradb.open(path) as s:
        for start in range(0, len(docs), 1000):
            s.collection("docs").put_many(docs[start:start + 1000])
    ids = [i for i, _ in docs]
    rnd = random.Random(5)
    sample = [rnd.choice(ids[:20_000]) for _ in range(50_000)]   # a working set the default cache holds
    dc = diskcache.Cache(os.path.join(tmp, "dc-store"))
    for i, d in docs[:20_000]:
        dc.set(i, d)
    raw = apsw.Connection(os.path.join(path, "kura.db"))
    cur = raw.cursor()

    coll = cur.execute("SELECT id FROM collections WHERE name='docs'").fetchone()[0]

    def floor(i: str) -> Any:   # the statement kuradb's get runs, without the checksum and the Record
        row = cur.execute("SELECT json(body) FROM log WHERE coll=? AND id=? AND head=1", (coll, i)).fetchone()
        return orjson.loads(row[0])

    cached = kuradb.open(path, cache="default")
    plain = kuradb.open(path)
    cc, pc = cached.collection("docs"), plain.collection("docs")
    for i in sample:   # warm
        assert cc.get(i).content is not None
    results = {}
    for name, fn in (("kuradb get, cache='default'", lambda i: cc.get(i).content),
                     ("kuradb get, no cache", lambda i: pc.get(i).content),
                     ("diskcache get", dc.get), ("raw SQLite (apsw) + orjson", floor)):
        results[name] = timed(fn, sample, rounds)
    print(f"\n(c) store get(id), 100k documents, 50k random reads over 20k ids; median of {rounds} rounds")
    print(f"{'system':<30}{'us/op':>9}{'ops/s':>12}{'p99 us':>10}")
    for name, (med, p99) in results.items():
        print(f"{name:<30}{med:>9.2f}{1e6 / med:>12,.0f}{p99:>10.1f}")
    k = results["kuradb get, cache='default'"][0]
    print(f"cached get vs diskcache get: {results['diskcache get'][0] / k:.2f}x; vs uncached: "
          f"{results['kuradb get, no cache'][0] / k:.2f}x; "
          f"vs raw SQLite floor: {results['raw SQLite (apsw) + orjson'][0] / k:.2f}x")
    print(f"strict-check catch-ups during the run: {cached.stats()['cache']['catch_ups']}")
    cached.close()
    plain.close()
    raw.close()
    dc.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="ratio,latency,store")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    tmp = tempfile.mkdtemp(prefix="kuradb-bench-cache-")
    try:
        if "latency" in parts:
            latency_table(args.rounds, tmp)
        if "store" in parts:
            store_table(args.rounds, tmp)
        if "ratio" in parts:
            ratio_table(args.keys, args.requests)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
