"""The cache with Redis as L2, against a real Redis: sharing, invalidation, single flight, outage."""
from __future__ import annotations

import signal
import time

from cache_worker import Worker, free_port, start_redis

import kuradb


def test_redis_is_a_shared_l2(redis_url):
    url, ns = redis_url
    with kuradb.Cache(None, redis_url=url, namespace=ns) as a, kuradb.Cache(None, redis_url=url, namespace=ns) as b:
        a.set("k", {"v": 1}, ttl=60, tags=["t"])
        assert b.get("k") == {"v": 1}
        assert b.stats().tiers["l2"].hits == 1
        assert b.clear(tag="t") == 1
        assert a.redis.get("k") is None


def test_cross_process_invalidation(redis_url):
    url, ns = redis_url
    with kuradb.Cache(None, redis_url=url, namespace=ns) as c:
        c.redis.listening.wait(5)
        c.set("k", "old")
        w = Worker(url, ns)
        try:
            assert w.ask("get", "k") == "old" and w.ask("l1", "k") is True   # now in the worker's L1
            c.set("k", "new")
            assert w.ask("wait_for", "k", "new") == "new"                  # its L1 copy was dropped
            c.delete("k")
            assert w.ask("wait_for", "k", None) is None
            w.send("get", "x")                                             # the other direction
            assert w.recv() is None
            c.get("k2")
            c.set("k2", 1)
            assert w.ask("get", "k2") == 1
        finally:
            w.close()


def test_single_flight_across_processes(redis_url):
    url, ns = redis_url
    workers = [Worker(url, ns) for _ in range(4)]
    try:
        for w in workers:
            w.send("load", "expensive")
        assert [w.recv() for w in workers] == ["loaded"] * 4
        import redis
        assert int(redis.Redis.from_url(url).get(ns + ":!calls")) == 1
    finally:
        for w in workers:
            w.close()


def test_an_expired_lease_taken_by_another_is_not_released(redis_url):
    url, ns = redis_url
    with kuradb.Cache(None, redis_url=url, namespace=ns) as a, kuradb.Cache(None, redis_url=url, namespace=ns) as b:
        assert a.redis.lock("k", 0.05) is True
        assert b.redis.lock("k", 60) is False
        time.sleep(0.1)                                    # a's lease expires; b takes it
        assert b.redis.lock("k", 60) is True
        a.redis.unlock("k")                                # a's late release must not free b's lease
        assert a.redis.locked("k") and a.redis.lock("k", 60) is False
        b.redis.unlock("k")
        assert not a.redis.locked("k")


def test_pickle_from_a_shared_redis_is_refused(redis_url):
    url, ns = redis_url
    with kuradb.Cache(None, redis_url=url, namespace=ns, serializer="pickle") as p, \
            kuradb.Cache(None, redis_url=url, namespace=ns) as j:
        p.set("k", {1, 2})
        assert j.get("k") is None and j.stats().tiers["l2"].rejected == 1


def test_redis_outage_degrades_and_recovers(tmp_path, redis_url):
    port = free_port()
    server = start_redis(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with kuradb.Cache(tmp_path / "a", redis_url=url) as a, kuradb.Cache(None, redis_url=url) as b:
            a.redis.listening.wait(5)
            b.redis.listening.wait(5)
            a.set("k", 1)
            assert b.get("k") == 1
            server.send_signal(signal.SIGKILL)
            server.wait()
            a.set("k", 2)                      # no exception: L1 and disk still take it
            a.set("local", 3)
            assert a.get("k") == 2 and a.get("local") == 3
            a._clear_memory()
            assert a.get("local") == 3         # from L3
            assert a.get("never-set") is None
            assert a.stats().tiers["l2"].errors >= 1
            server = start_redis(port, tmp_path)
            deadline = time.monotonic() + 10
            while not (a.redis.listening.is_set() and b.redis.listening.is_set()) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert b.redis.listening.is_set(), "the listener did not reconnect"
            time.sleep(a.redis._backoff + 0.1)
            a.set("after", "back")             # Redis is used again
            assert b.get("after") == "back"
            assert b.get("k") is None          # b dropped its L1 copy (k=1) on reconnect: the server lost it
    finally:
        server.kill()
        server.wait()
