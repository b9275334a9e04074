"""kuradb.open(..., cache=): reads served from memory, never older than a commit that finished first.

A damaged row is never cached: tests/sqlite/test_read_cache_damage.py (it damages the row with SQL).
"""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

import kuradb
from kuradb import errors


@pytest.fixture
def cached(open_store):
    with open_store("s", cache="default") as s:
        yield s


def test_reads_come_from_the_cache_and_follow_writes(cached):
    notes = cached.collection("notes")
    notes.put({"v": 1}, id="a")
    assert notes.get("a")["v"] == 1
    assert notes.get("a")["v"] == 1
    assert cached.stats()["cache"]["tiers"]["l1"]["hits"] >= 1
    notes.put({"v": 2}, id="a")
    assert notes.get("a")["v"] == 2 and notes.get("a").version == 2
    notes.delete("a")
    with pytest.raises(errors.NotFound, match="deleted"):
        notes.get("a")
    assert notes.get("a", None) is None
    assert notes.get("missing", "d") == "d"


def test_mutating_a_result_does_not_change_the_cache(cached):
    notes = cached.collection("notes")
    notes.put({"tags": ["x"]}, id="a")
    rec = notes.get("a")
    rec.content["tags"].append("mutated")
    assert notes.get("a")["tags"] == ["x"]


def test_transaction_reads_bypass_the_cache(cached):
    notes = cached.collection("notes")
    notes.put({"v": 1}, id="a")
    notes.get("a")
    with cached.transaction():
        notes.put({"v": 2}, id="a")
        assert notes.get("a")["v"] == 2           # its own uncommitted write
    assert notes.get("a")["v"] == 2


def test_drop_collection_clears(cached):
    notes = cached.collection("notes")
    notes.put({"v": 1}, id="a")
    notes.get("a")
    cached.drop_collection("notes")
    with pytest.raises(errors.NotFound):
        cached.collection("notes").get("a")


def test_another_connection_commit_is_seen_at_once(open_store, cached):
    notes = cached.collection("notes")
    notes.put({"v": 1}, id="a")
    assert notes.get("a")["v"] == 1
    with open_store("s") as other:
        other.collection("notes").put({"v": 2}, id="a")
    assert notes.get("a")["v"] == 2


WRITER = """
import sys, kuradb
with kuradb.open(sys.argv[1]) as s:
    x, mark = s.collection("x"), s.collection("mark")
    for v in range(1, int(sys.argv[2]) + 1):
        x.put({"v": v}, id="x")
        mark.put({"v": v}, id="m")       # committed after x reached v
"""


def test_strict_reads_across_processes(impl, open_store, cached):
    """Whatever the writer process committed before a read began, the cached read returns it or newer."""
    cached.collection("x").put({"v": 0}, id="x")
    cached.collection("mark").put({"v": 0}, id="m")
    n = 300
    writer = subprocess.Popen([sys.executable, "-c", WRITER, impl.location("s"), str(n)])
    x = cached.collection("x")
    checks = 0
    with open_store("s") as plain:
        mark = plain.collection("mark")
        while writer.poll() is None or checks < 10:
            floor = mark.get("m")["v"]          # uncached: what was committed before the read below
            got = x.get("x")["v"]
            assert got >= floor, f"cached read returned v{got} after v{floor} was committed"
            checks += 1
    assert writer.wait() == 0
    assert x.get("x")["v"] == n and checks > 10


def test_strict_reads_across_threads(cached):
    x = cached.collection("x")
    x.put({"v": 0}, id="x")
    committed = [0]
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            floor = committed[0]
            got = x.get("x")["v"]
            if got < floor:
                bad.append((got, floor))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for v in range(1, 400):
        x.put({"v": v}, id="x")
        committed[0] = v
    stop.set()
    for t in threads:
        t.join()
    assert not bad
    assert x.get("x")["v"] == 399


def test_max_staleness_sees_own_writes(open_store):
    with open_store("s", cache=kuradb.CacheConfig(max_staleness=60)) as s:
        notes = s.collection("notes")
        notes.put({"v": 1}, id="a")
        notes.get("a")
        notes.put({"v": 2}, id="a")
        assert notes.get("a")["v"] == 2


def test_cache_option_errors(open_store):
    with pytest.raises(errors.ValidationError, match="cache must be"):
        open_store("s", cache=123)
    with pytest.raises(errors.ValidationError, match="max_staleness"):
        open_store("s", cache=kuradb.CacheConfig(max_staleness=-1))
    with open_store("s") as s:
        assert s.stats()["cache"] is None


def test_closed_store_with_cache_raises_closed(open_store):
    s = open_store("s", cache="default")
    notes = s.collection("notes")
    notes.put({"v": 1}, id="a")
    notes.get("a")
    s.close()
    with pytest.raises(errors.Closed):
        notes.get("a")
