"""``Cache.incr`` loses nothing when several processes add to one counter (docs/CACHE.md, "Counters").

Real processes: through the real Redis (a Lua script; WATCH/MULTI for integers beyond 2**53),
and through one shared cache directory without Redis (one SQLite write transaction).
Before, ``incr`` read, added and wrote back in three steps: 3 processes x 300 gave 426.
"""
from __future__ import annotations

import threading

import pytest
from cache_worker import Worker

import kuradb
from kuradb import errors

PROCESSES, TIMES = 3, 300


def _redis(url: str):
    import redis
    return redis.Redis.from_url(url)


def _race(workers: list[Worker], key: str, times: int, delta: int = 1) -> list[int]:
    for w in workers:               # every worker gets its command before any answer is read
        w.send("incr", key, times, delta)
    return [w.recv() for w in workers]


def test_processes_sharing_redis_lose_no_increment(redis_url):
    url, ns = redis_url
    with kuradb.Cache(None, redis_url=url, namespace=ns) as c:
        c.set("hits", 0, ttl=600, tags=["counters"], priority="high")
        c.set("big", 2**60)                 # beyond Lua's exact integers: the WATCH/MULTI path
        workers = [Worker(url, ns) for _ in range(PROCESSES)]
        try:
            last = _race(workers, "hits", TIMES)
            assert max(last) == PROCESSES * TIMES
            assert c.get("hits") == PROCESSES * TIMES      # this process's copy was invalidated
            last = _race(workers, "big", 100, 3)
            assert max(last) == 2**60 + PROCESSES * 100 * 3
            assert workers[0].ask("get", "big") == 2**60 + PROCESSES * 100 * 3
        finally:
            for w in workers:
                w.close()
        fields = c.redis.get("hits")
        assert fields is not None
        _, expires, priority, tags = fields
        assert expires > 0 and priority == 2 and tags == ("counters",)   # kept by every increment
        assert 0 < _redis(url).pttl(ns + ":hits") <= 600_000              # and so is Redis's own expiry


def test_processes_sharing_a_directory_lose_no_increment(tmp_path):
    with kuradb.Cache(tmp_path) as c:
        c.set("hits", 0)
    workers = [Worker(None, "unused", tmp_path) for _ in range(PROCESSES)]
    try:
        last = _race(workers, "hits", TIMES)
        assert max(last) == PROCESSES * TIMES
    finally:
        for w in workers:
            w.close()
    with kuradb.Cache(tmp_path) as c:
        assert c.get("hits") == PROCESSES * TIMES


def test_threads_of_one_process_lose_no_increment():
    c = kuradb.Cache(None)
    c.set("n", 0)
    threads = [threading.Thread(target=lambda: [c.incr("n") for _ in range(500)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.get("n") == 2000


@pytest.fixture(params=["memory", "disk", "redis", "redis+disk"])
def cache(request, tmp_path, redis_url):
    url, ns = redis_url
    kwargs = {"memory": {}, "disk": {"path": tmp_path}, "redis": {"redis_url": url, "namespace": ns},
              "redis+disk": {"path": tmp_path, "redis_url": url, "namespace": ns}}[request.param]
    with kuradb.Cache(**kwargs) as c:
        yield c


def test_incr_keeps_expiry_and_refuses_what_is_not_an_integer(cache):
    cache.set("n", 41, ttl=100, tags=["t"])
    assert cache.incr("n") == 42 and cache.incr("n", -50) == -8 and cache.get("n") == -8
    for key, value in {"f": 1.5, "s": "12", "b": True, "none": None, "l": [1]}.items():
        cache.set(key, value)
        with pytest.raises(errors.ValidationError, match="not an integer"):
            cache.incr(key)
        assert cache.get(key) == value
    with pytest.raises(KeyError):
        cache.incr("absent")
    with pytest.raises(errors.ValidationError):
        cache.incr("n", True)
    assert cache.clear(tag="t") == 1 and cache.get("n") is None


def test_incr_past_the_json_range_is_refused_and_changes_nothing(tmp_path):
    with kuradb.Cache(tmp_path) as c:
        c.set("n", 2**64 - 1)
        with pytest.raises(errors.ValidationError, match="JSON"):
            c.incr("n")
        assert c.get("n") == 2**64 - 1


def test_a_counter_redis_lost_is_seeded_from_the_local_tiers(tmp_path, redis_url):
    url, ns = redis_url
    with kuradb.Cache(tmp_path, redis_url=url, namespace=ns) as c:
        c.set("n", 10)
        _redis(url).delete(ns + ":n")         # Redis evicted it (or it was written while Redis was away)
        assert c.incr("n") == 11
        assert c.redis.get("n") is not None and c.incr("n") == 12
    with kuradb.Cache(tmp_path) as c:
        assert c.get("n") == 12               # the disk tier was written through
