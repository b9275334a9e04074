"""A PostgreSQL store whose tables fill their disk: StorageFull, nothing half-written, reads and later writes go on.

The disk is a small tmpfs mounted by the test, made a tablespace of the shared server, and the
default tablespace of a database of the test's own; the server's WAL stays on its own disk. Without
the right to mount (or to make tablespaces) the test skips saying so; with CI=true it fails.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid

import psycopg
import pytest
from psycopg import sql

import kuradb
from kuradb import errors

SERVER = "postgresql://postgres@127.0.0.1:5432"


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def small_database(pg):
    root = tempfile.mkdtemp(prefix="kuradb-tiny-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", root],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        os.rmdir(root)
        _unavailable(f"cannot mount a small tmpfs for the full-disk test: {mounted.stderr.strip()} (run as root)")
    shutil.chown(root, "postgres")
    name = "kt_tiny_" + uuid.uuid4().hex[:8]
    admin = psycopg.connect(f"{SERVER}/test", autocommit=True)
    try:
        admin.execute(sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(sql.Identifier(name), sql.Literal(root)))
        admin.execute(sql.SQL("CREATE DATABASE {} TABLESPACE {}").format(sql.Identifier(name), sql.Identifier(name)))
        yield f"{SERVER}/{name}?schema=s"
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()
        subprocess.run(["umount", root], check=False)
        os.rmdir(root)


def test_a_full_disk_refuses_the_write_and_keeps_everything_before_it(small_database):
    with kuradb.open(small_database) as s:
        notes = s["notes"]
        notes.put({"v": "first"}, id="a")
        blob = os.urandom(256 << 10)               # incompressible: every byte needs the disk
        kept, refused = 0, None
        for i in range(200):                        # 50 MiB into a 12 MiB disk
            try:
                with s.transaction():
                    notes.put({"i": i, "raw": s.blobs.put(blob + i.to_bytes(4, "big"))}, id=f"r{i}")
                kept += 1
            except errors.StorageFull as e:
                refused = e
                break
        assert refused is not None and "out of space" in str(refused), "the disk never filled"
        assert kept > 0
        position = s.position
        # nothing of the refused transaction is there; everything before it is
        assert notes.get(f"r{kept}", None) is None and notes.count() == kept + 1
        assert notes.get("a").content == {"v": "first"}
        assert [r.id for r in notes.find({"i": {"$gte": 0}}, sort=["i"])] == [f"r{i}" for i in range(kept)]
        with pytest.raises(errors.StorageFull):
            with s.transaction():
                notes.put({"i": -1, "raw": s.blobs.put(os.urandom(4 << 20))}, id="again")
        assert s.position == position and s.verify().ok
