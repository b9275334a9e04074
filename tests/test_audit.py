"""The audit trail: every change hash-chained in its own transaction; verify finds edits and removals."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import apsw
import pytest

import kuradb
from kuradb import errors
from kuradb.audit import GENESIS
from kuradb.cli import main


@pytest.fixture
def busy(tmp_path):
    path = tmp_path / "s"
    with kuradb.open(path, author="ann") as s:
        n = s.collection("notes")
        n.put({"t": 1}, id="a")
        n.put({"t": 2}, id="a", author="bob")
        n.put_many([("b", {}), ("c", {})], author="cy")
        s.blobs.put(b"bytes")
        n.create_index("t")
        n.delete("b")
        with pytest.raises(RuntimeError), s.transaction():
            n.put({"t": 3}, id="rolled-back")
            raise RuntimeError
        with s.transaction():
            n.put({"t": 4}, id="d")
            with pytest.raises(RuntimeError), s.transaction():
                n.put({"t": 5}, id="savepoint-undone")
                raise RuntimeError
    return path


def test_every_change_is_an_entry_chained_to_the_one_before(busy):
    with kuradb.open(busy) as s:
        trail = s.audit()
        assert [(e.position, e.actor, e.action, e.id, e.version) for e in trail] == [
            (1, "ann", "record.put", "a", 1), (2, "bob", "record.put", "a", 2), (3, "cy", "record.put", "b", 1),
            (4, "cy", "record.put", "c", 1), (5, "ann", "blob.put", trail[4].id, None),
            (6, "ann", "index.create", "t", None), (7, "ann", "record.delete", "b", 2),
            (8, "ann", "record.put", "d", 1)]
        assert trail[0].prev_hash == GENESIS.hex()
        assert all(e.prev_hash == p.hash for p, e in zip(trail, trail[1:], strict=False))
        assert len({e.hash for e in trail}) == len(trail)
        assert s.verify().ok
        assert [e.position for e in s.audit(since=6)] == [7, 8]
        assert [e.position for e in s.audit(actor="cy")] == [3, 4]
        assert s.audit(since=datetime.now(UTC) + timedelta(hours=1)) == []
        assert len(s.audit(since=datetime.now(UTC) - timedelta(hours=1), limit=2)) == 2
        assert s.audit(since=3, actor="cy")[0].prev_hash == trail[2].hash  # the link, even when filtered
        for bad in ({"since": -1}, {"since": "x"}, {"since": datetime(2020, 1, 1)}, {"limit": -2}, {"actor": 5}):
            with pytest.raises(errors.ValidationError):
                s.audit(**bad)


def test_purge_erases_the_actor_but_keeps_the_chain(busy):
    with kuradb.open(busy) as s:
        s["notes"].purge("a")
        trail = s.audit()
        assert [e.actor for e in trail[:2]] == [None, None] and trail[0].actor_hash and trail[1].actor_hash
        assert trail[-1].action == "record.purge"
        assert s.verify().ok


def tamper(path, sql):
    conn = apsw.Connection(str(path / "kura.db"))
    conn.execute(sql)
    conn.close()


@pytest.mark.parametrize("sql,expected", [
    ("UPDATE log SET op = 'put' WHERE position = 7", "position 7: the hash chain breaks"),
    ("UPDATE log SET at = at + 1 WHERE position = 2", "position 2: the hash chain breaks"),
    ("UPDATE log SET author = 'mallory' WHERE position = 2", "position 2: its actor was edited"),
    ("UPDATE log SET author = 'mallory', actor_hash = NULL WHERE position = 2", "position 2: its actor was edited"),
    ("DELETE FROM log WHERE position = 5", "position 6: the hash chain breaks"),
    ("UPDATE log SET position = 100 WHERE position = 8", "position 100: the hash chain breaks"),
])
def test_verify_finds_edited_and_removed_entries(busy, sql, expected):
    tamper(busy, sql)
    with kuradb.open(busy) as s:
        problems = s.verify().problems
    assert any(expected in p for p in problems), problems


def test_cli_audit(busy, capsys):
    assert main(["audit", str(busy), "--actor", "cy"]) == 0
    assert [e["position"] for e in json.loads(capsys.readouterr().out)] == [3, 4]
    assert main(["audit", str(busy), "--since", "6", "--limit", "1"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["action"] == "record.delete" and len(entry["hash"]) == 32
