"""A store moves SQLite -> PostgreSQL -> SQLite, by ``kuradb.copy`` and by backup/restore, with nothing lost.

Every record, every version of its history, every blob's bytes (a SQLite store's large
blobs are files, PostgreSQL keeps all of them in the database), index definitions that
queries then use, collection options and the audit trail: the same at every hop, each
hop's verify passing with the same audit head.
"""
from __future__ import annotations

import json
import os

import pytest
from test_copy import everything, fill

import kuradb
from kuradb import backups, errors
from kuradb.cli import main


def _check(s, want, big):
    assert everything(s) == want
    assert s.verify().ok
    assert s.audit()[-1].hash == want[2][-1]["hash"]
    assert len(s.blobs.get(big)) == 150_000
    assert s["notes"].explain({"t": "again"}).index == "by_t"
    assert [r.id for r in s["notes"].find({"t": "again"})] == ["k001"]
    with pytest.raises(errors.DuplicateKey):
        s["notes"].put({"i": 5}, id="dup")


def s_bytes(directory, ref):
    """A blob's plain bytes, read from its store (to tell that a file holds something else)."""
    with kuradb.open(directory, encryption_key="a passphrase") as s:
        return s.blobs.get(ref)


def _sqlite_source(tmp_path):
    with kuradb.open(tmp_path / "a") as s:
        fill(s)
        return everything(s), s["notes"].get("pic")["big"][0]


def test_sqlite_to_postgresql_to_sqlite_by_copy(pg, tmp_path):
    want, big = _sqlite_source(tmp_path)
    kuradb.copy(tmp_path / "a", pg.location("b"))
    with kuradb.open(pg.location("b")) as s:
        _check(s, want, big)
    kuradb.copy(pg.location("b"), tmp_path / "c")
    with kuradb.open(tmp_path / "c") as s:
        _check(s, want, big)
    assert os.path.exists(os.path.join(tmp_path, "c", "blobs", big["$blob"][:2], big["$blob"]))   # a file again


def test_sqlite_to_postgresql_to_sqlite_by_backup_and_restore(pg, tmp_path):
    want, big = _sqlite_source(tmp_path)
    with kuradb.open(tmp_path / "a") as s:
        s.backup(tmp_path / "bk1")
    backups.restore(tmp_path / "bk1", pg.location("b"))
    with kuradb.open(pg.location("b")) as s:
        _check(s, want, big)
        s.backup(tmp_path / "bk2")
        s["notes"].put({"i": 3000}, id="later")
        s.backup(tmp_path / "bk2", kind="incremental")
        later = everything(s)
    assert backups.verify(tmp_path / "bk2").ok
    backups.restore(tmp_path / "bk2", tmp_path / "c")
    with kuradb.open(tmp_path / "c") as s:
        assert everything(s) == later and s.verify().ok
        assert os.path.exists(os.path.join(tmp_path, "c", "blobs", big["$blob"][:2], big["$blob"]))
    first = backups.list(tmp_path / "bk2")[0]
    backups.restore(tmp_path / "bk2", tmp_path / "d", id=first.id)
    with kuradb.open(tmp_path / "d") as s:
        _check(s, want, big)


def test_an_encrypted_sqlite_store_moves_and_its_postgresql_backups_are_sealed(pg, tmp_path):
    key = "a passphrase"
    with kuradb.open(tmp_path / "a", encryption_key=key) as s:
        fill(s)
        want, big = everything(s), s["notes"].get("pic")["big"][0]
    kuradb.copy(tmp_path / "a", pg.location("b"), encryption_key=key)
    with kuradb.open(pg.location("b"), encryption_key=key) as s:    # encryption at rest: the server's
        _check(s, want, big)
        info = s.backup(tmp_path / "bk")          # a backup of it is sealed with the key
        assert info.encrypted
    for d, _, names in os.walk(tmp_path / "bk"):
        for n in names:
            assert b"note 17" not in open(os.path.join(d, n), "rb").read()
    with pytest.raises(errors.PermissionDenied):
        backups.restore(tmp_path / "bk", tmp_path / "c")
    backups.restore(tmp_path / "bk", tmp_path / "c", encryption_key=key)
    with kuradb.open(tmp_path / "c", encryption_key=key) as s:
        _check(s, want, big)
    kuradb.copy(pg.location("b"), tmp_path / "e", dest_encryption_key=key)   # back into an encrypted directory
    with pytest.raises(errors.PermissionDenied):
        kuradb.open(tmp_path / "e")
    with kuradb.open(tmp_path / "e", encryption_key=key) as s:
        _check(s, want, big)
    sealed_file = os.path.join(tmp_path, "e", "blobs", big["$blob"][:2], big["$blob"])
    assert os.path.exists(sealed_file) and open(sealed_file, "rb").read(64) not in s_bytes(tmp_path / "a", big)
    with kuradb.open(pg.location("p")) as s:       # a plain PostgreSQL store's backups sealed with a key of their own
        fill(s)
        s.backup(tmp_path / "sealed", encryption_key=key)
    backups.restore(tmp_path / "sealed", pg.location("q"), encryption_key=key)
    with kuradb.open(pg.location("q")) as s:
        assert s.verify().ok


def test_a_restore_into_a_schema_with_data_is_refused_and_a_failed_one_leaves_no_schema(pg, tmp_path):
    with kuradb.open(pg.location("b")) as s:
        s.collection("x").put({"a": 1}, id="a")
    with kuradb.open(tmp_path / "a") as s:
        s.collection("notes").put({"t": 1}, id="n")
        # a tokenizer option only SQLite has: the restore into PostgreSQL fails building the index
        s.collection("notes").create_text_index(["t"], tokenize="unicode61 categories Lu")
        s.backup(tmp_path / "bk")
    with pytest.raises(errors.RestoreError, match="new or empty"):
        backups.restore(tmp_path / "bk", pg.location("b"))
    with pytest.raises(errors.KuraError):
        backups.restore(tmp_path / "bk", pg.location("c"))
    with pytest.raises(errors.NotFound):
        kuradb.open(pg.location("c"), create=False)      # the schema it made is gone
    with pytest.raises(errors.KuraError):
        kuradb.copy(tmp_path / "a", pg.location("c"))
    with pytest.raises(errors.NotFound):
        kuradb.open(pg.location("c"), create=False)


def test_the_command_line_moves_a_store_between_backends(pg, tmp_path, capsys):
    want, big = _sqlite_source(tmp_path)
    assert main(["--json", "copy", str(tmp_path / "a"), pg.location("b")]) == 0
    assert json.loads(capsys.readouterr().out)["position"] == want[0]
    assert main(["--json", "copy", pg.location("b"), str(tmp_path / "c")]) == 0
    capsys.readouterr()
    with kuradb.open(tmp_path / "c") as s:
        _check(s, want, big)
    assert main(["--json", "restore", str(tmp_path / "none"), pg.location("d")]) != 0
