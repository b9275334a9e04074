"""find() equals the reference evaluator on random documents, filters, sorts and indexes."""
from __future__ import annotations

import itertools
import os

import pytest
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# A small vocabulary so that random filters hit random documents often: the same
# few values (where 1, 1.0 and true, or "1" and 1, must stay apart) at the same few paths.
KEYS = ["a", "b", "c", "0", "tags"]
PATHS = ["a", "a", "b", "b", "tags", "a.b", "a.0", "c", "a.b.c", "tags.0", "b.a", "a.0.b", "0", "c.0.0"]
SORT_PATHS = ["a", "b", "tags", "a.b", "a.0", "c", "_id", "_type", "_version"]
INDEX_PATHS = ["a", "b", "a.b", "tags", "a.0", "_type", "c"]

pool = st.sampled_from([None, True, False, 0, 1, 2, -1, 0.5, 1.0, -0.0, "", "a", "ab", "b", "B", "1", "é", "["])
wide = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
                 st.text(max_size=3))
scalars = st.one_of(pool, pool, pool, wide)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)), max_leaves=6)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=4)
operand = st.one_of(pool, pool, pool, st.lists(pool, max_size=2),
                    st.dictionaries(st.sampled_from(KEYS), pool, max_size=2))
comparable = st.one_of(st.sampled_from([0, 1, 2, -1, 0.5, 1.0]), st.sampled_from(["", "a", "ab", "b", "1"]),
                       st.booleans())
text = st.sampled_from(["", "a", "b", "ab", "é", "1"])


def _field_op(path: str) -> st.SearchStrategy[dict]:
    envelope = path in ("_id", "_type", "_version")
    if envelope:
        val = st.sampled_from(["d0", "d1", "d5", "x"]) if path == "_id" else (
            st.sampled_from([None, "x", "y"]) if path == "_type" else st.integers(0, 3))
        rng = st.sampled_from(["d1", "d3"]) if path == "_id" else (
            st.sampled_from(["x", "y"]) if path == "_type" else st.integers(0, 3))
        return st.one_of(
            val, st.fixed_dictionaries({"$ne": val}), st.fixed_dictionaries({"$in": st.lists(val, max_size=3)}),
            st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), rng),
        )
    return st.one_of(
        operand,
        st.fixed_dictionaries({"$eq": operand}), st.fixed_dictionaries({"$ne": operand}),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), comparable),
        st.builds(lambda lo, hi: {"$gt": lo, "$lte": hi}, st.integers(-3, 3), st.integers(-3, 3)),
        st.fixed_dictionaries({"$in": st.lists(operand, max_size=3)}),
        st.fixed_dictionaries({"$nin": st.lists(operand, max_size=3)}),
        st.fixed_dictionaries({"$exists": st.booleans()}),
        st.fixed_dictionaries({"$contains": text}), st.fixed_dictionaries({"$startswith": text}),
        st.fixed_dictionaries({"$regex": st.sampled_from(["^a", "b$", "A", "."]),
                               "$options": st.sampled_from(["", "i"])}),
        st.fixed_dictionaries({"$size": st.integers(0, 3)}),
        st.fixed_dictionaries({"$not": st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$lte"]),
                                                 st.integers(-3, 3))}),
    )


leaf_filters = st.sampled_from(PATHS + ["_id", "_type", "_version"]).flatmap(
    lambda p: st.builds(lambda cond: {p: cond}, _field_op(p)))
filters = st.recursive(
    st.one_of(st.just({}), leaf_filters),
    lambda inner: st.one_of(
        st.builds(lambda fs: {"$and": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda fs: {"$or": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda fs: {"$nor": fs}, st.lists(inner, min_size=1, max_size=2)),
        st.builds(lambda f: {"$not": f}, inner),
        st.builds(lambda f, g: {**f, **g}, inner, inner),
    ), max_leaves=4)
sorts = st.one_of(st.none(), st.lists(st.sampled_from(SORT_PATHS), min_size=1, max_size=2, unique=True).flatmap(
    lambda ps: st.tuples(*[st.sampled_from([p, "-" + p]) for p in ps]).map(list)))
index_sets = st.lists(st.lists(st.sampled_from(INDEX_PATHS), min_size=1, max_size=2, unique=True), max_size=3)

EXAMPLES = int(os.environ.get("KURADB_QUERY_EXAMPLES", "220"))
QUERIES_PER_EXAMPLE = 10
checked = itertools.count()
names = itertools.count()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(docs=st.lists(documents, max_size=12), types=st.lists(st.sampled_from([None, "x", "y"]), min_size=12,
                                                              max_size=12),
       history=st.lists(documents, max_size=3), deleted=st.sets(st.integers(0, 11), max_size=3),
       index_fields=index_sets, queries=st.lists(st.tuples(filters, sorts), min_size=QUERIES_PER_EXAMPLE,
                                                 max_size=QUERIES_PER_EXAMPLE))
def test_find_equals_the_reference_evaluator(store, docs, types, history, deleted, index_fields, queries):
    coll = store.collection(f"p{next(names)}")
    ids = set()
    for i, doc in enumerate(history):  # older versions: the catalog remembers their arrays
        coll.put(doc, id=f"d{i}")
        ids.add(f"d{i}")
    for i, doc in enumerate(docs):
        coll.put(doc, id=f"d{i}", type=types[i])
        ids.add(f"d{i}")
    for i in deleted:
        if f"d{i}" in ids:
            coll.delete(f"d{i}")
            ids.discard(f"d{i}")
    for fields in index_fields:
        coll.create_index(fields)
    live = [coll.get(id) for id in sorted(ids)]
    for filter, sort in queries:
        expected = reference.find(live, filter, sort)
        got = [r.id for r in coll.find(filter, sort=sort)]
        assert got == expected, (filter, sort, coll.query().where(filter).explain().sql)
        assert coll.count(filter) == len(expected)
        next(checked)


# -- focused: every operator on one field, where type separation and index keys matter ------

one_field_docs = st.lists(st.one_of(st.just({}), st.builds(lambda v: {"a": v}, st.one_of(
    pool, pool, st.lists(pool, max_size=3)))), min_size=1, max_size=10)
one_field_ops = st.one_of(
    pool.map(lambda v: {"a": v}),
    st.builds(lambda op, v: {"a": {op: v}}, st.sampled_from(["$eq", "$ne"]), pool),
    st.builds(lambda op, v: {"a": {op: v}}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), comparable),
    st.builds(lambda op, vs: {"a": {op: vs}}, st.sampled_from(["$in", "$nin"]), st.lists(pool, max_size=3)),
    st.builds(lambda op, v: {"a": {op: v}}, st.sampled_from(["$startswith", "$contains"]), text),
    st.builds(lambda v: {"a": {"$exists": v}}, st.booleans()),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(docs=one_field_docs, indexed=st.booleans(),
       queries=st.lists(st.tuples(one_field_ops, st.sampled_from([None, ["a"], ["-a"]])), min_size=5, max_size=5))
def test_one_field_operators_equal_the_reference(store, docs, indexed, queries):
    coll = store.collection(f"f{next(names)}")
    coll.put_many([(f"d{i}", d) for i, d in enumerate(docs)])
    if indexed:
        coll.create_index("a")
    live = coll.find()
    for filter, sort in queries:
        got = [r.id for r in coll.find(filter, sort=sort)]
        assert got == reference.find(live, filter, sort), (filter, sort, coll.query().where(filter).explain())


# -- focused: paths through nested arrays and objects, with numeric parts --------------------

nested = st.recursive(st.sampled_from([0, 1, "x", None]), lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["b", "0", "1"]), inner, max_size=2)),
    max_leaves=5)
nested_paths = st.sampled_from(["a", "a.0", "a.1", "a.b", "a.0.0", "a.0.b", "a.b.0", "a.b.b", "a.0.0.0", "a.1.b"])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(docs=st.lists(nested.map(lambda v: {"a": v}), min_size=1, max_size=8),
       queries=st.lists(st.tuples(nested_paths, st.one_of(
           st.sampled_from([0, 1, "x", None, [0], [], {"b": 0}]).map(lambda v: v),
           st.sampled_from([{"$exists": True}, {"$exists": False}, {"$size": 1}, {"$gt": 0}, {"$ne": 0}]))),
           min_size=5, max_size=5))
def test_nested_paths_equal_the_reference(store, docs, queries):
    coll = store.collection(f"n{next(names)}")
    coll.put_many([(f"d{i}", d) for i, d in enumerate(docs)])
    live = coll.find()
    for path, cond in queries:
        filter = {path: cond}
        got = [r.id for r in coll.find(filter, sort=[path])]
        assert got == reference.find(live, filter, [path]), (filter, coll.query().where(filter).explain().sql)


def test_the_property_test_checked_enough_cases(request):
    """The issue asks for >= 2,000 random cases per CI run (runs after the property test, in the same
    process: pytest-xdist keeps a file on one worker with --dist loadfile, as dev.py runs it)."""
    if EXAMPLES < 220:
        pytest.skip("KURADB_QUERY_EXAMPLES lowers the number of examples")
    controller = " ".join(getattr(request.config, "workerinput", {}).get("mainargv", ["loadfile"]))
    if "loadfile" not in controller and "loadscope" not in controller:
        pytest.skip("pytest-xdist spread this file's tests over workers; run with --dist loadfile to count them")
    n = next(checked)
    assert n >= 2000, f"only {n} random query cases were checked"


# -- focused: long $or/$in/$and lists, which merge into one IN (and travel as JSON past 100) ---

merge_values = st.one_of(pool, st.lists(pool, max_size=2), st.dictionaries(st.sampled_from(["a", "b"]), pool,
                                                                            max_size=1))
merge_branch = st.one_of(
    st.builds(lambda p, v: {p: v}, st.sampled_from(["a", "b", "a.0"]), merge_values),
    st.builds(lambda p, vs: {p: {"$in": vs}}, st.sampled_from(["a", "b"]), st.lists(merge_values, max_size=120)),
    st.builds(lambda v: {"_id": v}, st.sampled_from(["d0", "d1", "d3", "zz"])),
    st.builds(lambda v: {"a": {"$gt": v}}, comparable),
)
merge_negation = st.one_of(
    st.builds(lambda p, v: {p: {"$ne": v}}, st.sampled_from(["a", "b"]), merge_values),
    st.builds(lambda p, vs: {p: {"$nin": vs}}, st.sampled_from(["a", "b"]), st.lists(merge_values, max_size=120)),
    st.builds(lambda v: {"_id": {"$ne": v}}, st.sampled_from(["d0", "d2", "zz"])),
)
merge_filters = st.one_of(
    st.lists(merge_branch, min_size=1, max_size=150).map(lambda bs: {"$or": bs}),
    st.lists(merge_negation, min_size=1, max_size=150).map(lambda bs: {"$and": bs}),
    st.tuples(st.lists(merge_branch, min_size=1, max_size=30), st.lists(merge_negation, min_size=1, max_size=30))
    .map(lambda t: {"$or": t[0], "$and": t[1]}),
)


@settings(max_examples=max(EXAMPLES // 4, 20), deadline=None, suppress_health_check=list(HealthCheck))
@given(docs=st.lists(st.fixed_dictionaries({}, optional={"a": merge_values, "b": merge_values}), min_size=1,
                     max_size=10),
       indexed=st.sampled_from([[], ["a"], ["b"], ["a", "b"]]),
       queries=st.lists(merge_filters, min_size=3, max_size=3))
def test_long_lists_equal_the_reference(store, docs, indexed, queries):
    coll = store.collection(f"m{next(names)}")
    coll.put_many([(f"d{i}", d) for i, d in enumerate(docs)])
    for field in indexed:
        coll.create_index(field)
    live = coll.find()
    for filter in queries:
        got = [r.id for r in coll.find(filter)]
        assert got == reference.find(live, filter, None), (filter, coll.query().where(filter).explain().sql)
        assert coll.count(filter) == len(got)
