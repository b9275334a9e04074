"""The audit trail: every change hash-chained in its own transaction; verify finds edits and removals.

Edits to the stored entries themselves are SQLite's to make: tests/sqlite/test_audit_edits.py.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import populate
import pytest

from kuradb import errors
from kuradb.audit import GENESIS
from kuradb.cli import main


@pytest.fixture
def busy(open_store):
    """The name of a closed store holding populate.audited()."""
    with open_store("s", author="ann") as s:
        populate.audited(s)
    return "s"


def test_every_change_is_an_entry_chained_to_the_one_before(busy, open_store):
    with open_store(busy) as s:
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


def test_purge_erases_the_actor_but_keeps_the_chain(busy, open_store):
    with open_store(busy) as s:
        s["notes"].purge("a")
        trail = s.audit()
        assert [e.actor for e in trail[:2]] == [None, None] and trail[0].actor_hash and trail[1].actor_hash
        assert trail[-1].action == "record.purge"
        assert s.verify().ok


def test_cli_audit(busy, impl, capsys):
    assert main(["audit", impl.location(busy), "--actor", "cy"]) == 0
    assert [e["position"] for e in json.loads(capsys.readouterr().out)] == [3, 4]
    assert main(["audit", impl.location(busy), "--since", "6", "--limit", "1"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["action"] == "record.delete" and len(entry["hash"]) == 32
