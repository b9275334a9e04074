"""Backups of a SQLite store, by their files: the database inside a backup, blob files gone from the store,
an existing empty directory as a restore target."""
from __future__ import annotations

import json
import os

import populate
import pytest
from shared import only_backup, rewrite_manifest

import kuradb
from kuradb import backups, errors


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "store"
    with kuradb.open(path) as s:
        populate.backup_source(s)
    return path


def state(path):
    with kuradb.open(path) as s:
        return s.position, {c: [(r.id, r.version, r.rev, r.content) for r in s[c].find()] for c in s.collections()}


def test_a_manifest_that_lies_is_caught_by_the_restored_store(source, tmp_path):
    """Files consistent with a manifest are still restored into a scratch store and verified."""
    import hashlib

    import apsw
    import zstandard

    with kuradb.open(source) as s:
        s.backup(tmp_path / "bk")
    d = only_backup(tmp_path / "bk")
    raw = zstandard.ZstdDecompressor().decompress((d / "kura.db.zst").read_bytes(), max_output_size=1 << 30)
    db = tmp_path / "tampered.db"
    db.write_bytes(raw)
    conn = apsw.Connection(str(db))
    conn.execute("UPDATE log SET rev = 'x' WHERE position = 1")
    conn.close()
    raw = db.read_bytes()
    packed = zstandard.ZstdCompressor().compress(raw)
    (d / "kura.db.zst").write_bytes(packed)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["files"][0].update(size=len(packed), sha256=hashlib.sha256(packed).hexdigest(),
                                content={"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})
    rewrite_manifest(d, manifest)
    report = backups.verify(tmp_path / "bk")
    assert any("restored store fails verification" in p and "notes/k000 version 1" in p
               for p in report.problems), report.problems
    with pytest.raises(errors.RestoreError, match="fails verification"):
        backups.restore(tmp_path / "bk", tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_a_failed_backup_leaves_nothing(source, tmp_path):
    with kuradb.open(source) as s:
        (path,) = [os.path.join(d, f) for d, _, files in os.walk(os.path.join(s.directory, "blobs"))
                   for f in files if len(f) == 64]
        name = os.path.basename(path)
        os.unlink(path)  # a referenced blob file is gone
        with pytest.raises(errors.BackupError, match=f"blob {name}: its file .* is missing"):
            s.backup(tmp_path / "bk")
    assert os.listdir(tmp_path / "bk") == []
    assert backups.list(tmp_path / "bk") == []


def test_garbage_blobs_gone_from_disk_are_left_out(tmp_path):
    with kuradb.open(tmp_path / "s") as s:
        s["c"].put({"x": 1}, id="a")
        ref = s.blobs.put(os.urandom(100_000))  # referenced by nothing: garbage gc may remove at any time
        os.unlink(os.path.join(s.directory, "blobs", ref.hash[:2], ref.hash))
        s.backup(tmp_path / "bk")
    backups.restore(tmp_path / "bk", tmp_path / "copy")
    with kuradb.open(tmp_path / "copy") as r:
        assert r.verify().ok and not r.blobs.exists(ref)


def test_an_empty_directory_is_a_restore_target(source, tmp_path):
    with kuradb.open(source) as s:
        info = s.backup(tmp_path / "bk")
    (tmp_path / "empty").mkdir()
    backups.restore(tmp_path / "bk", tmp_path / "empty", until=info.position)
    assert state(tmp_path / "empty") == state(source)
