"""kuradb.Cache without Redis: tiers, TTL, priorities, tags, loaders, stats, persistence, bad input."""
from __future__ import annotations

import os
import threading
import time

import apsw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kuradb
from kuradb import errors
from kuradb.cache import CachedSource


def _archived_codecs(directory) -> dict[int, int]:
    """How many L4 entries the cache file holds by codec (1 zstd, 2 zstd with the trained dictionary),
    read through a connection of the test's own: the cache's file is SQLite in WAL mode."""
    conn = apsw.Connection(str(directory / "cache.db"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return dict(conn.execute("SELECT codec, count(*) FROM entries WHERE tier = 4 GROUP BY codec"))
    finally:
        conn.close()


def test_memory_tiers_promote_and_demote():
    c = kuradb.Cache(None, l1_max_items=2, l2_max_items=2)
    for k in "abcd":
        c.set(k, k.upper())
    assert len(c.l1) == 2 and len(c.l2) == 2          # a, b demoted to L2
    assert c.stats().tiers["l1"].demotions == 2
    assert c.get("a") == "A"                            # an L2 hit is served in place
    s = c.stats().tiers
    assert s["l2"].hits == 1 and s["l2"].promotions == 0
    assert "a" in c.l2.data and "a" not in c.l1.data
    c.set("e", "E")
    total = len(c.l1) + len(c.l2)
    assert total == 4 and c.stats().tiers["l2"].evictions >= 1   # memory only: out of L2 is out


def test_disk_tier_survives_reopen_and_archive_compresses(tmp_path):
    with kuradb.Cache(tmp_path, l1_max_items=2, l2_max_items=2, disk_max_bytes=2000,
                      archive_max_bytes=1 << 20) as c:
        for i in range(50):
            c.set(f"k{i}", {"i": i, "text": "lorem ipsum " * 10})
        st_ = c.stats().tiers
        assert st_["l3"].demotions > 0 and st_["l4"].items > 0
        assert st_["l3"].bytes <= 2000
    with kuradb.Cache(tmp_path, disk_max_bytes=2000, archive_max_bytes=1 << 20) as c:
        assert c.get("k0") == {"i": 0, "text": "lorem ipsum " * 10}   # from L4
        assert c.stats().tiers["l4"].hits == 1
        assert c.get("k49")["i"] == 49
        assert _archived_codecs(tmp_path).get(1, 0) > 0              # really compressed


def test_archive_trains_a_dictionary_and_reads_it_back(tmp_path):
    import random
    rnd = random.Random(3)
    words = "canvas layer brush sketch colour light shadow paper frame glaze".split()

    def doc(i):
        return {"id": i, "name": f"item-{i}", "tags": rnd.sample(words, 3), "score": rnd.random()}

    values = {f"k{i}": doc(i) for i in range(1500)}
    with kuradb.Cache(tmp_path, l1_max_items=1, l2_max_items=1, disk_max_bytes=1000,
                      archive_max_bytes=1 << 30) as c:
        for k, v in values.items():
            c.set(k, v)
        assert _archived_codecs(tmp_path).get(2, 0) > 0   # compressed with the trained dictionary
        assert c.disk.meta("zstd_dict") is not None
    with kuradb.Cache(tmp_path, disk_max_bytes=1000, archive_max_bytes=1 << 30) as c:
        assert all(c.get(k) == v for k, v in list(values.items())[::7])
    with kuradb.Cache(tmp_path) as c:          # opened without an archive: archived values still read
        assert c.get("k1") == values["k1"] and c.get("k2") == values["k2"]


def test_archive_budget_evicts_for_good(tmp_path):
    with kuradb.Cache(tmp_path, l1_max_items=1, l2_max_items=1, disk_max_bytes=500, archive_max_bytes=600) as c:
        for i in range(100):
            c.set(f"k{i}", "x" * 100 + str(i))
        assert c.stats().tiers["l4"].evictions > 0
        c._clear_memory()
        assert c.get("k0") is None and c.get("k99") == "x" * 100 + "99"
        usage = c.disk.usage()
        assert usage[3][1] <= 500 and usage[4][1] <= 600


@pytest.mark.parametrize("archive", [0, 1 << 30], ids=["dropped", "archived"])
def test_a_full_disk_budget_keeps_the_wal_small(tmp_path, archive):
    """A cache at its disk budget moves (or drops) entries on every write. Before, it wrote while its
    query for the coldest entries was unfinished, and SQLite could then never restart the WAL: it grew
    by every write (25 MiB here with the overflow dropped, 89 MiB with it archived) and reads slowed
    with it (an L4 get from 0.1 to 9 ms after 6,000 writes)."""
    value = {"name": "sketch", "layers": [1, 2, 3], "text": "lorem ipsum dolor sit amet " * 4}
    with kuradb.Cache(tmp_path, l1_max_items=1, l2_max_items=0, disk_max_bytes=2000, archive_max_bytes=archive) as c:
        for i in range(1500):
            c.set(f"k{i}", value)
        for i in range(1500):
            c.get(f"k{i}")
        assert c.stats().tiers["l3"].bytes <= 2000
        assert os.path.getsize(tmp_path / "cache.db-wal") < 8 << 20


def test_a_closed_cache_says_so_in_a_typed_error(tmp_path):
    """What the disk tiers' driver raises comes out as a kuradb error (before: a raw apsw error)."""
    c = kuradb.Cache(tmp_path, l1_max_items=1, l2_max_items=0)
    c.set("a", 1)
    c.set("b", 2)      # "a" is now only on disk
    c.close()
    with pytest.raises(errors.Closed, match="cannot read the cache database"):
        c.get("a")
    with pytest.raises(errors.Closed, match="cannot write the cache database"):
        c.set("c", 3)
    with kuradb.Cache(tmp_path) as c:
        assert c.get("a") == 1 and c.get("c") is None


def test_a_damaged_cache_file_is_corrupted_data(tmp_path):
    (tmp_path / "cache.db").write_bytes(b"not a database, " * 512)
    with pytest.raises(errors.CorruptedData, match="delete the cache directory"):
        kuradb.Cache(tmp_path)


def test_ttl_in_every_tier(tmp_path):
    with kuradb.Cache(tmp_path, l1_max_items=1, l2_max_items=1) as c:
        c.set("a", 1, ttl=0.2)
        c.set("b", 2, ttl=0.2)
        c.set("c", 3, ttl=0.2)
        c.set("forever", 4, ttl=None)   # now: forever in L1, c in L2, a and b on disk only (all on disk)
        time.sleep(0.25)
        assert [c.get(k) for k in "abc"] == [None, None, None]
        assert c.get("forever") == 4
        s = c.stats().tiers
        assert (s["l1"].expirations, s["l2"].expirations, s["l3"].expirations) == (0, 1, 3)
        c.set("d", 5, ttl=0.2)          # in L1 itself
        time.sleep(0.25)
        assert c.get("d") is None and c.stats().tiers["l1"].expirations == 1


def test_default_ttl_and_set_ttl(tmp_path):
    with kuradb.Cache(tmp_path, ttl=0.2) as c:
        c.set("a", 1)
        c.set("b", 2)
        assert c.set_ttl("b", None) is True
        assert c.set_ttl("missing", 5) is False
        time.sleep(0.25)
        assert c.get("a") is None and c.get("b") == 2
    with kuradb.Cache(tmp_path) as c:          # the new ttl was written to disk too
        assert c.get("b") == 2


def test_priority_low_goes_first_high_last():
    c = kuradb.Cache(None, l1_max_items=3, l2_max_items=0)
    c.set("h", 1, priority="high")
    c.set("n", 2)
    c.set("l", 3, priority="low")
    c.set("x", 4)
    assert "l" not in c.l1.data and {"h", "n", "x"} <= set(c.l1.data)
    c.set("y", 5)
    assert "h" in c.l1.data and "n" not in c.l1.data


def test_tags_and_pattern_clear(tmp_path):
    with kuradb.Cache(tmp_path, l1_max_items=2, l2_max_items=2) as c:
        for i in range(10):
            c.set(f"user:{i}", i, tags=["users", f"shard{i % 2}"])
        c.set("other", "x")
        assert c.clear(tag="shard0") == 5
        assert [c.get(f"user:{i}") for i in range(4)] == [None, 1, None, 3]
        assert c.clear(pattern="user:*") == 5
        assert c.get("user:1") is None and c.get("other") == "x"
        assert c.clear() >= 1 and c.get("other") is None


def test_values_round_trip_and_pickle_is_opt_in(tmp_path):
    with kuradb.Cache(tmp_path, l1_max_items=1, l2_max_items=1) as c:
        values = {"b": b"\x00\xff", "s": "日本", "j": {"a": [1, 2.5, None, True]}, "n": None, "i": 2**60}
        for k, v in values.items():
            c.set(k, v)
        c.clear_memory = None
        c._clear_memory()
        assert {k: c.get(k, "MISSING") for k in values} == values
        with pytest.raises(errors.ValidationError, match="'obj' cannot be stored as JSON"):
            c.set("obj", object())
        assert c.get("obj") is None
    with kuradb.Cache(tmp_path / "p", serializer="pickle") as c:
        c.set("t", (1, {2}))
        c._clear_memory()
        assert c.get("t") == (1, {2})
    with kuradb.Cache(tmp_path / "p") as c:       # a JSON cache refuses to unpickle
        assert c.get("t") is None
        assert c.stats().tiers["l3"].rejected == 1


def test_get_or_set_calls_the_loader_once_across_threads():
    c = kuradb.Cache(None)
    calls = []
    gate = threading.Event()

    def loader():
        calls.append(1)
        gate.wait(2)
        return "v"

    results = []
    threads = [threading.Thread(target=lambda: results.append(c.get_or_set("k", loader))) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join()
    assert results == ["v"] * 8 and len(calls) == 1


def test_loader_error_reaches_every_waiter_and_nothing_is_stored():
    c = kuradb.Cache(None)
    gate = threading.Event()

    def loader():
        gate.wait(2)
        raise RuntimeError("backend down")

    seen = []

    def call():
        try:
            c.get_or_set("k", loader)
        except RuntimeError as e:
            seen.append(str(e))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join()
    assert seen == ["backend down"] * 4 and c.get("k") is None


def test_memoize():
    c = kuradb.Cache(None)
    calls = []

    @c.memoize(ttl=60)
    def square(x, *, plus=0):
        calls.append(x)
        return x * x + plus

    assert square(3) == 9 and square(3) == 9 and square(3, plus=1) == 10
    assert calls == [3, 3]
    square.invalidate(3)
    assert square(3) == 9 and calls == [3, 3, 3]
    with pytest.raises(errors.ValidationError, match="square"):
        square(object())


def test_stats_as_dataclass_and_dict(tmp_path):
    with kuradb.Cache(tmp_path) as c:
        c.set("a", 1)
        for _ in range(40):
            c.get("a")
        c.get("missing")
        s = c.stats()
        assert s.hits == 40 and s.misses == 1
        assert c.hit_rate() == pytest.approx(40 / 41)
        d = s.as_dict()
        assert d["tiers"]["l1"]["hits"] == 40 and d["tiers"]["l3"]["items"] == 1
        assert d["tiers"]["l1"]["p99_us"] > 0        # sampled L1 latency
        assert d["hit_rate"] == pytest.approx(40 / 41)


def test_prewarm_from_disk_after_restart(tmp_path):
    with kuradb.Cache(tmp_path) as c:
        for i in range(100):
            c.set(f"k{i}", i)
        for _ in range(5):
            for i in range(10):
                c._clear_memory()
                c.get(f"k{i}")
    with kuradb.Cache(tmp_path) as c:        # the access log was saved with the cache
        assert len(c.l1) == 0
        assert c.prewarm(top=10) == 10
        assert set(c.l1.data) == {f"k{i}" for i in range(10)}
        loaded = []
        c._clear_memory()
        assert c.prewarm(lambda k: loaded.append(k) or 7, top=3) == 3
        assert c.get(loaded[0]) == 7


def test_prewarm_predicts_hour_of_day():
    from kuradb.cache.prewarm import AccessLog

    log = AccessLog()
    day = 86400
    for d in range(3):
        for i in range(50):
            log.record("morning", now=d * day + 8 * 3600 + i)
            log.record("evening", now=d * day + 20 * 3600 + i)
    assert log.predict(1, now=3 * day + 8 * 3600)[0] == "morning"
    assert log.predict(1, now=3 * day + 20 * 3600)[0] == "evening"


def test_cached_source_policies():
    backend = {"a": 1}
    saves = []
    c = kuradb.Cache(None)

    def load(k):
        return backend[k]

    def save(k, v):
        saves.append(k)
        backend[k] = v

    rt = CachedSource(c, load, save, policy="read-through")
    assert rt.get("a") == 1 and rt.get("zz", "d") == "d"
    backend["a"] = 2
    assert rt.get("a") == 1                      # cached
    rt.set("a", 3)
    assert backend["a"] == 3 and rt.get("a") == 3
    wt = CachedSource(c, load, save, policy="write-through")
    wt.set("b", 4)
    assert backend["b"] == 4 and c.get("b") == 4
    wb = CachedSource(c, load, save, policy="write-back", flush_interval=60, flush_size=1000)
    wb.set("c", 5)
    assert "c" not in backend and wb.get("c") == 5 and wb.pending == 1
    wb.close()                                   # a clean close loses nothing
    assert backend["c"] == 5 and wb.pending == 0
    with pytest.raises(errors.ValidationError, match="policy"):
        CachedSource(c, load, policy="write-around")


def test_write_back_flushes_on_size_and_keeps_failed_saves():
    backend, fail = {}, [True]
    c = kuradb.Cache(None)

    def save(k, v):
        if fail[0]:
            raise OSError("down")
        backend[k] = v

    wb = CachedSource(c, lambda k: backend[k], save, policy="write-back", flush_interval=60, flush_size=3)
    for i in range(3):
        wb.set(f"k{i}", i)
    time.sleep(0.2)
    assert wb.pending == 3 and wb.flush_errors >= 1      # kept for the next flush
    fail[0] = False
    for i in range(3, 6):
        wb.set(f"k{i}", i)
    deadline = time.monotonic() + 3
    while len(backend) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend == {f"k{i}": i for i in range(6)}
    wb.close()


@pytest.mark.parametrize("call, match", [
    (lambda c: c.set(1, "v"), "keys are str"),
    (lambda c: c.set("", "v"), "1 to 1024"),
    (lambda c: c.set("!x", "v"), "reserved"),
    (lambda c: c.set("k", "v", ttl=-1), "ttl"),
    (lambda c: c.set("k", "v", ttl=float("nan")), "ttl"),
    (lambda c: c.set("k", "v", priority="urgent"), "priority"),
    (lambda c: c.set("k", "v", tags="abc"), "tags"),
    (lambda c: c.get(["k"]), "keys are str"),
    (lambda c: c.clear(pattern=3), "pattern"),
    (lambda c: kuradb.Cache(None, l1_max_items=0), "l1_max_items"),
    (lambda c: kuradb.Cache(None, serializer="yaml"), "serializer"),
])
def test_bad_input_is_a_validation_error(call, match):
    c = kuradb.Cache(None)
    c.set("k", "kept")
    with pytest.raises(errors.ValidationError, match=match):
        call(c)
    assert c.get("k") == "kept"


# -- properties against a model ---------------------------------------------------------------

ops = st.lists(st.tuples(st.sampled_from(["set", "get", "delete", "tick"]), st.integers(0, 7),
                         st.sampled_from([None, 1, 3])), max_size=60)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_ttl_and_contents_match_a_model(tmp_path_factory, program):
    """Whatever the tiers do, a get returns the last value set unless it was deleted or has expired."""
    now = [1000.0]
    import kuradb.cache.core as core
    import kuradb.cache.disk as disk
    real = core._time, disk.time.time
    core._time = lambda: now[0]
    disk.time.time = lambda: now[0]
    try:
        with kuradb.Cache(tmp_path_factory.mktemp("c"), l1_max_items=2, l2_max_items=2, disk_max_bytes=120,
                          archive_max_bytes=0) as c:
            model: dict[str, tuple[int, float]] = {}
            evicted: set[str] = set()
            for i, (op, k, ttl) in enumerate(program):
                key = f"k{k}"
                if op == "set":
                    c.set(key, i, ttl=ttl)
                    model[key] = (i, now[0] + ttl if ttl else 0)
                    evicted.discard(key)
                elif op == "delete":
                    c.delete(key)
                    model.pop(key, None)
                elif op == "tick":
                    now[0] += 2
                else:
                    got = c.get(key, "MISS")
                    value, exp = model.get(key, ("MISS", 0))
                    if exp and exp <= now[0]:
                        value = "MISS"
                    # the disk budget (120 bytes) may drop an entry for good; never a wrong value
                    assert got == value or (got == "MISS" and key not in c.l1.data)
                    if got == "MISS" and value != "MISS":
                        evicted.add(key)
    finally:
        core._time, disk.time.time = real


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "get"]), st.integers(0, 9)), max_size=80))
def test_l1_eviction_order_is_second_chance_lru(program):
    """With no L2, L1 evicts as CLOCK does (model: insertion order plus a referenced bit per key)."""
    c = kuradb.Cache(None, l1_max_items=3, l2_max_items=0)
    order: list[str] = []
    referenced: dict[str, bool] = {}
    for op, k in program:
        key = f"k{k}"
        if op == "get":
            if key in referenced:
                assert c.get(key) == k
                referenced[key] = True
            else:
                assert c.get(key) is None
        else:
            c.set(key, k)
            if key in referenced:
                order.remove(key)
            order.append(key)
            referenced[key] = True           # a newcomer starts with its second chance
            while len(order) > 3:
                oldest = order.pop(0)
                if referenced[oldest]:
                    referenced[oldest] = False
                    order.append(oldest)
                else:
                    del referenced[oldest]
        assert set(c.l1.data) == set(order)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.booleans()), max_size=200))
def test_tier_accounting_adds_up(program):
    c = kuradb.Cache(None, l1_max_items=4, l2_max_items=4)
    for k, is_set in program:
        if is_set:
            c.set(f"k{k}", k)
        else:
            c.get(f"k{k}")
        assert len(c.l1) <= 4 and len(c.l2) <= 4
        assert not set(c.l1.data) & set(c.l2.data)
        assert c.l1.bytes == sum(e[2] for e in c.l1.data.values())
    s = c.stats().tiers
    assert s["l1"].items + s["l2"].items == len(set(c.l1.data) | set(c.l2.data))


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_count_and_evict_the_least_valuable(tmp_path, where):
    with kuradb.Cache(tmp_path if where == "disk" else None, l1_max_items=4, l2_max_items=4) as c:
        for i in range(8):
            c.set(f"k{i}", i, priority="high" if i < 2 else "normal")
        c.get("k7")
        assert c.count() == 8
        assert c.evict(3) == 3 and c.count() == 5
        assert c.get("k0") == 0 and c.get("k1") == 1          # high priority stays longest
        assert sum(c.get(f"k{i}") is not None for i in range(8)) == 5
        assert c.evict(100) == 5 and c.count() == 0
        with pytest.raises(errors.ValidationError):
            c.evict(-1)
