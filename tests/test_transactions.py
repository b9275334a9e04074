"""Transactions, savepoints, the change log and watch()."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from kuradb import errors


def test_transaction_commits_everything_together(store):
    with store.transaction():
        store["a"].put({"x": 1}, id="1")
        store["b"].put({"y": 2}, id="2")
        ref = store.blobs.put(b"data")
        store["a"].put({"img": ref}, id="3")
    assert store["a"].get("3")["img"] == {"$blob": ref.hash}
    assert [c.kind for c in store.changes()] == ["record", "record", "blob", "record"]


def test_exception_rolls_everything_back(store):
    store["a"].put({"x": 0}, id="1")
    before = store.position
    with pytest.raises(RuntimeError):
        with store.transaction():
            store["a"].put({"x": 1}, id="1")
            store["a"].put({"x": 1}, id="2")
            store.blobs.put(b"never stored")
            raise RuntimeError("boom")
    assert store["a"].get("1")["x"] == 0 and "2" not in store["a"]
    assert store.position == before
    assert not store.blobs.exists(__import__("hashlib").sha256(b"never stored").hexdigest())


def test_reads_inside_a_transaction_see_its_writes_others_do_not(store):
    seen_from_other_thread = []
    with store.transaction():
        store["a"].put({"x": 1}, id="1")
        assert store["a"].get("1")["x"] == 1
        assert store["a"].history("1")[0]["x"] == 1
        t = threading.Thread(target=lambda: seen_from_other_thread.append(store["a"].get("1", None)))
        t.start()
        t.join()
    assert seen_from_other_thread == [None]
    assert store["a"].get("1")["x"] == 1


def test_nested_transactions_are_savepoints(store):
    c = store["c"]
    with store.transaction():
        c.put({"v": "outer"}, id="a")
        with pytest.raises(ValueError):
            with store.transaction():
                c.put({"v": "inner"}, id="b")
                c.put({"v": "inner"}, id="a")
                raise ValueError
        assert c.get("a")["v"] == "outer" and "b" not in c
        with store.transaction():
            c.put({"v": "kept"}, id="c")
    assert c.get("a")["v"] == "outer" and c.get("c")["v"] == "kept" and "b" not in c
    assert [ch.id for ch in store.changes()] == ["a", "c"]


def test_failed_write_inside_transaction_leaves_transaction_usable(store):
    c = store["c"]
    c.put({"v": 1}, id="a")
    with store.transaction():
        with pytest.raises(errors.ConflictError):
            c.put({"v": 2}, id="a", if_version=7)
        with pytest.raises(errors.ValidationError):
            c.put({"v": float("nan")}, id="b")
        with pytest.raises(errors.ValidationError):
            c.put_many([("x", {"ok": 1}), ("y", {"bad": object()})])
        c.put({"v": 3}, id="a")
    assert c.get("a")["v"] == 3 and c.get("a").version == 2 and "x" not in c


def test_put_many_inside_transaction_is_all_or_nothing(store):
    c = store["c"]
    store.blobs.put(b"exists")
    with store.transaction():
        with pytest.raises(errors.ValidationError, match="not stored"):
            c.put_many([("x", {"ok": 1}), ("y", {"ref": {"$blob": "0" * 64}})])
        c.put({"v": 1}, id="z")
    assert "x" not in c and "y" not in c and "z" in c


def test_closed_store_raises_closed(open_store):
    s = open_store("s")
    c = s["c"]
    c.put({"a": 1}, id="a")
    s.close()
    s.close()  # idempotent
    for call in (lambda: c.get("a"), lambda: c.put({"a": 2}, id="a"), lambda: s.position,
                 lambda: list(s.changes()), lambda: s.blobs.put(b"x"), lambda: s.transaction().__enter__()):
        with pytest.raises(errors.Closed):
            call()


def test_threads_share_one_store(store):
    c = store["c"]
    c.put({"n": 0}, id="counter")
    errors_seen = []

    def work(t):
        try:
            for i in range(50):
                c.put({"t": t, "i": i}, id=f"t{t}-{i}")
                while True:
                    cur = c.get("counter")
                    try:
                        c.put({"n": cur["n"] + 1}, id="counter", if_version=cur.version)
                        break
                    except errors.ConflictError:
                        continue
        except Exception as e:  # noqa: BLE001
            errors_seen.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors_seen == []
    assert c.get("counter")["n"] == 400
    assert len(c) == 401
    positions = [ch.position for ch in store.changes()]
    assert positions == list(range(1, len(positions) + 1))


def test_writer_waits_then_raises_busy(open_store):
    with open_store("s", timeout=0.2) as a, open_store("s", timeout=0.2) as b:
        with a.transaction():
            a["c"].put({"x": 1}, id="1")
            t0 = time.monotonic()
            with pytest.raises(errors.Busy, match="locked"):
                b["c"].put({"x": 2}, id="2")
            assert time.monotonic() - t0 >= 0.15
            assert b["c"].get("1", None) is None  # readers are not blocked by the writer
        b["c"].put({"x": 2}, id="2")


def test_changes_since_and_limit(store):
    for i in range(2500):
        store["c"].put({"i": i}, id=str(i))
    assert store.position == 2500
    all_changes = list(store.changes())
    assert [c.position for c in all_changes] == list(range(1, 2501))
    assert [c.position for c in store.changes(since=2490)] == list(range(2491, 2501))
    assert [c.position for c in store.changes(since=10, limit=1500)] == list(range(11, 1511))
    ch = all_changes[0]
    assert (ch.kind, ch.collection, ch.id, ch.version, ch.op) == ("record", "c", "0", 1, "put")
    assert ch.rev == store["c"].get("0").rev and ch.at.tzinfo is not None


def test_author_recorded_from_store_or_call(open_store):
    with open_store("s", author="ann") as s:
        assert s["c"].put({"a": 1}, id="x").author == "ann"
        assert s["c"].put({"a": 2}, id="x", author="bob").author == "bob"
        assert [c.author for c in s.changes()] == ["ann", "bob"]


def test_watch_sees_commits_from_this_process(store):
    got = []

    def tail():
        for change in store.watch(since=0, timeout=2):
            got.append(change.id)
            if len(got) == 3:
                return

    t = threading.Thread(target=tail)
    t.start()
    for i in range(3):
        store["c"].put({"i": i}, id=f"w{i}")
    t.join(5)
    assert got == ["w0", "w1", "w2"]


def test_watch_ends_after_timeout_without_changes(store):
    t0 = time.monotonic()
    assert list(store.watch(timeout=0.3)) == []
    assert 0.25 <= time.monotonic() - t0 < 3


WRITER = """
import sys, time, kuradb
with kuradb.open(sys.argv[1]) as s:
    for i in range(5):
        s["c"].put({"i": i}, id=f"p{i}")
        time.sleep(0.05)
"""


def test_watch_sees_commits_from_another_process(impl, store):
    start = store.position
    proc = subprocess.Popen([sys.executable, "-c", WRITER, impl.location("store")])
    got = []
    for change in store.watch(since=start, timeout=10):
        got.append(change.id)
        if len(got) == 5:
            break
    proc.wait(10)
    assert got == [f"p{i}" for i in range(5)]
