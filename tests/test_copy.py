"""``kuradb.copy`` and ``kuradb copy``: a store moved into a new one with its whole history, verified.

A copy goes to ``impl.location(name)`` (a store of the implementation under test); moving
stores between backends (SQLite <-> PostgreSQL) is tests/postgres/test_postgres_copy.py.
"""
from __future__ import annotations

import json
import os
import threading

import pytest

import kuradb
from kuradb import errors
from kuradb.cli import main


def fill(s):
    """History by several actors, deletes, a purge, trimmed history, blobs small and large, a unique and a
    plain index, collection options, a dropped collection."""
    n = s.collection("notes")
    n.put_many([(f"k{i:03}", {"i": i, "tags": ["a", "b"][: i % 3], "t": f"note {i}"}) for i in range(120)])
    n.update("k001", {"i": -1}, author="bob")
    n.update("k001", {"t": "again"}, author="cy")
    n.delete("k002")
    n.put({"i": 1000}, id="p")
    n.purge("p")
    n.create_index("i", unique=True)
    n.create_index("t", name="by_t")
    small = s.blobs.put(b"tiny", content_type="text/plain")
    big = s.blobs.put(os.urandom(150_000))
    n.put({"i": 2000, "small": small, "big": [big]}, id="pic")
    k = s.collection("kept", keep_history=2)
    for i in range(5):
        k.put({"v": i}, id="z", type="counter")
    s.collection("typed", schema={"type": "object", "required": ["name"]}).put({"name": "x"}, id="t1")
    s.collection("dropped").put({"v": 1}, id="q")
    s.drop_collection("dropped")
    s.collection("dropped").put({"v": 2}, id="again")


def everything(s):
    """What a copy must bring back: every record's every kept version, blob bytes, index definitions,
    collection options, the audit trail, where the log ends."""
    out = {}
    for c in s.collections():
        col = s[c]
        recs = {}
        for r in col.find():
            versions = [(v.version, v.rev, v.content, v.author, v.type, v.deleted, v.created, v.modified)
                        for v in col.history(r.id)]
            blobs = {k: s.blobs.get(v) for k, v in r.content.items() if isinstance(v, kuradb.BlobRef)}
            recs[r.id] = (versions, blobs)
        out[c] = (recs, sorted((i.name, i.fields, i.unique, i.kind) for i in col.indexes()))
    audit = [a.to_dict() for a in s.audit()]
    return s.position, out, audit


@pytest.fixture
def source(open_store):
    with open_store("store") as s:
        fill(s)
    return "store"


def test_a_copy_holds_every_record_version_blob_index_and_audit_entry(impl, open_store, source):
    with open_store(source) as s:
        want = everything(s)
        big = s["notes"].get("pic")["big"][0]
    result = kuradb.copy(impl.location(source), impl.location("copy"))
    assert result["position"] == want[0] and result["blobs"] >= 2
    with open_store("copy") as c:
        assert everything(c) == want
        assert c.verify().ok
        assert c.audit()[-1].hash[:32] == result["audit_head"][:32]
        assert len(c.blobs.get(big)) == 150_000 and c.blobs.stat(c["notes"].get("pic")["small"]).content_type \
            == "text/plain"
        with pytest.raises(errors.DuplicateKey):
            c["notes"].put({"i": 5}, id="dup")            # the unique index came back, and is enforced
        assert [r.id for r in c["notes"].find({"t": "again"})] == ["k001"]
        assert c["notes"].explain({"t": "again"}).index == "by_t"   # and the plain one serves queries
        with pytest.raises(errors.ValidationError):
            c["typed"].put({"no": "name"})                # collection options (the schema) came too
        c["notes"].put({"i": 9999}, id="after")           # a copy is a store like any other: writes go on
        assert c.verify().ok


def test_a_copy_is_one_consistent_snapshot_while_writers_write(impl, open_store):
    with open_store("store") as s:
        c = s.collection("c")
        stop = threading.Event()

        def write():
            i = 0
            while not stop.is_set() or i < 50:
                c.put({"i": i}, id=f"w{i:06}")
                i += 1

        t = threading.Thread(target=write)
        t.start()
        try:
            result = kuradb.copy(s, impl.location("copy"))
        finally:
            stop.set()
            t.join()
    with open_store("copy") as r:
        assert r.position == result["position"]
        ids = [x.id for x in r["c"].find()]
        assert ids == [f"w{i:06}" for i in range(len(ids))]   # a prefix of the writes, no hole
        assert r.verify().ok


def test_a_copy_goes_only_into_a_new_or_empty_store(impl, open_store, source):
    with open_store("full") as f:
        f.collection("x").put({"a": 1}, id="a")
    with pytest.raises(errors.ValidationError, match="copies only into a new or empty"):
        kuradb.copy(impl.location(source), impl.location("full"))
    with open_store("full") as f:
        assert f.position == 1           # left as it was
    with pytest.raises(errors.ValidationError, match="onto itself"):
        kuradb.copy(impl.location(source), impl.location(source))
    open_store("empty").close()          # a store with nothing in it is fine
    assert kuradb.copy(impl.location(source), impl.location("empty"))["position"] > 100


def test_the_command_line_copies(impl, open_store, source, capsys):
    with open_store(source) as s:
        want = everything(s)
    assert main(["--json", "copy", impl.location(source), impl.location("cli")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["position"] == want[0]
    with open_store("cli") as c:
        assert everything(c) == want
    assert main(["copy", impl.location(source), impl.location("cli")]) == errors.EXIT_CODES["invalid_data"]
    assert "new or empty" in capsys.readouterr().err
