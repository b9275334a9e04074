"""Entries of the audit trail edited or removed in kura.db: verify names the entry where the chain breaks."""
from __future__ import annotations

import apsw
import populate
import pytest

import kuradb


@pytest.fixture
def busy(tmp_path):
    path = tmp_path / "s"
    with kuradb.open(path, author="ann") as s:
        populate.audited(s)
    return path


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
