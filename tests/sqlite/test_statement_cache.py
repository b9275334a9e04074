"""The statement cache (kuradb/query/statements.py) hands out exactly what the dialect compiles.

Property: for random filters, sorts and pages, and a sibling query of the same shape
with other values compiled first (so the second lookup is a cache hit), the cached
statement equals the one ``dialect.find`` compiles for the query itself: same SQL,
same parameters of the same types. A query whose SQL the dialect writes from its
values (a long ``$in``) is compiled per query.
"""
from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_query_property import filters, sorts

import kuradb
from kuradb.errors import KuraError
from kuradb.query.engine import Spec
from kuradb.query.indexes import load_meta
from kuradb.query.statements import Hole, Inlined, StatementCache


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A store whose collection has array paths and indexes, so plans use indexes and chains."""
    store = kuradb.open(str(tmp_path_factory.mktemp("cache") / "store"))
    c = store.collection("docs")
    c.put_many([(f"d{i}", {"a": i % 3, "b": f"s{i}", "tags": ["x", "y"], "c": [[1]]}) for i in range(20)])
    c.create_index("a")
    c.create_index(["b", "a"])
    c.create_index("_type")
    with store.backend.read() as r:
        coll = r.collection("docs")[0]
        meta = load_meta(r, coll)
    yield store.backend.dialect, coll, meta
    store.close()


def _sibling(value: Any, rnd: random.Random) -> Any:
    """``value`` with its strings and numbers replaced by others of the same type (operators kept)."""
    if isinstance(value, dict):
        return {k: (v if k == "$options" else _sibling(v, rnd)) for k, v in value.items()}
    if isinstance(value, list):
        return [_sibling(v, rnd) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return rnd.randint(-5, 5)
    if isinstance(value, float):
        return rnd.uniform(-5, 5)
    if isinstance(value, str):
        return rnd.choice(["", "a", "b", "zz", "é", "1"])
    return value


def _outcome(fn: Any) -> Any:
    try:
        st_ = fn()
    except KuraError as e:
        return type(e).__name__
    return st_.sql, [(type(p), p) for p in st_.params], st_.plan


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(filters, sorts, st.sampled_from([None, 0, 3]), st.sampled_from([0, 2]),
       st.sampled_from(["records", "count", "exists"]), st.randoms(use_true_random=False))
def test_a_cached_statement_is_the_one_the_dialect_compiles(catalog: Any, filter: Any, sort: Any, limit: Any,
                                                            skip: Any, what: str, rnd: random.Random) -> None:
    dialect, coll, meta = catalog
    cache = StatementCache()

    def spec_of(f: Any) -> Spec:
        return Spec.parse(f, sort=sort, limit=limit, skip=skip)

    try:
        spec = spec_of(filter)
    except KuraError:
        return
    try:
        cache.statement(dialect, coll, meta, spec_of(_sibling(filter, rnd)), what)  # fills the entry
    except KuraError:
        pass
    assert _outcome(lambda: cache.statement(dialect, coll, meta, spec, what)) == \
        _outcome(lambda: dialect.find(coll, meta, spec, what))


def test_a_long_in_list_is_compiled_per_query(catalog: Any) -> None:
    dialect, coll, meta = catalog
    cache = StatementCache()
    for n in (1, 2):
        spec = Spec.parse({"b": {"$in": [f"v{n}-{i}" for i in range(150)]}})
        assert cache.statement(dialect, coll, meta, spec, "records").params == \
            dialect.find(coll, meta, spec, "records").params


def test_a_statement_compiled_for_other_indexes_is_not_used(tmp_path: Any) -> None:
    """The entry is keyed to the catalog it was compiled against: a new index gets a new plan."""
    store = kuradb.open(str(tmp_path / "s"))
    c = store.collection("docs")
    c.put_many([(f"d{i}", {"a": i}) for i in range(10)])
    assert c.explain({"a": 3}).index == "_id"
    c.create_index("a")
    assert c.explain({"a": 4}).index == "a"
    assert [r.id for r in c.find({"a": 5})] == ["d5"]
    store.close()


def test_a_hole_cannot_be_written_into_sql() -> None:
    with pytest.raises(Inlined):
        _ = f"x = {Hole(0)}"
    with pytest.raises(Inlined):
        str(Hole(1))
    assert Hole(2) == Hole(2) and Hole(2) != Hole(3) and Hole(2) != 2
