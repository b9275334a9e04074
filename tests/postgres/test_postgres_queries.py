"""find() and count() on PostgreSQL equal the reference evaluator (the contract's property test, run here by
default while the PostgreSQL backend is being completed, issue #15), $regex and U+0000 in content included.
Secondary indexes are made as in the contract test, so the queries use unique and plain index objects."""
from __future__ import annotations

import itertools

import reference
import test_query_property as tq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

names = itertools.count()
filters = tq.filters
documents = tq.documents


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(docs=st.lists(documents, max_size=12), types=st.lists(st.sampled_from([None, "x", "y"]), min_size=12,
                                                              max_size=12),
       history=st.lists(documents, max_size=3), deleted=st.sets(st.integers(0, 11), max_size=3),
       index_fields=tq.index_sets, queries=st.lists(st.tuples(filters, tq.sorts), min_size=10, max_size=10))
def test_find_on_postgres_equals_the_reference_evaluator(pg, docs, types, history, deleted, index_fields, queries):
    store = pg.open("s")
    coll = store.collection(f"p{next(names)}")
    ids = set()
    for i, doc in enumerate(history):     # older versions: the catalog remembers their arrays
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
        assert [r.id for r in coll.find(filter, sort=sort)] == expected, (filter, sort)
        assert coll.count(filter) == len(expected)
    store.close()


def test_projections_limits_and_the_type_order_on_postgres(pg):
    with pg.open("s") as s:
        n = s.collection("notes")
        n.put_many([("a", {"x": 1, "t": ["r", "g"]}), ("b", {"x": "1"}), ("c", {"x": 2.5, "o": {"k": [{"z": 3}]}}),
                    ("d", {"x": None}), ("e", {}), ("f", {"x": True}), ("g", {"x": [0]}), ("h", {"x": {"k": 1}})])
        assert [r.id for r in n.find(sort="x")] == ["d", "e", "a", "c", "b", "h", "g", "f"]
        assert [r.id for r in n.find(sort="-x", limit=3, skip=1)] == ["g", "h", "b"]
        assert [r.id for r in n.find({"x": 1})] == ["a"] and [r.id for r in n.find({"o.k.z": 3})] == ["c"]
        assert [r.content for r in n.find({"x": 1}, fields=["t"])] == [{"t": ["r", "g"]}]
        assert n.count({"x": {"$exists": True}}) == 7 and n.count() == 8   # null exists


def test_a_unique_index_refuses_a_duplicate_naming_it_and_the_holder(pg):
    import pytest

    from kuradb import errors

    with pg.open("s") as s:
        n = s.collection("users")
        n.put({"email": "a@x"}, id="ann")
        n.put({"email": None}, id="nil1")
        n.create_index("email", unique=True)
        n.put({"email": None}, id="nil2")                     # null is not a value a unique index holds
        with s.transaction():
            with pytest.raises(errors.DuplicateKey, match=r"'email'.*held by users/ann"):
                n.put({"email": "a@x"}, id="bob")
            n.put({"email": "b@x"}, id="bob")                 # the transaction goes on
        assert n.get("bob").content == {"email": "b@x"} and s.verify().ok
        n.put({"email": "dup"}, id="c1")
        n.drop_index("email")
        n.put({"email": "dup"}, id="c2")
        with pytest.raises(errors.KuraError, match="c1, c2"):
            n.create_index("email", unique=True)              # existing duplicates are named
