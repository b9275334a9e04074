"""The query API: find/scan/count, the builder, projection, envelope fields, and every bad input."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kuradb import errors


@pytest.fixture
def people(store):
    c = store.collection("people")
    c.put_many([
        ("p1", {"name": "ann", "age": 31, "tags": ["a", "b"], "addr": {"city": "Oslo"}}),
        ("p2", {"name": "bob", "age": 25, "tags": ["b"], "addr": {"city": "Rome"}}),
        ("p3", {"name": "cid", "age": None, "tags": [], "addr": {"city": "Oslo"}}),
        ("p4", {"name": "dee", "tags": ["c"]}),
        ("p5", {"name": "eve", "age": "old", "addr": {"city": "Lima"}}),
    ])
    return c


def ids(records):
    return [r.id for r in records]


# -- find, sort, skip, limit, projection ---------------------------------------------------

def test_find_filters_sorts_and_pages(people):
    assert ids(people.find({"addr.city": "Oslo"})) == ["p1", "p3"]
    assert ids(people.find({"tags": "b"})) == ["p1", "p2"]  # membership
    assert ids(people.find({"age": {"$gte": 25}}, sort="-age")) == ["p1", "p2"]  # numbers only
    # Documented order: missing = null < numbers < strings; ties by id.
    assert ids(people.find(sort="age")) == ["p3", "p4", "p2", "p1", "p5"]
    assert ids(people.find(sort=["-age"], skip=1, limit=2)) == ["p1", "p2"]
    assert people.find_one({"name": {"$startswith": "d"}}).id == "p4"
    assert people.find_one({"name": "zed"}) is None
    assert people.count() == 5 and people.count({"age": {"$exists": False}}) == 1
    assert people.exists({"name": "eve"}) and not people.exists({"name": "zed"})


def test_ne_and_nin_match_missing_fields(people):
    assert ids(people.find({"age": {"$ne": 31}})) == ["p2", "p3", "p4", "p5"]
    assert ids(people.find({"addr.city": {"$nin": ["Oslo", "Rome"]}})) == ["p4", "p5"]


def test_logical_operators(people):
    assert ids(people.find({"$or": [{"name": "ann"}, {"age": {"$lt": 30}}]})) == ["p1", "p2"]
    assert ids(people.find({"$nor": [{"name": "ann"}, {"tags": "c"}]})) == ["p2", "p3", "p5"]
    assert ids(people.find({"age": {"$not": {"$gt": 30}}})) == ["p2", "p3", "p4", "p5"]
    assert ids(people.find({"$and": [{"tags": {"$size": 1}}, {"tags": {"$in": ["b", "c"]}}]})) == ["p2", "p4"]
    assert ids(people.find({"name": {"$regex": "^[AB]", "$options": "i"}})) == ["p1", "p2"]
    assert ids(people.find({"name": {"$contains": "e"}})) == ["p4", "p5"]


def test_deleted_records_are_not_found(people):
    people.delete("p1")
    assert "p1" not in ids(people.find())
    assert people.count({"name": "ann"}) == 0


def test_projection_keeps_selected_paths_and_the_envelope(people):
    (r,) = people.find({"name": "ann"}, fields=["name", "addr.city"])
    assert r.content == {"name": "ann", "addr": {"city": "Oslo"}}
    assert r.id == "p1" and r.version == 1
    (r,) = people.find({"name": "dee"}, fields=["addr.city"])
    assert r.content == {}


def test_scan_streams_every_match_in_order(store):
    c = store.collection("many")
    c.put_many([(f"k{i:04}", {"n": i, "even": i % 2 == 0}) for i in range(2500)])
    got = list(c.scan({"even": True}, sort="-n", batch_size=100))
    assert [r.content["n"] for r in got] == list(range(2498, -1, -2))
    with pytest.raises(errors.QueryError, match="batch_size"):
        c.scan(batch_size=0)


def test_scan_reads_one_snapshot(store):
    c = store.collection("snap")
    c.put_many([(f"k{i:03}", {"n": i}) for i in range(300)])
    it = c.scan(batch_size=50)
    first = next(it)
    c.put({"n": -1}, id="k000a")   # sorts inside what is still to come
    c.delete("k299")
    rest = list(it)
    assert [first.id, *ids(rest)] == [f"k{i:03}" for i in range(300)]


def test_envelope_fields(store):
    c = store.collection("env")
    c.put({"x": 1}, id="a", type="note", author="ann")
    c.put({"x": 2}, id="b", type="task", author="bob")
    c.update("a", {"x": 3})  # the current version's author is the one _author matches
    assert ids(c.find({"_type": "note"})) == ["a"]
    assert ids(c.find({"_version": {"$gte": 2}})) == ["a"]
    assert ids(c.find({"_author": "bob"})) == ["b"]
    assert ids(c.find({"_author": None})) == ["a"] and c.get("a").author is None
    assert ids(c.find({"_id": {"$in": ["b", "zz"]}})) == ["b"]
    assert ids(c.find(sort="-_modified")) == ["a", "b"]
    created_b = c.get("b").created
    assert ids(c.find({"_created": {"$gte": created_b}})) == ["b"]
    assert ids(c.find({"_created": {"$lt": created_b.isoformat()}})) == ["a"]
    future = datetime.now(UTC) + timedelta(days=1)
    assert c.count({"_modified": {"$gt": future}}) == 0


def test_large_integers_and_floats_compare_exactly(store):
    c = store.collection("nums")
    c.put_many([("a", {"v": 2**53}), ("b", {"v": 2**53 + 1}), ("c", {"v": 1.5}), ("d", {"v": -(2**63)})])
    assert ids(c.find({"v": 2**53 + 1})) == ["b"]
    assert ids(c.find(sort="v")) == ["d", "c", "a", "b"]
    assert ids(c.find({"v": {"$gt": 1}, "$nor": [{"v": 2**53}]})) == ["b", "c"]


# -- the builder -----------------------------------------------------------------------

def test_builder(people):
    q = people.query().where("age", ">=", 25).where({"tags": "b"}).order_by("-age")
    assert ids(q.all()) == ["p1", "p2"]
    assert q.count() == 2 and q.exists()
    assert q.first().id == "p1"
    assert ids(q.skip(1).limit(5).all()) == ["p2"]
    assert q.select("name").first().content == {"name": "ann"}
    assert ids(people.query().where("name", "in", ["bob", "eve"]).all()) == ["p2", "p5"]
    assert ids(people.query().where("name", "$ne", "ann").order_by("name").limit(1).all()) == ["p2"]
    assert q.filter == {"$and": [{"age": {"$gte": 25}}, {"tags": "b"}]}
    assert ids(list(q)) == ["p1", "p2"]
    assert "age" in repr(q)
    with pytest.raises(errors.QueryError, match="unknown operator '~'"):
        people.query().where("age", "~", 3)
    with pytest.raises(errors.QueryError, match="where"):
        people.query().where("age", ">")


def test_builder_is_immutable(people):
    base = people.query().where("age", ">", 20)
    base.limit(1)
    base.where("name", "==", "bob")
    assert base.count() == 2


# -- bad input: QueryError naming the part -------------------------------------------------

BAD_FILTERS = [
    ({"a": {"$bogus": 1}}, r"a\.\$bogus: unknown operator"),
    ({"a": {"$in": 5}}, r"a\.\$in needs a list"),
    ({"a": {"$nin": "ab"}}, r"a\.\$nin needs a list"),
    ({"a": {"$regex": "("}}, r"a\.\$regex: '\(' is not a valid regular expression"),
    ({"a": {"$regex": "x", "$options": "q"}}, r"\$options"),
    ({"a": {"$size": "2"}}, r"a\.\$size needs a non-negative integer"),
    ({"a": {"$size": 1.5}}, r"a\.\$size"),
    ({"a": {"$size": True}}, r"a\.\$size"),
    ({"a": {"$exists": "yes"}}, r"a\.\$exists needs true or false"),
    ({"a": {"$startswith": 3}}, r"a\.\$startswith needs a string"),
    ({"a": {"$contains": None}}, r"a\.\$contains needs a string"),
    ({"a": {"$not": 3}}, r"a\.\$not needs an operator object"),
    ({"a..b": 1}, r"a\.\.b: path 'a\.\.b' has an empty part"),
    ({"": 1}, r"path must be a non-empty string"),
    ({"$foo": []}, r"\$foo: unknown operator"),
    ({"$and": {}}, r"\$and needs a non-empty list"),
    ({"$or": []}, r"\$or needs a non-empty list"),
    ({"$or": [{"a": {"$in": 1}}]}, r"\$or\[0\]\.a\.\$in"),
    ({"_version": {"$gt": "x"}}, r"_version\.\$gt"),
    ({"_created": {"$gt": "notadate"}}, r"_created\.\$gt: 'notadate' is not an ISO 8601"),
    ({"_created": {"$gt": datetime(2020, 1, 1)}}, r"has no timezone"),
    ({"_bogus": 1}, r"_bogus: unknown envelope field"),
    ({"when": datetime.now(UTC)}, r"when: datetimes compare only with _created"),
    ([1], r"a filter must be a dict|where\(\) takes a filter dict"),
]


@pytest.mark.parametrize("bad,message", BAD_FILTERS)
def test_bad_filters_raise_query_error_naming_the_part(people, bad, message):
    for run in (people.find, people.count, people.exists, people.find_one,
                lambda f: people.aggregate([{"$match": f}]), lambda f: people.query().where(f).all()):
        with pytest.raises(errors.QueryError, match=message):
            run(bad)


@pytest.mark.parametrize("kwargs,message", [
    ({"sort": "a..b"}, r"sort\[0\]: path 'a\.\.b' has an empty part"),
    ({"sort": 5}, r"sort must be a field"),
    ({"sort": {"a": 2}}, r"sort\[0\]: direction must be"),
    ({"sort": ["a", 3]}, r"sort\[1\]"),
    ({"limit": -1}, r"limit must be a non-negative integer"),
    ({"limit": "3"}, r"limit"),
    ({"skip": -1}, r"skip must be"),
    ({"fields": ["a..b"]}, r"fields\[0\]"),
    ({"fields": 5}, r"fields"),
])
def test_bad_sort_limit_fields(people, kwargs, message):
    with pytest.raises(errors.QueryError, match=message):
        people.find(**kwargs)


@pytest.mark.parametrize("pipeline,message", [
    ([{"$bogus": 1}], r"pipeline\[0\]: unknown stage '\$bogus'"),
    ([{"$match": {}}, {"$group": {"x": 1}}], r"pipeline\[1\]\.\$group needs an object with an _id"),
    ([{"$group": {"_id": "$a", "t": {"$median": "$a"}}}], r"pipeline\[0\]\.\$group\.t needs one accumulator"),
    ([{"$group": {"_id": None, "t": {"$sum": "a"}}}], r"pipeline\[0\]\.\$group\.t\.\$sum needs a field path"),
    ([{"$sort": 5}], r"pipeline\[0\]\.\$sort"),
    ([{"$limit": -1}], r"pipeline\[0\]\.\$limit"),
    ([{"$skip": "x"}], r"pipeline\[0\]\.\$skip"),
    ([{"$unwind": "a"}], r"pipeline\[0\]\.\$unwind needs a field path"),
    ([{"$project": 5}], r"pipeline\[0\]\.\$project"),
    ({"$match": {}}, r"a pipeline must be a list"),
    ([{"$match": {"a": {"$in": 1}}}], r"pipeline\[0\]\.\$match\.a\.\$in"),
    ([{"$count": ""}], r"pipeline\[0\]\.\$count"),
    ([{"$match": {}, "$limit": 1}], r"pipeline\[0\] must be an object with one stage"),
])
def test_bad_pipelines(people, pipeline, message):
    with pytest.raises(errors.QueryError, match=message):
        people.aggregate(pipeline)


def test_query_errors_leave_data_alone(people):
    before = [(r.id, r.version) for r in people.find()]
    with pytest.raises(errors.QueryError):
        people.find({"a": {"$in": 5}})
    with pytest.raises(errors.QueryError):
        people.query().where("x", "??", 1)
    assert [(r.id, r.version) for r in people.find()] == before


# -- random junk: a QueryError or an answer, never anything else ----------------------------

_junk_keys = st.sampled_from(["a", "a.b", "_id", "_created", "_x", "", ".", "$and", "$or", "$nor", "$not", "$eq",
                              "$in", "$gt", "$size", "$regex", "$options", "$exists", "$startswith", "$bogus"])
_junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4),
              st.sampled_from(["(", "[a-", "*", "2020-01-01T00:00:00+00:00"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_junk_keys, inner, max_size=3)),
    max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filter=_junk, sort=st.one_of(st.none(), _junk), pipeline=st.lists(st.dictionaries(
    st.sampled_from(["$match", "$group", "$sort", "$limit", "$project", "$unwind", "$count", "$x"]), _junk,
    max_size=1), max_size=3))
def test_random_input_gives_query_error_or_an_answer(people, filter, sort, pipeline):
    before = people.count()
    for run in (lambda: people.find(filter, sort=sort), lambda: people.count(filter),
                lambda: people.aggregate(pipeline)):
        try:
            run()
        except errors.QueryError as e:
            assert str(e)
    assert people.count() == before


def test_scan_memory_stays_bounded(store):
    import tracemalloc

    c = store.collection("big")
    pad = "x" * 400
    for start in range(0, 30_000, 5_000):
        c.put_many([(f"k{i:06}", {"i": i, "pad": pad}) for i in range(start, start + 5_000)])

    def peak(run):
        tracemalloc.start()
        try:
            run()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def stream():
        n = 0
        for rec in c.scan(sort="-i", batch_size=200):
            n += rec["i"] >= 0
        assert n == 30_000

    streamed = peak(stream)
    everything = peak(lambda: [r.content for r in c.find(sort="-i")])
    assert streamed < 4 << 20, streamed           # a few batches, whatever the collection's size
    assert everything > 5 * streamed, (everything, streamed)


def test_the_documented_order_of_missing_null_and_mixed_types(store):
    """missing = null < numbers < strings < objects < arrays < false < true, ties by id, on every backend."""
    n = store.collection("notes")
    n.put_many([("a", {"x": 1, "t": ["r", "g"]}), ("b", {"x": "1"}), ("c", {"x": 2.5, "o": {"k": [{"z": 3}]}}),
                ("d", {"x": None}), ("e", {}), ("f", {"x": True}), ("g", {"x": [0]}), ("h", {"x": {"k": 1}})])
    assert [r.id for r in n.find(sort="x")] == ["d", "e", "a", "c", "b", "h", "g", "f"]
    assert [r.id for r in n.find(sort="-x", limit=3, skip=1)] == ["g", "h", "b"]
    assert [r.id for r in n.find({"x": 1})] == ["a"] and [r.id for r in n.find({"o.k.z": 3})] == ["c"]
    assert [r.content for r in n.find({"x": 1}, fields=["t"])] == [{"t": ["r", "g"]}]
    assert n.count({"x": {"$exists": True}}) == 7 and n.count() == 8   # null exists
