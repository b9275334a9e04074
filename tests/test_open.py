"""Opening stores: locations, durability, read-only, schema versions, foreign files."""
from __future__ import annotations

import os

import apsw
import pytest

import kuradb
from kuradb import errors
from kuradb.schema import LATEST


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


@pytest.mark.parametrize("durability", ["full", "normal", "off"])
def test_durability_modes_open_and_persist(tmp_path, durability):
    with kuradb.open(tmp_path, durability=durability) as s:
        s["c"].put({"a": 1}, id="x")
        assert s.durability == durability
    with kuradb.open(tmp_path) as s:
        assert s["c"].get("x")["a"] == 1


def test_durability_pragmas(tmp_path):
    for durability, expected in (("full", 2), ("normal", 1), ("off", 1)):
        with kuradb.open(tmp_path / durability, durability=durability) as s:
            conn = s._backend._writer
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == expected
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unknown_durability_is_rejected(tmp_path):
    with pytest.raises(errors.ValidationError, match="durability must be one of"):
        kuradb.open(tmp_path, durability="sometimes")


def test_read_only_store_reads_but_refuses_writes(tmp_path):
    with kuradb.open(tmp_path) as s:
        s["c"].put({"a": 1}, id="x")
    with kuradb.open(tmp_path, read_only=True) as s:
        assert s["c"].get("x")["a"] == 1
        with pytest.raises(errors.ReadOnly):
            s["c"].put({"a": 2}, id="x")
        with pytest.raises(errors.ReadOnly):
            s.blobs.put(b"x")
    with pytest.raises(errors.NotFound, match="no kuradb store"):
        kuradb.open(tmp_path / "absent", read_only=True)


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


def test_unavailable_backends_and_options_say_so(tmp_path):
    for location in ("postgresql://localhost/test", "http://localhost:8750"):
        with pytest.raises(errors.KuraError, match="not available"):
            kuradb.open(location)
    with pytest.raises(errors.ValidationError, match="cache must be"):
        kuradb.open(tmp_path, cache="fast")


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


def test_public_names():
    assert set(kuradb.__all__) >= {"open", "Store", "Collection", "Record", "BlobRef", "Change",
                                   "Repository", "errors"}
    for name in kuradb.__all__:
        assert hasattr(kuradb, name)
