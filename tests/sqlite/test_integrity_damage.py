"""Damage made in kura.db and the blob files: verify names each kind, repair rebuilds derived state only."""
from __future__ import annotations

import json
import os

import apsw
import populate
import pytest

import kuradb
from kuradb.cli import main
from kuradb.errors import EXIT_CODES


@pytest.fixture
def full(tmp_path):
    """A closed store using every feature (populate.every_feature)."""
    path = tmp_path / "s"
    with kuradb.open(path) as s:
        populate.every_feature(s)
    return path


def tamper(path, *statements):
    conn = apsw.Connection(str(path / "kura.db"))
    for sql in statements:
        conn.execute(sql)
    conn.close()


def problems(path):
    with kuradb.open(path) as s:
        return s.verify().problems


@pytest.mark.parametrize("statements,expected", [
    (["UPDATE log SET body = jsonb('{\"t\":\"hello worlds\",\"tags\":[\"x\"]}') WHERE position = 1"],
     "notes/a version 1 (change log position 1): content does not match its checksum"),
    (["UPDATE log SET body = jsonb('{\"t\":\"HELLO again\",\"tags\":[\"x\"]}') WHERE id = 'a' AND head = 1"],
     "notes/a version 2 (change log position 3): content does not match its checksum"),
    (["UPDATE log SET rev = zeroblob(16) WHERE position = 2"],
     "notes/b version 1 (change log position 2): rev 1-0000"),
    (["DELETE FROM log WHERE position = 3"], "change log: positions are missing (from 3; 1 in all)"),
    (["UPDATE log SET prev = 2 WHERE position = 3"],
     "notes/a version 2 (change log position 3): history chain broken"),
    (["UPDATE log SET head = NULL WHERE id = 'a' AND head = 1"],
     "change log position 3: the newest version of its record is not marked current"),
    (["UPDATE log SET head = 2 WHERE id = 'a' AND head = 1"],
     "notes/a version 2 (change log position 3): is marked deleted but is not a deletion"),
    (["UPDATE log SET body = NULL WHERE position = 1"],
     "notes/a version 1 (change log position 1): content is missing"),
    (["UPDATE blobs SET data = x'74696e79' || x'00' WHERE size = 4"], "stored bytes do not match their hash"),
    (["DELETE FROM blobs WHERE size = 4"], "referred to by a record version but not stored"),
    (["DELETE FROM collections WHERE name = 'kept'"], "its collection (id 2) is not registered"),
])
def test_damage_to_user_data_is_named(full, statements, expected):
    tamper(full, *statements)
    found = problems(full)
    assert any(expected in p for p in found), found
    with kuradb.open(full) as s:
        repaired = s.repair()  # derived state only: the damage stays, and repair says so
        assert not repaired.ok and any(expected in p for p in repaired.problems), repaired.problems
        assert any(expected in p for p in s.verify().problems)
        assert s.health().checks["last_verify"].status == "failing"


@pytest.mark.parametrize("statements,expected", [
    (["DELETE FROM array_paths"], "the array catalog lacks 'tags'"),
    (["DELETE FROM blob_refs"], "is not recorded (repair adds it)"),
    (['DROP INDEX "kura:1:t"'], "notes: index 't': its SQLite index is missing"),
    (['DROP TRIGGER "kura_fts:1:insert"'], "trigger 'kura_fts:1:insert' is missing"),
    (['DELETE FROM "kura_fts:1" WHERE rowid = (SELECT position FROM log WHERE id = \'a\' AND head = 1)'],
     "1 live records missing from the text index"),
    (['DROP TABLE "kura_fts:1"'], "its FTS5 table is missing"),
    (['CREATE INDEX "kura:1:stray" ON log(id)'], "SQLite index 'kura:1:stray' belongs to no declared index"),
])
def test_derived_state_is_checked_and_repaired(full, statements, expected):
    with kuradb.open(full) as s:
        before = [(r.id, r.version, r.content) for c in ("notes", "kept") for r in s[c].find()]
        position = s.position
    tamper(full, *statements)
    found = problems(full)
    assert any(expected in p for p in found), found
    with kuradb.open(full) as s:
        repaired = s.repair()
        assert repaired.repaired
        report = s.verify()
        assert repaired.problems == report.problems  # what repair leaves is what verify finds
        if "stray" in expected:  # not kuradb's: reported, left alone
            assert any(expected in p for p in report.problems)
        else:
            assert report.ok, report.problems
        assert [(r.id, r.version, r.content) for c in ("notes", "kept") for r in s[c].find()] == before
        assert s.position == position
        assert [h.record.id for h in s["notes"].search_text("hello")] == ["a"]
        assert [r.id for r in s["notes"].find({"tags": "x"})] == ["a"]


def test_blob_files_are_hashed(full):
    (h,) = [h for h in os.listdir(full / "blobs") if len(h) == 2]
    (name,) = os.listdir(full / "blobs" / h)
    path = full / "blobs" / h / name
    data = bytearray(path.read_bytes())
    data[500] ^= 1
    path.write_bytes(bytes(data))
    assert any(f"blob {name}: file" in p and "does not match its hash" in p for p in problems(full))
    path.unlink()
    assert any(f"blob {name}: its file" in p and "is missing" in p for p in problems(full))


def test_cli_verify_and_repair(full, capsys):
    assert main(["verify", str(full)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    tamper(full, "DELETE FROM array_paths", "UPDATE log SET rev = x'00' WHERE position = 2")
    code = main(["verify", str(full)])
    out, err = capsys.readouterr()
    report = json.loads(out)
    # two catalog paths (tags, big); b's rev, the rev of b's next version, which no longer follows from it,
    # and the audit chain at the edited entry
    assert code == EXIT_CODES["corrupted_data"] and not report["ok"] and len(report["problems"]) == 5
    assert any("audit: change log position 2" in p for p in report["problems"])
    assert "5 problems found" in err and "kuradb repair" in err
    # repair rebuilds the catalog but cannot mend a rev (user data): it says so, and exits non-zero
    assert main(["repair", str(full)]) == EXIT_CODES["corrupted_data"]
    out, err = capsys.readouterr()
    repaired = json.loads(out)
    assert repaired["repaired"] and not repaired["ok"] and len(repaired["problems"]) == 3
    assert any("notes/b version 1 (change log position 2): rev 1-00 " in p for p in repaired["problems"])
    assert "3 problem(s) remain" in err
    assert main(["verify", str(full)]) == EXIT_CODES["corrupted_data"]  # the rev is user data: still reported
    assert len(json.loads(capsys.readouterr().out)["problems"]) == 3
