"""A PostgreSQL server of the test's own, stopped and restarted under a store: typed errors, nothing half-written.

The server (initdb on a spare loopback port, with the machine's PostgreSQL binaries) is this
module's alone, so stopping it disturbs no other test. Without the binaries the tests skip with a
message (with CI=true they fail).
"""
from __future__ import annotations

import pytest
from pg_servers import Server, binaries

import kuradb
from kuradb import errors


@pytest.fixture
def server():
    s = Server(binaries())
    yield s
    s.remove()


def test_a_restart_between_writes_is_absorbed_by_reconnecting(server):
    with kuradb.open(server.url + "?schema=s") as s:
        n = s.collection("notes")
        n.put({"v": 1}, id="a")
        assert n.get("a").version == 1          # the reader's connection is open too
        server.restart()
        n.put({"v": 2}, id="a")                 # the writer's connection is new
        assert n.get("a").content == {"v": 2}   # so is the reader's
        assert [c.position for c in s.changes(0)] == [1, 2]
        server.restart()
        with s.transaction():                   # its first statement is a savepoint, on a cut connection
            n.put({"v": 3}, id="a")
            n.put({"v": 1}, id="b")
        assert n.get("a").content == {"v": 3} and n.get("b").version == 1 and s.verify().ok


def test_a_write_in_flight_when_the_server_dies_is_a_typed_error_and_leaves_nothing(server):
    with kuradb.open(server.url + "?schema=s") as s:
        n = s.collection("notes")
        n.put({"v": 1}, id="a")
        with pytest.raises(errors.Unavailable, match="cannot be reached"):
            with s.transaction():
                n.put({"v": 2}, id="a")
                n.put({"v": 1}, id="b")
                server.stop("immediate")        # the server dies before the commit
        server.start()
        assert n.get("a").content == {"v": 1} and n.get("b", None) is None
        assert s.position == 1 and s.verify().ok
        n.put({"v": 3}, id="a")                 # and writing goes on where the log ended
        assert [c.position for c in s.changes(0)] == [1, 2]


def test_a_server_that_stays_down_is_unavailable_for_reads_and_writes(server):
    with kuradb.open(server.url + "?schema=s", timeout=2) as s:
        n = s.collection("notes")
        n.put({}, id="a")
        server.stop("immediate")
        with pytest.raises(errors.Unavailable):
            n.get("a")
        with pytest.raises(errors.Unavailable):
            n.put({}, id="b")
    with pytest.raises(errors.Unavailable, match=f"127.0.0.1:{server.port}"):
        kuradb.open(server.url + "?schema=s", timeout=1)
