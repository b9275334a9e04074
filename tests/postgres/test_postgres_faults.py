"""A PostgreSQL server of the test's own, stopped and restarted under a store: typed errors, nothing half-written.

The server (initdb on a spare loopback port, with the machine's PostgreSQL binaries) is this
module's alone, so stopping it disturbs no other test. Without the binaries the tests skip with a
message (with CI=true they fail).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

import kuradb
from kuradb import errors


def _bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class Server:
    """A throwaway PostgreSQL cluster: ``url``, ``stop(mode)``, ``start()``, ``restart()``."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.root = tempfile.mkdtemp(prefix="kuradb-pg-")
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._run("initdb", "-D", f"{self.root}/data", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_postgres, os.path.join(self.bindir, tool), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def start(self) -> None:
        self._run("pg_ctl", "-D", f"{self.root}/data", "-l", f"{self.root}/log", "-w", "start", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", f"{self.root}/data", "-w", "-m", mode, "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def server():
    bindir = _bin()
    if bindir is None or not os.path.exists(os.path.join(bindir, "pg_ctl")):
        message = "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    s = Server(bindir)
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
