"""Records and collections: API.md "Records and collections"."""
from __future__ import annotations

import dataclasses
from datetime import UTC

import pytest

from kuradb import errors


def test_put_creates_version_1_with_envelope(notes):
    rec = notes.put({"title": "hi", "tags": ["a"]}, id="n1", type="note")
    assert (rec.id, rec.collection, rec.type, rec.version) == ("n1", "notes", "note", 1)
    assert rec.content == {"title": "hi", "tags": ["a"]}
    assert rec["title"] == "hi"
    assert rec.rev.startswith("1-") and len(rec.rev) == 34
    assert len(rec.checksum) == 32
    assert rec.created.tzinfo == UTC and rec.modified == rec.created
    assert rec.deleted is False
    assert notes.get("n1") == rec
    assert notes.get("n1").content == rec.content


def test_every_write_increments_version_and_keeps_created(notes):
    first = notes.put({"v": 1}, id="a")
    second = notes.put({"v": 2}, id="a")
    assert second.version == 2
    assert second.created == first.created
    assert second.modified >= first.modified
    assert notes.get("a")["v"] == 2


def test_record_is_immutable(notes):
    rec = notes.put({"v": 1}, id="a")
    with pytest.raises(AttributeError):
        rec.version = 5  # type: ignore[misc]


def test_rev_depends_on_parent_so_divergent_replicas_differ(open_store):
    with open_store("a") as a, open_store("b") as b:
        ra1 = a["c"].put({"x": 1}, id="k")
        rb1 = b["c"].put({"x": 1}, id="k")
        assert ra1.rev == rb1.rev  # same history, same content -> same rev
        ra2 = a["c"].put({"x": 2}, id="k")
        rb2 = b["c"].put({"x": 3}, id="k")
        assert ra2.version == rb2.version == 2 and ra2.rev != rb2.rev
        assert ra2.checksum != rb2.checksum


def test_checksum_covers_canonical_content_regardless_of_key_order(notes):
    a = notes.put({"a": 1, "b": 2}, id="x")
    b = notes.put({"b": 2, "a": 1}, id="y")
    assert a.checksum == b.checksum


def test_generated_ids_are_unique_and_time_ordered(notes):
    recs = [notes.put({"i": i}) for i in range(200)]
    ids = [r.id for r in recs]
    assert len(set(ids)) == 200
    assert ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)


def test_insert_refuses_existing_but_revives_deleted(notes):
    notes.insert({"v": 1}, id="a")
    with pytest.raises(errors.AlreadyExists, match="notes/a"):
        notes.insert({"v": 2}, id="a")
    assert notes.get("a")["v"] == 1
    notes.delete("a")
    rec = notes.insert({"v": 3}, id="a")
    assert rec.version == 3 and rec["v"] == 3


def test_if_version_conflict_writes_nothing_and_reports_current(notes):
    notes.put({"v": 1}, id="a")
    notes.put({"v": 2}, id="a", if_version=1)
    with pytest.raises(errors.ConflictError) as info:
        notes.put({"v": 3}, id="a", if_version=1)
    assert info.value.current.version == 2
    assert info.value.code == "conflict_detected"
    assert "version 2" in str(info.value)
    assert notes.get("a")["v"] == 2
    with pytest.raises(errors.ConflictError) as info:
        notes.put({"v": 1}, id="new", if_version=3)
    assert info.value.current is None
    assert notes.put({"v": 1}, id="new", if_version=0).version == 1


def test_update_applies_merge_patch(notes):
    notes.put({"title": "t", "meta": {"a": 1, "b": 2}, "gone": True}, id="a")
    rec = notes.update("a", {"meta": {"b": None, "c": 3}, "gone": None, "new": [1]})
    assert rec.content == {"title": "t", "meta": {"a": 1, "c": 3}, "new": [1]}
    assert rec.version == 2
    with pytest.raises(errors.NotFound):
        notes.update("missing", {"x": 1})
    with pytest.raises(errors.ConflictError):
        notes.update("a", {"x": 1}, if_version=1)
    with pytest.raises(errors.ValidationError, match="merge patch"):
        notes.update("a", ["not", "a", "dict"])  # type: ignore[arg-type]


def test_update_keeps_type(notes):
    notes.put({"a": 1}, id="a", type="note")
    assert notes.update("a", {"b": 2}).type == "note"


def test_get_missing_raises_or_returns_default(notes):
    with pytest.raises(errors.NotFound, match="notes/nope"):
        notes.get("nope")
    assert notes.get("nope", None) is None
    assert notes.get("nope", default="d") == "d"


def test_delete_writes_tombstone_visible_in_history(notes):
    notes.put({"v": 1}, id="a")
    tomb = notes.delete("a")
    assert tomb.deleted and tomb.version == 2 and tomb.content is None
    with pytest.raises(errors.NotFound, match="deleted"):
        notes.get("a")
    assert "a" not in notes and len(notes) == 0
    hist = notes.history("a")
    assert [(r.version, r.deleted) for r in hist] == [(1, False), (2, True)]
    with pytest.raises(errors.NotFound):
        notes.delete("a")
    with pytest.raises(errors.NotFound):
        notes.delete("never")


def test_get_old_version_and_history_oldest_first(notes):
    for i in range(4):
        notes.put({"v": i}, id="a")
    assert [r["v"] for r in notes.history("a")] == [0, 1, 2, 3]
    assert notes.get("a", version=2)["v"] == 1
    with pytest.raises(errors.NotFound):
        notes.get("a", version=9)
    with pytest.raises(errors.NotFound):
        notes.history("nope")


def test_revert_writes_new_version_with_old_content(notes):
    notes.put({"v": "first"}, id="a", type="t")
    notes.put({"v": "second"}, id="a", type="t")
    rec = notes.revert("a", 1)
    assert rec.version == 3 and rec["v"] == "first" and rec.type == "t"
    assert [r["v"] for r in notes.history("a")] == ["first", "second", "first"]


def test_revert_brings_back_a_deleted_record(notes):
    notes.put({"v": 1}, id="a")
    notes.delete("a")
    assert notes.revert("a", 1)["v"] == 1
    assert "a" in notes


def test_purge_erases_every_version_and_content(store, notes):
    notes.put({"secret": "s1"}, id="a", author="alice")
    notes.put({"secret": "s2"}, id="a")
    notes.put({"keep": 1}, id="b")
    notes.purge("a")
    assert notes.get("a", None) is None
    with pytest.raises(errors.NotFound):
        notes.history("a")
    # nothing of a's versions is left but their positions (the rows themselves: tests/sqlite/test_rows.py)
    assert store.stats()["versions"] == 1
    assert [c.op for c in store.changes()][-1] == "purge"
    assert notes.put({"new": 1}, id="a").version == 1
    with pytest.raises(errors.NotFound):
        notes.purge("nope")


def test_put_many_is_one_transaction_and_validates_all_first(store, notes):
    recs = notes.put_many([{"a": 1}, ("x", {"b": 2}), ("x", {"b": 3})])
    assert [r.version for r in recs] == [1, 1, 2]
    assert notes.get("x")["b"] == 3
    assert [r["b"] for r in notes.history("x")] == [2, 3]
    before = store.position
    with pytest.raises(errors.ValidationError, match=r"items\[1\]"):
        notes.put_many([("ok", {"a": 1}), ("bad", {"a": float("nan")})])
    assert store.position == before and "ok" not in notes


def test_put_many_positions_follow_the_log(store, notes):
    notes.put({"a": 1}, id="first")
    notes.put_many([(f"k{i}", {"i": i}) for i in range(5)])
    notes.put({"a": 2}, id="last")
    assert [c.position for c in store.changes()] == list(range(1, 8))


def test_get_many_in_order_with_none_for_missing(notes):
    notes.put({"v": 1}, id="a")
    notes.put({"v": 2}, id="b")
    notes.put({"v": 3}, id="c")
    notes.delete("c")
    got = notes.get_many(["b", "missing", "a", "c"])
    assert [r and r["v"] for r in got] == [2, None, 1, None]


def test_len_contains_iter_cover_live_records(notes):
    for i in range(1500):  # more than one page of iteration
        notes.put({"i": i}, id=f"id{i:05d}")
    notes.delete("id00003")
    assert len(notes) == 1499
    assert "id00004" in notes and "id00003" not in notes and 42 not in notes
    ids = list(notes)
    assert len(ids) == 1499 and ids == sorted(ids) and "id00003" not in ids


def test_collections_listed_and_dropped(store):
    store.collection("a").put({"x": 1}, id="1")
    store["b"].put({"x": 1}, id="1")
    assert store.collections() == ["a", "b"]
    store.drop_collection("a")
    assert store.collections() == ["b"]
    assert store["a"].get("1", None) is None
    with pytest.raises(errors.NotFound):
        store["a"].history("1")
    with pytest.raises(errors.NotFound):
        store.drop_collection("a")


def test_keep_history_keeps_last_n_versions(store):
    c = store.collection("c", keep_history=3)
    for i in range(10):
        c.put({"v": i}, id="a")
    assert [r["v"] for r in c.history("a")] == [7, 8, 9]
    assert c.get("a", version=8)["v"] == 7
    with pytest.raises(errors.NotFound):
        c.get("a", version=7)
    assert store.stats()["versions"] <= 3 + max(1, 3 // 4)   # erased in steps of keep/4


def test_keep_history_survives_reopen(open_store):
    with open_store("s") as s:
        s.collection("c", keep_history=2)
    with open_store("s") as s:
        c = s.collection("c")
        assert c.keep_history == 2
        for i in range(5):
            c.put({"v": i}, id="a")
        assert [r["v"] for r in c.history("a")] == [3, 4]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3"])
def test_keep_history_must_be_positive_int(store, bad):
    with pytest.raises(errors.ValidationError, match="keep_history"):
        store.collection("c", keep_history=bad)


def test_json_schema_validates_writes(open_store):
    schema = {"type": "object", "required": ["title"],
              "properties": {"title": {"type": "string"}, "n": {"type": "integer"}}}
    with open_store("s") as s:
        c = s.collection("docs", schema=schema)
        c.put({"title": "ok", "n": 1}, id="a")
        with pytest.raises(errors.ValidationError, match="schema violation at n") as info:
            c.put({"title": "ok", "n": "one"}, id="b")
        assert info.value.path == "n"
        with pytest.raises(errors.ValidationError, match="title"):
            c.update("a", {"title": None})
        assert c.get("a")["title"] == "ok" and "b" not in c
    with open_store("s") as s:  # the schema was saved with the collection
        with pytest.raises(errors.ValidationError):
            s.collection("docs").put({"n": 1})


def test_invalid_json_schema_is_rejected(store):
    with pytest.raises(errors.ValidationError, match="not valid JSON Schema"):
        store.collection("c", schema={"type": "nonsense-type"})
    with pytest.raises(errors.ValidationError, match="JSON Schema dict or a pydantic"):
        store.collection("c", schema=42)


def test_pydantic_schema_validates_writes(store):
    pydantic = pytest.importorskip("pydantic")

    class Note(pydantic.BaseModel):
        title: str
        score: int = 0

    c = store.collection("notes", schema=Note)
    c.put({"title": "x", "score": 3}, id="a")
    with pytest.raises(errors.ValidationError, match="score") as info:
        c.put({"title": "x", "score": "many"}, id="b")
    assert info.value.path == "score"


def test_repository_with_pydantic(store):
    pydantic = pytest.importorskip("pydantic")

    class Canvas(pydantic.BaseModel):
        id: str
        name: str
        width: int

    repo = store.repository(Canvas, collection="canvases")
    repo.save(Canvas(id="c1", name="one", width=10))
    repo.save(Canvas(id="c2", name="two", width=20))
    assert repo.get("c1") == Canvas(id="c1", name="one", width=10)
    assert [c.id for c in repo.find({"width": 20})] == ["c2"]
    repo.delete("c1")
    with pytest.raises(errors.NotFound):
        repo.get("c1")
    assert store["canvases"].get("c2").type == "Canvas"


def test_repository_with_dataclass(store):
    @dataclasses.dataclass
    class Session:
        id: str
        user: str
        turns: list

    repo = store.repository(Session)
    repo.save(Session("s1", "ann", ["hi"]))
    assert repo.get("s1") == Session("s1", "ann", ["hi"])
    assert repo.collection.name == "session"
    assert repo.find({"user": "ann"}) == [Session("s1", "ann", ["hi"])]
    assert repo.find({"turns": "hi"}) == [Session("s1", "ann", ["hi"])]
    assert repo.find({"user": "bob"}) == []


def test_repository_model_needs_an_id(store):
    @dataclasses.dataclass
    class NoId:
        name: str

    with pytest.raises(errors.ValidationError, match="no 'id' field"):
        store.repository(NoId)
    with pytest.raises(errors.ValidationError, match="pydantic model or a dataclass"):
        store.repository(dict)


def test_find_equality_is_type_strict(notes):
    notes.put({"v": 1}, id="int")
    notes.put({"v": True}, id="bool")
    notes.put({"v": "1"}, id="str")
    notes.put({"v": None}, id="null")
    notes.put({"v": [1, 2]}, id="arr")
    notes.put({"w": {"v": 1}}, id="nested")
    assert sorted(r.id for r in notes.find({"v": 1})) == ["arr", "int"]
    assert [r.id for r in notes.find({"v": True})] == ["bool"]
    assert [r.id for r in notes.find({"v": "1"})] == ["str"]
    assert [r.id for r in notes.find({"v": None})] == ["null"]
    assert [r.id for r in notes.find({"w.v": 1})] == ["nested"]
    with pytest.raises(errors.QueryError, match=r"\$gt"):
        notes.find({"$gt": 1})


# -- collection options: one source of truth, the database (issue #13 item 1) --------------------


def _versions(store, coll, id):
    """Versions whose content is kept (the store holds only this record)."""
    assert store[coll].count() == 1 and store.collections() == [coll]
    return store.stats()["versions"]


def test_keep_history_raised_by_another_handle_holds_for_every_handle(open_store):
    with open_store("s") as a, open_store("s") as b:
        drafts = a.collection("drafts", keep_history=3)
        b.collection("drafts", keep_history=50)            # another process raises the limit
        for i in range(10):
            drafts.put({"v": i}, id="d")                    # through the handle that said 3
        assert drafts.keep_history == 50
        assert [r["v"] for r in drafts.history("d")] == list(range(10))
        assert _versions(a, "drafts", "d") == 10            # nothing was erased


def test_keep_history_is_honoured_through_put_many_and_in_reads(open_store):
    with open_store("s") as a, open_store("s") as b:
        old = a.collection("c")                             # made before any limit existed
        old.put({"v": 0}, id="x")
        b.collection("c").configure(keep_history=2)
        old.put_many([("x", {"v": i}) for i in range(1, 6)])
        assert [r["v"] for r in old.history("x")] == [4, 5]
        with pytest.raises(errors.NotFound):
            old.get("x", version=3)


def test_lowering_keep_history_is_an_explicit_act(store):
    c = store.collection("c", keep_history=10)
    for i in range(6):
        c.put({"v": i}, id="x")
    with pytest.raises(errors.ValidationError, match="would erase history") as e:
        store.collection("c", keep_history=3)
    assert "configure(keep_history=3)" in (e.value.hint or "")
    assert c.keep_history == 10 and len(c.history("x")) == 6
    c.configure(keep_history=3)
    assert c.keep_history == 3 and [r["v"] for r in c.history("x")] == [3, 4, 5]
    c.configure(keep_history=None)                          # keep everything from now on
    assert store.collection("c").keep_history is None


def test_a_first_limit_on_a_collection_that_keeps_everything_is_lowering(store):
    store["c"].put({"v": 1}, id="x")
    with pytest.raises(errors.ValidationError, match="keeps every version"):
        store.collection("c", keep_history=5)
    store.collection("new", keep_history=5)                 # a new collection: its first setting
    assert store["new"].keep_history == 5


def test_a_saved_schema_set_by_another_handle_is_checked_by_every_handle(open_store):
    schema = {"type": "object", "required": ["title"]}
    with open_store("s") as a, open_store("s") as b:
        old = a.collection("docs")
        old.put({"title": "ok"}, id="1")
        b.collection("docs", schema=schema)
        with pytest.raises(errors.ValidationError, match="schema violation"):
            old.put({"no": "title"}, id="2")
        with pytest.raises(errors.ValidationError, match=r"items\[1\]: .*schema violation"):
            old.put_many([("3", {"title": "x"}), ("4", {"nope": 1})])
        assert "2" not in old and "3" not in old
        old.configure(schema=None)
        old.put({"no": "title"}, id="2")


# -- Record is a read-only Mapping over its content (issue #13 item 12) ---------------------------


def test_a_record_is_a_read_only_mapping_of_its_content(notes):
    rec = notes.put({"title": "hi", "n": 1}, id="a")
    assert "title" in rec and "nope" not in rec and 0 not in rec
    assert dict(rec) == {"title": "hi", "n": 1} == rec.content
    assert sorted(rec) == ["n", "title"] and len(rec) == 2
    assert sorted(rec.keys()) == ["n", "title"] and sorted(rec.items()) == [("n", 1), ("title", "hi")]
    with pytest.raises(TypeError):
        rec["title"] = "x"  # type: ignore[index]


def test_a_tombstone_is_an_empty_mapping_and_every_record_is_true(notes):
    notes.put({}, id="empty")
    assert notes.get("empty") and len(notes.get("empty")) == 0
    dead = notes.delete("empty")
    assert dead and dict(dead) == {} and "x" not in dead


def test_records_compare_by_version_not_by_content(notes):
    a = notes.put({"v": 1}, id="a")
    b = notes.put({"v": 1}, id="b")
    assert a != b and a == notes.get("a") and {a, notes.get("a")} == {a}


# -- arguments of the record API are checked, typed (issue #13 items 7 and 10) ---------------------


@pytest.mark.parametrize("call, path", [
    (lambda c: c.put({}, type=5), "type"),
    (lambda c: c.put({}, type=""), "type"),
    (lambda c: c.put({}, author=5), "author"),
    (lambda c: c.insert({}, author=["x"]), "author"),
    (lambda c: c.put({}, id="a", if_version="1"), "if_version"),
    (lambda c: c.put({}, id="a", if_version=-1), "if_version"),
    (lambda c: c.update("a", {}, if_version=1.0), "if_version"),
    (lambda c: c.delete("a", if_version=True), "if_version"),
    (lambda c: c.get("a", version="1"), "version"),
    (lambda c: c.get("a", version=0), "version"),
    (lambda c: c.revert("a", "1"), "version"),
    (lambda c: c.put_many(5), "items"),
    (lambda c: c.put_many("abc"), "items"),
    (lambda c: c.put_many([{"a": 1}], type=5), "type"),
    (lambda c: c.get_many("abc"), "ids"),
    (lambda c: c.get_many([1, 2]), "ids[0]"),
    (lambda c: c.put({}, id="\ud800"), "id"),
    (lambda c: c.update("a", {"x": {1, 2}}), "x"),
])
def test_bad_arguments_raise_validation_error_and_write_nothing(store, call, path):
    c = store.collection("c")
    c.put({"v": 1}, id="a")
    before = store.position
    with pytest.raises(errors.ValidationError) as e:
        call(c)
    assert e.value.path == path
    assert store.position == before and c.get("a")["v"] == 1


def test_a_record_type_is_a_string_and_queries_find_it(notes):
    notes.put({}, id="a", type="note")
    assert [r.id for r in notes.find({"_type": "note"})] == ["a"]


@pytest.mark.parametrize("kwargs, path", [({"since": "0"}, "since"), ({"since": -1}, "since"),
                                          ({"limit": -1}, "limit"), ({"limit": "1"}, "limit")])
def test_bad_changes_arguments_raise_validation_error_at_the_call(store, kwargs, path):
    with pytest.raises(errors.ValidationError) as e:
        store.changes(**kwargs)                 # raised by the call, not by the first next()
    assert e.value.path == path


@pytest.mark.parametrize("kwargs, path", [({"since": "0"}, "since"), ({"timeout": "1"}, "timeout"),
                                          ({"timeout": -1}, "timeout"), ({"poll": 0}, "poll")])
def test_bad_watch_arguments_raise_validation_error_at_the_call(store, kwargs, path):
    with pytest.raises(errors.ValidationError) as e:
        store.watch(**kwargs)
    assert e.value.path == path
