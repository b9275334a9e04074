"""Throwaway PostgreSQL servers of a test's own: a primary (initdb) and streaming standbys of it (pg_basebackup -R).

Each lives in a temporary directory on a spare loopback port, run with the
machine's PostgreSQL binaries (``/usr/lib/postgresql/*/bin``, as the
``postgres`` user when the tests run as root). ``binaries()`` skips the test
with a message when they are missing (with CI=true it fails).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile

import psycopg
import pytest


def server_binaries() -> str | None:
    """The directory of the machine's PostgreSQL server binaries, None without them."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def binaries(*tools: str) -> str:
    """The directory of the server's binaries; skips (with CI=true fails) the test without them."""
    bindir = server_binaries()
    if bindir is None or not all(os.path.exists(os.path.join(bindir, t)) for t in ("pg_ctl", *tools)):
        message = (f"PostgreSQL's server binaries (initdb, pg_ctl{''.join(', ' + t for t in tools)}) are not"
                   " installed: apt-get install postgresql")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return bindir


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A throwaway PostgreSQL cluster: ``url``, ``stop(mode)``, ``start()``, ``restart()``, ``promote()``,
    ``execute(sql)``.

    ``Server(bindir)`` makes a primary (initdb); ``Server(bindir, standby_of=primary)`` a streaming
    hot standby of it (pg_basebackup -R, WAL streamed during the copy)."""

    def __init__(self, bindir: str, *, standby_of: Server | None = None, settings: str = "") -> None:
        self.bindir = bindir
        self.root = tempfile.mkdtemp(prefix="kuradb-pg-")
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        self.port = spare_port()
        self.settings = settings
        try:
            if standby_of is None:
                self._run("initdb", "-D", f"{self.root}/data", "-A", "trust", "-U", "postgres", "--no-sync",
                          "-E", "UTF8")
            else:
                self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(standby_of.port), "-U", "postgres",
                          "-D", f"{self.root}/data", "-R", "-X", "stream", "-c", "fast", "--no-sync")
            self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
            self.start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_postgres, os.path.join(self.bindir, tool), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def start(self) -> None:
        self._run("pg_ctl", "-D", f"{self.root}/data", "-l", f"{self.root}/log", "-w", "start", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {self.settings}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", f"{self.root}/data", "-w", "-m", mode, "stop")

    def promote(self) -> None:
        """A standby becomes a primary of its own (leaves recovery)."""
        self._run("pg_ctl", "-D", f"{self.root}/data", "-w", "promote")

    def restart(self) -> None:
        self.stop()
        self.start()

    def execute(self, statement: str) -> list[tuple]:
        """Run one statement on the server (its own session); the rows it returned."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)
