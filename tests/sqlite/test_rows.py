"""The rows under the records: what a purge leaves in the log, what a write failing half-way leaves."""
from __future__ import annotations

import pytest

from kuradb import errors


def test_purge_leaves_no_content_and_no_author_in_the_log(store, notes):
    notes.put({"secret": "s1"}, id="a", author="alice")
    notes.put({"secret": "s2"}, id="a")
    notes.put({"keep": 1}, id="b")
    notes.purge("a")
    # nothing of a's versions is left but their positions: no content, no author
    raw = store.backend.reader().rows(
        "SELECT count(*) FROM log WHERE id='a' AND (body IS NOT NULL OR author IS NOT NULL)")[0][0]
    assert raw == 0 and store.stats()["versions"] == 1


def test_write_failing_part_way_dooms_the_transaction_unless_a_savepoint_undoes_it(store, monkeypatch):
    import kuradb.backends.sqlite.rows as rows

    c = store["c"]
    c.put({"ok": 0}, id="x")
    real_insert = rows._INSERT
    broken = "INSERT INTO no_such_table VALUES(?)"  # fails after the old version stopped being current
    monkeypatch.setattr(rows, "_INSERT", broken)
    with pytest.raises(errors.KuraError, match="rolled back"):
        with store.transaction():
            with pytest.raises(errors.KuraError, match="no such table"):
                c.put({"half": True}, id="x")
            # the caller ignores the failure and commits: refused, nothing half-written lands
    monkeypatch.setattr(rows, "_INSERT", real_insert)
    assert c.get("x")["ok"] == 0 and store.position == 1

    c.put({"ok": 1}, id="a")
    with store.transaction():
        with pytest.raises(errors.KuraError, match="no such table"):
            with store.transaction():
                monkeypatch.setattr(rows, "_INSERT", broken)
                try:
                    c.put({"half": True}, id="a")
                finally:
                    monkeypatch.setattr(rows, "_INSERT", real_insert)
        c.put({"ok": 2}, id="a")  # the savepoint undid the half write, so this commits
    assert c.get("a")["ok"] == 2 and c.get("a").version == 2
    assert [ch.id for ch in store.changes()] == ["x", "a", "a"]
