"""The read cache of a SQLite store: a row damaged under it raises CorruptedData and is never cached."""
from __future__ import annotations

import os

import pytest

import kuradb
from kuradb import errors


def test_corrupted_row_is_not_cached(tmp_path):
    with kuradb.open(tmp_path / "s", cache="default") as s:
        notes = s.collection("notes")
        notes.put({"v": 1}, id="a")
        with s.transaction() as tx:   # damage the stored checksum (SQLite)
            tx.cur.execute("UPDATE log SET checksum=x'00' WHERE id='a'")
        for _ in range(2):
            with pytest.raises(errors.CorruptedData):
                notes.get("a")
    assert os.path.exists(tmp_path / "s")
