"""The read cache on PostgreSQL stores: strict checks ask the server; lenient ones are invalidated by NOTIFY."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import kuradb

OVERWRITE = """
import sys, kuradb
with kuradb.open(sys.argv[1]) as s:
    s.collection("notes").put({"v": int(sys.argv[2])}, id="a")
"""


def _overwrite_from_another_process(location: str, v: int) -> None:
    subprocess.run([sys.executable, "-c", OVERWRITE, location, str(v)], check=True, timeout=60)


def test_a_strict_cache_sees_another_process_commit_at_once(pg):
    s = pg.open("s", cache="default")
    notes = s.collection("notes")
    notes.put({"v": 1}, id="a")
    assert notes.get("a").content == {"v": 1}
    assert notes.get("a").content == {"v": 1}          # now served from the cache
    _overwrite_from_another_process(pg.location("s"), 2)
    assert notes.get("a").content == {"v": 2}           # no wait: the check asked the server
    assert s.stats()["cache"]["check"] == "log-position"
    s.close()


def test_a_lenient_cache_is_invalidated_by_notify_long_before_its_staleness_bound(pg):
    """max_staleness=600: only the NOTIFY of the other process's commit can make the cache drop the record
    within the test's seconds."""
    s = pg.open("s", cache=kuradb.CacheConfig(max_staleness=600))
    notes = s.collection("notes")
    notes.put({"v": 1}, id="a")
    assert notes.get("a").content == {"v": 1}
    assert notes.get("a").content == {"v": 1}
    _overwrite_from_another_process(pg.location("s"), 2)
    deadline = time.monotonic() + 10
    while notes.get("a").content != {"v": 2}:
        assert time.monotonic() < deadline, "the cache still serves the old version after 10 s"
        time.sleep(0.02)
    s.close()


def test_closing_a_lenient_cache_stops_its_listener(pg):
    s = pg.open("s", cache=kuradb.CacheConfig(max_staleness=5))
    s.collection("notes").put({"v": 1}, id="a")
    s.close()
    names = [t.name for t in threading.enumerate()]
    deadline = time.monotonic() + 5
    while any(n.startswith("kuradb-listen-") for n in names):
        assert time.monotonic() < deadline, names
        time.sleep(0.05)
        names = [t.name for t in threading.enumerate()]
