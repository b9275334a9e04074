"""Read replicas of a PostgreSQL store: reads go to a streaming standby, read-your-writes, one down, lag reported.

The module's own primary (initdb, ``wal_level=replica``) and a hot standby of it
(``pg_basebackup -R``) run on spare loopback ports, made once for the module
(pg_servers.py). Replay on the standby is paused (``pg_wal_replay_pause()``) to
make it fall behind on demand. Without the binaries the tests skip with a
message (with CI=true they fail).
"""
from __future__ import annotations

import itertools
import threading
import time
from contextlib import contextmanager

import pytest
from pg_servers import Server, binaries, spare_port

import kuradb
from kuradb import errors


@pytest.fixture(scope="module")
def cluster():
    bindir = binaries("pg_basebackup")
    primary = Server(bindir, settings="-c wal_level=replica -c max_wal_senders=4")
    try:
        standby = Server(bindir, standby_of=primary)
    except BaseException:
        primary.remove()
        raise
    try:
        yield primary, standby
    finally:
        standby.remove()
        primary.remove()


@pytest.fixture
def schema(request):
    return "t_" + request.node.name.removeprefix("test_")[:40]


@contextmanager
def paused(standby):
    """Replay on the standby stops (before its next WAL record) until the block ends."""
    standby.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        standby.execute("SELECT pg_wal_replay_resume()")


def replica_of(store):
    return store.stats()["replicas"][0]


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def caught_up(primary, standby):
    lsn = primary.execute("SELECT pg_current_wal_flush_lsn()")[0][0]
    wait_for(lambda: standby.execute(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'")[0][0])


def test_reads_go_to_the_replica_when_it_has_replayed_this_stores_commits(cluster, schema):
    primary, standby = cluster
    url = f"{primary.url}?schema={schema}"
    with kuradb.open(url, replicas=[standby.url]) as writer, kuradb.open(url, replicas=[standby.url]) as reader:
        notes = writer.collection("notes")
        notes.put({"v": 1, "tag": "x"}, id="a")
        caught_up(primary, standby)
        theirs = reader.collection("notes")
        assert theirs.get("a").content["v"] == 1
        with paused(standby):
            notes.put({"v": 2, "tag": "x"}, id="a")
            # The writer reads its own write (on the primary: the replica has not replayed it) ...
            assert notes.get("a").content["v"] == 2
            assert [r.content["v"] for r in notes.find({"tag": "x"})] == [2]
            assert len(notes.history("a")) == 2
            # ... while a store that did not write reads the replica, which is behind.
            assert theirs.get("a").content["v"] == 1
            assert [r.content["v"] for r in theirs.find({"tag": "x"})] == [1]
            assert [r.content["v"] for r in theirs.scan({"tag": "x"})] == [1]
            assert len(theirs.history("a")) == 1
            assert reader.position == 1 and writer.position == 2
        wait_for(lambda: theirs.get("a").content["v"] == 2)
        assert replica_of(reader)["reads"] >= 6 and replica_of(reader)["fallbacks"] == 0
        assert replica_of(writer)["fallbacks"] >= 1


def test_read_your_writes_whether_the_replica_keeps_up_or_not(cluster, schema):
    primary, standby = cluster
    with kuradb.open(f"{primary.url}?schema={schema}", replicas=[standby.url], replica_wait=0.02) as s:
        notes = s.collection("notes")
        for i in range(100):                    # replay running: the read waits for it (or falls back)
            notes.put({"v": i}, id="a")
            assert notes.get("a").content == {"v": i}
        assert replica_of(s)["reads"] >= 50
        stop = threading.Event()

        def stall() -> None:                    # replay paused and resumed now and then, at random points:
            for pause in itertools.cycle((0.005, 0.015, 0.06)):   # some pauses past replica_wait (fallbacks)
                if stop.is_set():
                    return
                with paused(standby):
                    stop.wait(pause)
                stop.wait(0.01)
        staller = threading.Thread(target=stall)
        staller.start()
        try:
            for i in range(150):
                notes.put({"v": i, "k": i % 3}, id="b")
                assert notes.get("b").content["v"] == i
                assert [r.id for r in notes.find({"v": i, "k": i % 3})] == ["b"]
                assert notes.history("b")[-1].content["v"] == i
        finally:
            stop.set()
            staller.join()
        seen = replica_of(s)
        assert seen["fallbacks"] > 0 and seen["reads"] > 100, seen


def test_another_thread_of_the_store_reads_its_commits_too(cluster, schema):
    primary, standby = cluster
    with kuradb.open(f"{primary.url}?schema={schema}", replicas=[standby.url]) as s:
        notes = s.collection("notes")
        committed, read = threading.Event(), threading.Event()
        seen = []

        def reader() -> None:
            for _ in range(30):
                committed.wait()
                committed.clear()
                seen.append(notes.get("a").content["v"])
                read.set()
        t = threading.Thread(target=reader)
        t.start()
        for i in range(30):
            notes.put({"v": i}, id="a")
            committed.set()
            read.wait()
            read.clear()
        t.join()
        assert seen == list(range(30))


def test_reads_in_a_transaction_and_through_the_read_cache_stay_on_the_primary(cluster, schema):
    primary, standby = cluster
    url = f"{primary.url}?schema={schema}"
    with kuradb.open(url, replicas=[standby.url]) as writer, \
            kuradb.open(url, replicas=[standby.url], cache="default") as cached:
        notes = writer.collection("notes")
        notes.put({"v": 1}, id="a")
        caught_up(primary, standby)
        assert cached.collection("notes").get("a").content == {"v": 1}
        with paused(standby):
            with writer.transaction():
                notes.put({"v": 2}, id="a")
                assert notes.get("a").content == {"v": 2}
                assert [r.content["v"] for r in notes.find({})] == [2]
            # The cache followed the primary's log: what it reads after a miss is the primary's too.
            assert cached.collection("notes").get("a").content == {"v": 2}


def test_a_replica_that_is_down_is_skipped_reported_and_used_again_when_back(cluster, schema):
    primary, standby = cluster
    dead = f"postgresql://postgres:secret@127.0.0.1:{spare_port()}/postgres"
    url = f"{primary.url}?schema={schema}"
    with kuradb.open(url, replicas=[standby.url, dead], timeout=2) as s, \
            kuradb.open(url, replicas=[standby.url], timeout=2) as other:
        notes = s.collection("notes")
        notes.put({"v": 1}, id="a")
        assert notes.get("a").content == {"v": 1}
        caught_up(primary, standby)
        assert other.collection("notes").get("a").content == {"v": 1}      # on the replica
        states = [r["state"] for r in s.stats()["replicas"]]
        assert states == ["ok", "down"]
        check = s.health().checks["replicas"]
        assert check.status == "degraded" and "1 of 2" in check.detail and "cannot connect" in check.detail
        assert "postgres:***@127.0.0.1" in check.detail and "secret" not in repr(s.stats())
        standby.stop()
        try:
            # A store that did not write: no wait, the read itself meets the broken session and runs
            # again on the primary.
            assert other.collection("notes").get("a").content == {"v": 1}
            assert replica_of(other)["state"] == "down" and replica_of(other)["fallbacks"] == 1
            for i in range(2, 6):               # the replica's connection broke: the reads go to the primary
                notes.put({"v": i}, id="a")
                assert notes.get("a").content == {"v": i}
                assert [r.content["v"] for r in notes.find({})] == [i]
            assert s.stats()["replicas"][0]["state"] == "down"
            check = s.health().checks["replicas"]
            assert check.status == "failing" and "0 of 2" in check.detail
            assert s.health().status == "failing"
        finally:
            standby.start()
        reads = replica_of(s)["reads"]
        wait_for(lambda: replica_of(s)["state"] == "ok")     # the prober found it again
        assert notes.get("a").content == {"v": 5}
        assert replica_of(s)["reads"] > reads
        assert s.health().checks["replicas"].status == "degraded"


def test_lag_is_reported_and_a_replica_past_max_lag_is_skipped(cluster, schema):
    primary, standby = cluster
    url = f"{primary.url}?schema={schema}"
    with kuradb.open(url, replicas=[standby.url], replica_max_lag=0.6) as s, \
            kuradb.open(url, replicas=[standby.url], replica_max_lag=0.6) as other:
        notes = s.collection("notes")
        notes.put({"v": 1}, id="a")
        caught_up(primary, standby)
        idle = replica_of(s)
        assert idle["state"] == "ok" and idle["lag_bytes"] == 0 and idle["lag_seconds"] == 0
        with paused(standby):
            notes.put({"v": 2}, id="a")
            time.sleep(0.1)
            early = replica_of(s)
            assert early["lag_bytes"] > 0 and 0.05 <= early["lag_seconds"] <= 0.6 and early["state"] == "ok"
            assert "paused" in early["detail"]
            assert other.collection("notes").get("a").content == {"v": 1}     # behind, but not past max
            time.sleep(0.6)
            late = replica_of(s)
            assert late["state"] == "lagging" and late["lag_seconds"] > 0.6, late
            check = s.health().checks["replicas"]
            assert check.status == "failing" and "lagging" in check.detail
            # Skipped now (each store's prober finds it within a second; stats() probes at once): a store
            # that did not write reads the primary.
            assert replica_of(other)["state"] == "lagging"
            assert other.collection("notes").get("a").content == {"v": 2}
        wait_for(lambda: replica_of(s)["state"] == "ok")
        time.sleep(1.1)      # idle for a while: the lag stays 0 (not the age of the last transaction)
        assert replica_of(s)["lag_seconds"] == 0 and s.health().checks["replicas"].status == "ok"


def test_a_replica_must_be_a_standby_of_the_primary(cluster, schema):
    primary, standby = cluster
    url = f"{primary.url}?schema={schema}"
    itself = primary.url.replace("127.0.0.1", "localhost")
    with pytest.raises(errors.ValidationError, match="the primary itself") as e:
        kuradb.open(url, replicas=[itself])
    assert e.value.path == "replicas[0]"
    with pytest.raises(errors.ValidationError, match="primary's own URL"):
        kuradb.open(url, replicas=[primary.url])
    with pytest.raises(errors.ValidationError, match="named twice") as e:
        kuradb.open(url, replicas=[standby.url, standby.url])
    assert e.value.path == "replicas[1]"
    with pytest.raises(errors.ValidationError, match="schema"):
        kuradb.open(url, replicas=[standby.url + "?schema=elsewhere"])


def test_a_server_of_another_cluster_is_refused(cluster, schema):
    primary, standby = cluster
    stranger = Server(binaries())
    try:
        with pytest.raises(errors.ValidationError, match="another cluster") as e:
            kuradb.open(f"{primary.url}?schema={schema}", replicas=[standby.url, stranger.url])
        assert e.value.path == "replicas[1]"
    finally:
        stranger.remove()


@pytest.mark.parametrize("options, path", [
    ({"replicas": "postgresql://h/db"}, "replicas"),
    ({"replicas": ["h:5432"]}, "replicas[0]"),
    ({"replicas": [], "replica_wait": -1}, "replica_wait"),
    ({"replicas": [], "replica_wait": "1s"}, "replica_wait"),
    ({"replicas": [], "replica_max_lag": 0}, "replica_max_lag"),
])
def test_bad_replica_options_are_validation_errors_naming_the_option(cluster, schema, options, path):
    primary, _ = cluster
    with pytest.raises(errors.ValidationError) as e:
        kuradb.open(f"{primary.url}?schema={schema}", **options)
    assert e.value.path == path


def test_a_store_in_a_directory_has_no_replicas(tmp_path):
    with pytest.raises(errors.ValidationError, match="PostgreSQL") as e:
        kuradb.open(tmp_path / "s", replicas=["postgresql://postgres@127.0.0.1/postgres"])
    assert e.value.path == "replicas"
    with pytest.raises(errors.ValidationError) as e:
        kuradb.open(tmp_path / "s", replica_wait=None)
    assert e.value.path == "replica_wait"


def test_a_promoted_replica_is_no_longer_read_from(cluster, schema):
    primary, _ = cluster
    promoted = Server(binaries("pg_basebackup"), standby_of=primary)
    try:
        with kuradb.open(f"{primary.url}?schema={schema}", replicas=[promoted.url]) as s:
            notes = s.collection("notes")
            notes.put({"v": 1}, id="a")
            assert notes.get("a").content == {"v": 1} and replica_of(s)["state"] == "ok"
            promoted.promote()
            wait_for(lambda: replica_of(s)["state"] == "not a standby")
            assert "promoted" in replica_of(s)["detail"]
            notes.put({"v": 2}, id="a")         # only on the primary now
            assert notes.get("a").content == {"v": 2}
            assert s.health().checks["replicas"].status == "failing"
    finally:
        promoted.remove()


def test_watch_and_verify_with_replicas(cluster, schema):
    primary, standby = cluster
    with kuradb.open(f"{primary.url}?schema={schema}", replicas=[standby.url]) as s:
        notes = s.collection("notes")
        changes = s.watch(since=0, timeout=2)
        for i in range(5):
            notes.put({"v": i}, id=f"r{i}")
        assert [next(changes).id for _ in range(5)] == [f"r{i}" for i in range(5)]
        assert s.verify().ok                    # a snapshot on the replica, having replayed the puts
        assert replica_of(s)["reads"] > 0
