"""Opening a SQLite store: its directory and files, durability pragmas, schema versions, foreign files.

The options every implementation takes are tests/test_open.py's.
"""
from __future__ import annotations

import os

import apsw
import pytest

import kuradb
from kuradb import errors
from kuradb.backends.sqlite.schema import LATEST


def test_open_creates_directory_layout(tmp_path):
    with kuradb.open(tmp_path / "new" / "store") as s:
        s["c"].put({"a": 1}, id="x")
    assert os.path.exists(tmp_path / "new" / "store" / "kura.db")


def test_memory_store_is_throwaway(tmp_path):
    s = kuradb.open(":memory:")
    s["c"].put({"a": 1}, id="x")
    directory = s.directory
    assert os.path.isdir(directory)
    s.close()
    assert not os.path.exists(directory)
    with kuradb.open(":memory:") as t:
        assert t.collections() == []


def test_durability_pragmas(tmp_path):
    for durability, expected in (("full", 2), ("normal", 1), ("off", 1)):
        with kuradb.open(tmp_path / durability, durability=durability) as s:
            s["c"].put({}, id="x")   # the pragmas of the connection that writes
            with s.transaction() as tx:
                conn = tx.cur
                assert conn.execute("PRAGMA synchronous").fetchone()[0] == expected
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_version_is_refused(tmp_path):
    with kuradb.open(tmp_path) as s:
        s["c"].put({"a": 1}, id="x")
    conn = apsw.Connection(str(tmp_path / "kura.db"))
    conn.execute(f"PRAGMA user_version={LATEST + 1}")
    conn.close()
    with pytest.raises(errors.UnsupportedVersion, match=f"schema version {LATEST + 1}"):
        kuradb.open(tmp_path)


def test_edited_migration_is_refused(tmp_path):
    with kuradb.open(tmp_path):
        pass
    conn = apsw.Connection(str(tmp_path / "kura.db"))
    conn.execute("UPDATE migrations SET checksum='tampered' WHERE version=1")
    conn.close()
    with pytest.raises(errors.UnsupportedVersion, match="incompatible build"):
        kuradb.open(tmp_path)


def test_foreign_sqlite_file_is_refused(tmp_path):
    conn = apsw.Connection(str(tmp_path / "kura.db"))
    conn.execute("CREATE TABLE other(x)")
    conn.close()
    with pytest.raises(errors.CorruptedData, match="not a kuradb store"):
        kuradb.open(tmp_path)


def test_garbage_file_is_refused(tmp_path):
    (tmp_path / "kura.db").write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(errors.CorruptedData):
        kuradb.open(tmp_path)


def test_unwritable_location_raises_permission_denied(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/kuradb-cannot-be-here"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "store")
    with pytest.raises(errors.PermissionDenied, match="cannot create"):
        kuradb.open(target)


def test_location_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.PermissionDenied):
        kuradb.open(tmp_path / "file")


# -- a directory or file that is not a store is never turned into one (issue #13 item 3) --------


def test_a_directory_holding_other_files_is_refused_and_left_untouched(tmp_path):
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "kura.db.zst").write_bytes(b"\x28\xb5\x2f\xfd...")
    with pytest.raises(errors.NotFound, match="holds files .*no kuradb store") as e:
        kuradb.open(tmp_path / "backups")
    assert "create=True" in (e.value.hint or "")
    assert sorted(os.listdir(tmp_path / "backups")) == ["kura.db.zst"]


def test_create_false_makes_no_directory_and_no_file(tmp_path):
    with pytest.raises(errors.NotFound):
        kuradb.open(tmp_path / "missing", create=False)
    assert not os.path.exists(tmp_path / "missing" / "kura.db")


@pytest.mark.parametrize("kwargs", [{"timeout": "x"}, {"durability": "fast"}, {"read_only": "yes"}, {"author": 5},
                                    {"max_document_size": 0}, {"create": "no"}, {"cache": "big"}])
def test_an_open_refused_for_its_arguments_makes_no_directory(tmp_path, kwargs):
    with pytest.raises(errors.ValidationError):
        kuradb.open(tmp_path / "s", **kwargs)
    assert not os.path.exists(tmp_path / "s")


def test_create_true_makes_a_store_in_a_directory_with_other_files(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "settings.toml").write_text("x = 1")
    with kuradb.open(tmp_path / "app", create=True) as s:
        s["c"].put({"a": 1}, id="x")
    with kuradb.open(tmp_path / "app") as s:     # a store now: opens without create
        assert s["c"].get("x")["a"] == 1


def test_an_empty_directory_becomes_a_store(tmp_path):
    (tmp_path / "empty").mkdir()
    with kuradb.open(tmp_path / "empty") as s:
        assert s.position == 0


@pytest.mark.parametrize("create", [None, True])
def test_an_empty_database_file_beside_blobs_is_refused_never_reinitialised(tmp_path, create):
    d = tmp_path / "s"
    with kuradb.open(d) as s:
        ref = s.blobs.put(b"x" * 100_000)
        s["c"].put({"img": ref}, id="a")
    (d / "kura.db").write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        if (d / f"kura.db{suffix}").exists():
            (d / f"kura.db{suffix}").unlink()
    with pytest.raises(errors.CorruptedData, match="empty") as e:
        kuradb.open(d, create=create)
    assert "backup" in (e.value.hint or "")
    assert (d / "kura.db").stat().st_size == 0


def test_a_sqlite_file_that_is_not_a_store_is_refused_even_when_blank(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    conn = apsw.Connection(str(d / "kura.db"))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()   # a valid, blank SQLite database
    conn.close()
    with pytest.raises(errors.CorruptedData, match="not a kuradb store"):
        kuradb.open(d)


def test_a_crash_while_a_store_is_made_leaves_no_half_store(tmp_path):
    """Creation builds the database under a temporary name; only a whole store is ever kura.db."""
    d = tmp_path / "s"
    d.mkdir()
    (d / "kura.db.creating-123-abcd").write_bytes(b"partial")   # what a killed creator leaves
    with kuradb.open(d) as s:
        s["c"].put({"a": 1}, id="x")
    assert os.path.getsize(d / "kura.db") > 0


def test_kuradb_init_makes_a_store_in_a_directory_with_other_files_on_purpose(tmp_path):
    from kuradb.cli import main

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "notes.txt").write_text("mine")
    (tmp_path / "in.jsonl").write_text('{"_id": "x", "a": 1}\n')
    assert main(["import", str(tmp_path / "app"), "c", str(tmp_path / "in.jsonl")]) != 0   # refused: not a store
    assert not (tmp_path / "app" / "kura.db").exists()
    assert main(["init", str(tmp_path / "app")]) == 0
    assert (tmp_path / "app" / "kura.db").exists() and (tmp_path / "app" / "notes.txt").read_text() == "mine"


def test_a_leftover_writers_file_alone_does_not_block_making_a_store(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "kura.db-writers").write_bytes(b"\0" * 16)   # the writers' queue holds no data
    with kuradb.open(tmp_path / "s") as s:
        assert s.position == 0


def test_a_stray_write_ahead_log_blocks_making_a_store(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "kura.db-wal").write_bytes(b"x")   # of a database that is gone: not applied to a new one
    with pytest.raises(errors.NotFound, match="holds files"):
        kuradb.open(tmp_path / "s")
