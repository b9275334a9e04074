"""store.verify() finds every kind of damage and names it; store.repair() rebuilds derived state only.

Here: a healthy store verifies, also while it is written. Damage is made in the SQLite
files: tests/sqlite/test_integrity_damage.py.
"""
from __future__ import annotations

import threading

import populate
import pytest


@pytest.fixture
def full(open_store):
    """The name of a closed store using every feature (populate.every_feature)."""
    with open_store("s") as s:
        populate.every_feature(s)
    return "s"


def test_a_healthy_store_verifies(full, open_store):
    with open_store(full) as s:
        seen: list[float] = []
        report = s.verify(progress=seen.append)
        assert report.ok and report.problems == [], report.problems
        assert report.checked["records"] == 4 and report.checked["blobs"] == 2 and report.checked["indexes"] == 2
        assert seen[-1] == 1.0 and seen == sorted(seen)
        assert s.repair().ok and s.verify().ok


def test_verify_reads_a_snapshot_while_writers_write(store):
    c = store.collection("c")
    c.create_index("v")
    c.put_many([(f"k{i:05}", {"v": i, "a": [i]}) for i in range(5000)])
    stop = threading.Event()

    def write():
        i = 0
        while not stop.is_set():
            c.put({"v": -i, "a": [i]}, id=f"w{i % 50}")
            i += 1

    t = threading.Thread(target=write)
    t.start()
    try:
        reports = [store.verify() for _ in range(3)]
    finally:
        stop.set()
        t.join()
    assert all(r.ok for r in reports), [r.problems for r in reports]
