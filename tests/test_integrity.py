"""store.verify() finds every kind of damage and names it; store.repair() rebuilds derived state only."""
from __future__ import annotations

import json
import os
import threading

import apsw
import pytest

import kuradb
from kuradb.cli import main
from kuradb.errors import EXIT_CODES


@pytest.fixture
def full(tmp_path):
    """A closed store using every feature: history, deletes, purge, erased history, blobs, indexes."""
    path = tmp_path / "s"
    with kuradb.open(path) as s:
        n = s.collection("notes")
        n.put_many([("a", {"t": "hello world", "tags": ["x"]}), ("b", {"t": "bye", "n": 1})])
        n.update("a", {"t": "hello again"})
        n.delete("b")
        n.put({"t": "gone"}, id="p")
        n.purge("p")
        n.create_index("t", unique=True)
        n.create_text_index(["t"])
        small = s.blobs.put(b"tiny")
        big = s.blobs.put(os.urandom(100_000))
        n.put({"t": "pictures", "small": small, "big": [big]}, id="c")
        k = s.collection("kept", keep_history=2)
        for i in range(4):
            k.put({"v": i}, id="z")
        s.collection("dropped").put({"v": 1}, id="q")
        s.drop_collection("dropped")
    return path


def tamper(path, *statements):
    conn = apsw.Connection(str(path / "kura.db"))
    for sql in statements:
        conn.execute(sql)
    conn.close()


def problems(path):
    with kuradb.open(path) as s:
        return s.verify().problems


def test_a_healthy_store_verifies(full):
    with kuradb.open(full) as s:
        seen: list[float] = []
        report = s.verify(progress=seen.append)
        assert report.ok and report.problems == [], report.problems
        assert report.checked["records"] == 4 and report.checked["blobs"] == 2 and report.checked["indexes"] == 2
        assert seen[-1] == 1.0 and seen == sorted(seen)
        assert s.repair().ok and s.verify().ok


@pytest.mark.parametrize("statements,expected", [
    (["UPDATE log SET body = jsonb('{\"t\":\"hello worlds\",\"tags\":[\"x\"]}') WHERE position = 1"],
     "notes/a version 1 (change log position 1): content does not match its checksum"),
    (["UPDATE docs SET body = jsonb('{\"t\":\"HELLO again\",\"tags\":[\"x\"]}') WHERE id = 'a'"],
     "notes/a (current version 2): content does not match its checksum"),
    (["UPDATE log SET rev = '1-00000000000000000000000000000000' WHERE position = 2"],
     "notes/b version 1 (change log position 2): rev 1-0000"),
    (["DELETE FROM log WHERE position = 3"], "change log: positions are missing (from 3; 1 in all)"),
    (["UPDATE log SET prev = 2 WHERE position = 3"],
     "notes/a version 2 (change log position 3): history chain broken"),
    (["UPDATE docs SET version = 7 WHERE id = 'a'"],
     "notes/a (current version 7): disagrees with its change-log entry"),
    (["UPDATE log SET body = NULL WHERE position = 1"],
     "notes/a version 1 (change log position 1): content is missing"),
    (["UPDATE blobs SET data = x'74696e79' || x'00' WHERE size = 4"], "stored bytes do not match their hash"),
    (["DELETE FROM blobs WHERE size = 4"], "referred to by a record version but not stored"),
    (["DELETE FROM collections WHERE name = 'kept'"],
     "kept/z (current version 4): collection 'kept' is not registered"),
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
    (['DROP INDEX "kura:notes:t"'], "notes: index 't': its SQLite index is missing"),
    (['DROP TRIGGER "kura_fts:notes:insert"'], "trigger 'kura_fts:notes:insert' is missing"),
    (['DELETE FROM "kura_fts:notes" WHERE rowid = (SELECT rowid FROM docs WHERE id = \'a\')'],
     "1 live records missing from the text index"),
    (['DROP TABLE "kura_fts:notes"'], "its FTS5 table is missing"),
    (['CREATE INDEX "kura:notes:stray" ON docs(id)'], "SQLite index 'kura:notes:stray' belongs to no declared index"),
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


def test_verify_reads_a_snapshot_while_writers_write(tmp_path):
    with kuradb.open(tmp_path / "s") as s:
        c = s.collection("c")
        c.create_index("v")
        c.put_many([(f"k{i:05}", {"v": i, "a": [i]}) for i in range(5000)])
        stop = threading.Event()

        def write():
            i = 0
            while not stop.is_set():
                c.put({"v": -i, "a": [i]}, id=f"w{i % 50}")
                i += 1

        t = threading.Thread(target=write)
        t.start()
        try:
            reports = [s.verify() for _ in range(3)]
        finally:
            stop.set()
            t.join()
        assert all(r.ok for r in reports), [r.problems for r in reports]


def test_cli_verify_and_repair(full, capsys):
    assert main(["verify", str(full)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    tamper(full, "DELETE FROM array_paths", "UPDATE log SET rev = 'x' WHERE position = 2")
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
    assert any("notes/b version 1 (change log position 2): rev x" in p for p in repaired["problems"])
    assert "3 problem(s) remain" in err
    assert main(["verify", str(full)]) == EXIT_CODES["corrupted_data"]  # the rev is user data: still reported
    assert len(json.loads(capsys.readouterr().out)["problems"]) == 3
