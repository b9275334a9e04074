"""Secondary indexes: the planner uses them, results do not change, unique ones refuse duplicates atomically."""
from __future__ import annotations

import itertools
import os

import pytest
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kuradb import errors


def ids(records):
    return [r.id for r in records]


@pytest.fixture
def items(store):
    c = store.collection("items")
    c.put_many([(f"k{i:03}", {"owner": f"o{i % 10}", "score": i / 10, "email": f"e{i}@x", "n": {"a": i % 4}})
                for i in range(100)])
    return c


def test_create_list_drop(items, store):
    assert items.create_index("owner") == "owner"
    assert items.create_index(["owner", "-score"]) == "owner_score_desc"
    assert items.create_index("email", unique=True) == "email"
    assert items.create_index("_type", name="by-type") == "by-type"
    assert items.create_index("owner") == "owner"  # same definition: idempotent
    listed = [(i.name, i.fields, i.unique) for i in items.indexes()]
    assert listed == [("_id", ("_id",), True), ("owner", ("owner",), False),
                      ("owner_score_desc", ("owner", "-score"), False), ("email", ("email",), True),
                      ("by-type", ("_type",), False)]
    assert [c.op for c in store.changes(since=store.position - 4)] == ["create"] * 4
    items.drop_index("owner")
    assert "owner" not in [i.name for i in items.indexes()]
    assert store.changes(since=store.position - 1).__next__().op == "drop"
    with pytest.raises(errors.NotFound, match="no index 'owner'"):
        items.drop_index("owner")
    with pytest.raises(errors.AlreadyExists, match="'email' already exists"):
        items.create_index("score", name="email")


def test_indexes_survive_reopen(open_store):
    with open_store("s") as s:
        s.collection("c").create_index("x", unique=True)
    with open_store("s") as s:
        c = s.collection("c")
        c.put({"x": 1}, id="a")
        with pytest.raises(errors.DuplicateKey):
            c.put({"x": 1}, id="b")
        assert c.query().where("x", "==", 1).explain().index == "x"


@pytest.mark.parametrize("kwargs,error", [
    ({"fields": ""}, "non-empty string"), ({"fields": []}, "non-empty list"), ({"fields": ["a..b"]}, "empty part"),
    ({"fields": 5}, "index fields"), ({"fields": "a", "name": "bad name!"}, "index name 'bad name!'"),
    ({"fields": "a", "name": "_id"}, "index name"), ({"fields": "_bogus"}, "unknown envelope field"),
])
def test_bad_index_definitions(items, kwargs, error):
    with pytest.raises(errors.ValidationError, match=error):
        items.create_index(**kwargs)
    assert [i.name for i in items.indexes()] == ["_id"]


# Whether the engine itself reads through the index kuradb chose: SQLite always does (the dialect forces the
# choice, INDEXED BY: SQLite has no statistics); PostgreSQL's planner decides with its statistics, and on these
# 100 records it reads the table where every record is read anyway (a sort of them all, a filter all match).
FORCES_ITS_CHOICE = ("sqlite",)


@pytest.mark.parametrize("filter,sort,index,used_for,selective", [
    ({"owner": "o1"}, None, "owner", ("filter", "sort"), True),
    ({"owner": {"$in": ["o1", "o2"]}}, None, "owner", ("filter",), True),
    ({"owner": "o1", "score": {"$gt": 5}}, None, "owner_score_desc", ("filter",), True),
    ({"score": {"$gte": 9.5}}, None, "score", ("filter",), True),
    ({"email": {"$startswith": "e1"}}, None, "email", ("filter",), True),
    ({}, "owner", "owner", ("sort",), False),
    ({"n.a": 2}, None, "n.a", ("filter", "sort"), True),
    ({"_type": None}, None, "_type", ("filter", "sort"), False),
    ({"name": "x"}, None, "_id", ("sort",), False),
])
def test_explain_names_the_index_and_results_match_a_scan(impl, items, filter, sort, index, used_for, selective):
    expected = ids(items.find(filter, sort=sort))
    for fields in (["owner"], ["owner", "-score"], ["score"], ["email"], ["n.a"], ["_type"]):
        items.create_index(fields)
    q = items.query().where(filter) if filter else items.query()
    q = q.order_by(sort) if sort else q
    plan = q.explain()
    assert (plan.index, plan.used_for) == (index, used_for)
    assert plan.python == []
    if index != "_id" and (selective or impl.name in FORCES_ITS_CHOICE):
        assert any(f":{index}" in line for line in plan.sqlite_plan), plan.sqlite_plan   # the engine's own plan
    assert ids(q.all()) == expected
    assert index in str(plan)


def test_prefix_on_an_index_stops_at_the_prefix(store):
    c = store.collection("words")
    for w in ["a", "ab", "abz", "a\U0010ffff", "b", "ac", "", "B", "aa"]:
        c.put({"w": w}, id=f"id-{len(c)}")
    want = sorted(r.content["w"] for r in c.find({"w": {"$startswith": "a"}}))
    assert want == sorted(["a", "ab", "abz", "a\U0010ffff", "ac", "aa"])
    c.create_index("w")
    assert c.query().where("w", "startswith", "a").explain().index == "w"
    assert sorted(r.content["w"] for r in c.find({"w": {"$startswith": "a"}})) == want
    assert [r.content["w"] for r in c.find({"w": {"$startswith": "ab"}}, sort="w")] == ["ab", "abz"]
    assert [r.content["w"] for r in c.find({"w": {"$startswith": ""}}, sort="w")] == sorted(
        ["a", "ab", "abz", "a\U0010ffff", "b", "ac", "", "B", "aa"])


def test_an_index_on_a_path_holding_arrays_is_not_used_to_match_members(store):
    c = store.collection("tagged")
    c.put({"tags": "x"}, id="a")
    c.create_index("tags")
    assert c.query().where("tags", "==", "x").explain().index == "tags"
    c.put({"tags": ["x", "y"]}, id="b")   # from now on, tags may be an array
    c.put({"tags": ["z", ["x"]]}, id="c")
    plan = c.query().where("tags", "==", "x").explain()
    assert plan.index != "tags"
    assert ids(c.find({"tags": "x"})) == ["a", "b"]
    assert ids(c.find({"tags": {"$in": ["y", "q"]}})) == ["b"]
    assert ids(c.find({"tags": ["x"]})) == ["c"]
    assert ids(c.find({"tags": ["x", "y"]})) == ["b"]
    # sorting still uses the index: a sort key is the value itself, array or not
    assert c.query().order_by("tags").explain().index == "tags"
    assert ids(c.find(sort="tags")) == ["a", "b", "c"]  # arrays by canonical JSON: ["x",.. < ["z",..


def test_numeric_path_index_when_the_parent_is_an_array(store):
    c = store.collection("pos")
    c.put({"p": [5, 6]}, id="a")
    c.put({"p": {"0": 5}}, id="b")
    c.put({"p": [[5], 6]}, id="c")
    c.create_index("p.0")
    assert ids(c.find({"p.0": 5})) == ["a", "b", "c"]  # c's p.0 is [5]: membership
    assert ids(c.find({"p.0": 5}, sort="-p.0")) == ["c", "a", "b"]  # arrays sort after numbers
    assert ids(c.find({"p.0": {"$gt": 5}})) == []


# -- unique indexes ---------------------------------------------------------------------

@pytest.fixture
def users(store):
    c = store.collection("users")
    c.create_index("email", unique=True)
    c.put({"email": "ann@x"}, id="ann")
    c.put({"email": "bob@x"}, id="bob")
    return c


def _state(store, users):
    return store.position, [(r.id, r.version, r.content) for r in users.find()]


def test_unique_single_writes(store, users):
    before = _state(store, users)
    with pytest.raises(errors.DuplicateKey, match=r'email="ann@x" \(held by users/ann\)'):
        users.put({"email": "ann@x"}, id="cid")
    with pytest.raises(errors.DuplicateKey):
        users.insert({"email": "bob@x"})
    with pytest.raises(errors.DuplicateKey):
        users.update("bob", {"email": "ann@x"})
    with pytest.raises(errors.DuplicateKey):
        users.put({"email": "ann@x"}, id="bob")
    assert _state(store, users) == before
    assert "cid" not in users and users.get("bob").version == 1
    users.put({"email": "ann@x", "v": 2}, id="ann")   # the holder may rewrite its own value
    users.delete("bob")
    users.put({"email": "bob@x"}, id="bob2")           # a deleted record frees its value
    users.put({"other": 1}, id="nomail")               # missing values do not collide
    users.put({"other": 2}, id="nomail2")
    assert users.count() == 4


def test_unique_put_many_writes_nothing(store, users):
    before = _state(store, users)
    with pytest.raises(errors.DuplicateKey):
        users.put_many([("c1", {"email": "c@x"}), ("c2", {"email": "bob@x"})])
    with pytest.raises(errors.DuplicateKey, match="d@x"):
        users.put_many([("d1", {"email": "d@x"}), ("d2", {"email": "d@x"})])
    assert _state(store, users) == before


def test_unique_violation_in_a_transaction(store, users):
    before = _state(store, users)
    with pytest.raises(errors.DuplicateKey):
        with store.transaction():
            users.put({"email": "c@x"}, id="c")
            users.put({"email": "ann@x"}, id="d")
    assert _state(store, users) == before
    with store.transaction():
        users.put({"email": "e@x"}, id="e")
        with pytest.raises(errors.DuplicateKey):
            users.put({"email": "e@x"}, id="f")
        users.put({"email": "f@x"}, id="f")     # the transaction is still usable
    assert ids(users.find({"email": {"$in": ["e@x", "f@x"]}})) == ["e", "f"]


def test_unique_index_on_existing_duplicates_is_refused(store):
    c = store.collection("dups")
    c.put_many([("a", {"v": 1}), ("b", {"v": 1}), ("c", {"v": 2})])
    with pytest.raises(errors.DuplicateKey, match="v"):
        c.create_index("v", unique=True)
    assert [i.name for i in c.indexes()] == ["_id"]
    c.create_index(["v", "_id"], unique=True)
    c.put({"v": 1}, id="d")


def test_compound_unique_and_types_stay_apart(store):
    c = store.collection("pairs")
    c.create_index(["a", "b"], unique=True)
    c.put_many([("1", {"a": 1, "b": 1}), ("2", {"a": 1, "b": "1"}), ("3", {"a": 1, "b": True}),
                ("4", {"a": 1}), ("5", {"a": 1, "b": [1]})])
    with pytest.raises(errors.DuplicateKey):
        c.put({"a": 1.0, "b": 1}, id="6")  # 1.0 == 1, as everywhere in the language


def test_progress_is_reported_while_building(store):
    c = store.collection("big")
    c.put_many([(f"k{i:05}", {"v": i}) for i in range(20000)])
    seen: list[float] = []
    c.create_index("v", progress=seen.append)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_drop_collection_drops_its_indexes(store):
    c = store.collection("gone")
    c.put({"x": 1}, id="a")
    c.create_index("x", unique=True)
    c.create_text_index(["x"])
    store.drop_collection("gone")
    c = store.collection("gone")
    assert [i.name for i in c.indexes()] == ["_id"]
    c.put({"x": 1}, id="a")
    c.put({"x": 1}, id="b")


# -- an indexed scalar field: the index must give exactly the reference's answer ----------

_scalar = st.one_of(st.none(), st.booleans(), st.sampled_from([0, 1, 2, -1, 0.5, 1.0, 2**53 + 1]),
                    st.sampled_from(["", "a", "ab", "b", "1", "é", "a\U0010ffff"]),
                    st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 2), max_size=2))
_bound = st.one_of(st.sampled_from([0, 1, 2, -1, 0.5]), st.sampled_from(["", "a", "ab", "b"]), st.booleans())


@st.composite
def _condition(draw):
    kind = draw(st.sampled_from(["one", "two", "eq", "in", "prefix"]))
    if kind == "one":
        return {draw(st.sampled_from(["$gt", "$gte", "$lt", "$lte"])): draw(_bound)}
    if kind == "two":
        lower, upper = draw(st.sampled_from(["$gt", "$gte"])), draw(st.sampled_from(["$lt", "$lte"]))
        return {lower: draw(_bound), upper: draw(_bound)}
    if kind == "eq":
        return draw(_scalar)
    if kind == "in":
        return {"$in": draw(st.lists(_scalar, max_size=3))}
    return {"$startswith": draw(st.sampled_from(["", "a", "b", "é"]))}


_examples = itertools.count()


@settings(max_examples=int(os.environ.get("KURADB_QUERY_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.lists(st.one_of(_scalar, st.just(reference.MISSING)), min_size=1, max_size=12),
       conditions=st.lists(_condition(), min_size=1, max_size=6), descending=st.booleans())
def test_an_indexed_scalar_field_matches_the_reference(impl, values, conditions, descending):
    name = f"s{next(_examples)}"    # a fresh store for every example
    with impl.open(name) as s:
        c = s.collection("scalars")
        c.put_many([(f"d{i:02}", {} if v is reference.MISSING else {"v": v}) for i, v in enumerate(values)])
        c.create_index("v")
        records = c.find()
        sort = ["-v" if descending else "v"]
        for cond in conditions:
            f = {"v": cond}
            plan = c.query().where(f).order_by(sort[0]).explain()  # "v", unless the filter is constant
            assert [r.id for r in c.find(f, sort=sort)] == reference.find(records, f, sort), (f, plan.sql)
    impl.remove(name)


def test_a_unique_index_holds_no_null_and_a_refusal_leaves_the_transaction_usable(store):
    users = store.collection("users")
    users.put({"email": "a@x"}, id="ann")
    users.put({"email": None}, id="nil1")
    users.create_index("email", unique=True)
    users.put({"email": None}, id="nil2")                     # null is not a value a unique index holds
    with store.transaction():
        with pytest.raises(errors.DuplicateKey, match=r"'email'.*held by users/ann"):
            users.put({"email": "a@x"}, id="bob")
        users.put({"email": "b@x"}, id="bob")                 # the transaction goes on
    assert users.get("bob").content == {"email": "b@x"} and store.verify().ok
    users.put({"email": "dup"}, id="c1")
    users.drop_index("email")
    users.put({"email": "dup"}, id="c2")
    with pytest.raises(errors.KuraError, match="c1, c2"):
        users.create_index("email", unique=True)              # existing duplicates are named
