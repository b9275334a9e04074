"""store.stats()["operations"]: exact counts (errors too) across threads, sampled p50/p99."""
from __future__ import annotations

import threading

import pytest

from kuradb import errors


def test_counts_are_exact_across_threads_and_latencies_sampled(store):
    c = store.collection("c")
    c.put_many([(f"k{i}", {"i": i}) for i in range(100)])

    def read():
        for i in range(1000):
            c.count({"i": i % 100})

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with pytest.raises(errors.QueryError):
        c.count({"i": {"$bogus": 1}})
    c.find({"i": {"$lt": 3}})
    c.get("k1")
    ops = store.stats()["operations"]
    assert ops["count"]["calls"] == 4001 and ops["count"]["errors"] == 1
    assert "get" not in ops  # the hot path is left alone (see kuradb/opstats.py)
    assert ops["put_many"] == {"calls": 1, "errors": 0, "p50_us": ops["put_many"]["p50_us"],
                               "p99_us": ops["put_many"]["p99_us"]}
    assert 0 < ops["count"]["p50_us"] <= ops["count"]["p99_us"]
    assert ops["find"]["calls"] == 1 and ops["find"]["p50_us"] > 0  # the first call is always timed
    assert "put" not in ops


def test_blob_operations_are_counted(store):
    ref = store.blobs.put(b"abc")
    store.blobs.get(ref)
    with pytest.raises(errors.NotFound):
        store.blobs.get("0" * 64)
    ops = store.stats()["operations"]
    assert ops["blobs.put"]["calls"] == 1 and ops["blobs.get"] == {**ops["blobs.get"], "calls": 2, "errors": 1}
