"""Queries at their limits: 10,000-branch $or/$in/$nin/$and, filters nested past the documented
depth, integer arguments past 64 bits, and hostile values: results equal the reference
evaluator, and every refusal is a QueryError naming the part."""
from __future__ import annotations

import sys

import pytest
import reference

import kuradb
from kuradb import errors

N = 10_000
MAX_DEPTH = 100        # docs/QUERIES.md: how deep $and/$or/$nor/$not may nest
MAX_VALUE_DEPTH = 254  # and arrays and objects in an operand
# Every kind of value, and the kinds that must stay apart: 1 and 1.0 are one value, 1, "1" and true are not.
KINDS = [None, True, False, 0, 1, 1.0, 2.5, -3, 2**63 - 1, -(2**63), "", "1", "a", "é", [], [1], ["a", 1],
         {}, {"k": 1}, {"k": [1, "a"]}]


def _docs() -> list[tuple[str, dict]]:
    docs = []
    for i in range(60):
        v = KINDS[i % len(KINDS)]
        docs.append((f"d{i:02}", {"v": v, "n": i, "k": i % 7, "tags": [f"t{i % 5}", i % 3]}))
    docs.append(("d60", {"n": 60}))  # no v
    return docs


@pytest.fixture(params=["plain", "indexed"])
def coll(request, store):
    c = store.collection("limits")
    c.put_many(_docs())
    if request.param == "indexed":
        c.create_index("v")
        c.create_index("n")
        c.create_index(["k", "n"])
    return c


def run_every_way(c, filter):
    """The ids ``filter`` selects through every query entry point, which must all agree."""
    got = [r.id for r in c.find(filter)]
    assert c.count(filter) == len(got)
    assert c.exists(filter) == bool(got)
    assert [d["_id"] for d in c.aggregate([{"$match": filter}, {"$sort": "_id"}])] == got
    assert c.aggregate([{"$match": filter}, {"$count": "n"}]) == ([{"n": len(got)}] if got else [])
    assert [r.id for r in c.query().where(filter).all()] == got
    assert [r.id for r in c.scan(filter, batch_size=7)] == got
    return got


def check(c, filter):
    got = run_every_way(c, filter)
    assert got == reference.find(c.find(), filter, None)
    return got


def many_values():
    """N distinct values of every kind: every stored value but 2.5, and many that are not stored."""
    extra = [*(i + 0.25 for i in range(N // 4)), *(f"s{i}" for i in range(N // 4)), *([i, "x"] for i in range(N // 8)),
             *({"k": i, "x": 1} for i in range(N // 8))]
    values = [k for k in KINDS if k != 2.5] + extra
    return (values + list(range(100, 100 + N)))[:N]


# -- large $or / $in / $nin / $and ---------------------------------------------------------

def test_an_or_of_ten_thousand_equalities_matches_like_one_in(coll):
    values = many_values()
    got = check(coll, {"$or": [{"v": v} for v in values]})
    assert len(got) == 57  # all but the 3 documents holding 2.5 (never listed) and d60 (no v)
    assert got == run_every_way(coll, {"v": {"$in": values}})


def test_an_in_and_nin_of_ten_thousand_values_of_every_kind(coll):
    values = many_values()
    assert check(coll, {"v": {"$in": values}}) == [r.id for r in coll.find({"$or": [{"v": v} for v in values]})]
    assert check(coll, {"v": {"$nin": values}}) == ["d06", "d26", "d46", "d60"]  # 2.5 x3, and no v at all


def test_large_in_on_an_array_path_matches_elements(coll):
    check(coll, {"tags": {"$in": [f"t{i}" for i in range(3, N)]}})
    check(coll, {"tags": {"$nin": [*range(2, N), "t0"]}})
    check(coll, {"$or": [{"tags": f"t{i}"} for i in range(4, N + 4)]})


def test_large_in_and_or_on_the_envelope(coll):
    ids = [f"d{i:02}" for i in range(0, 60, 3)] + [f"x{i}" for i in range(N)]
    assert check(coll, {"_id": {"$in": ids}}) == sorted(ids[:20])
    assert check(coll, {"$or": [{"_id": i} for i in ids]}) == sorted(ids[:20])
    assert len(check(coll, {"_id": {"$nin": ids}})) == 41
    assert check(coll, {"_version": {"$in": list(range(2, N))}}) == []
    assert check(coll, {"$or": [{"_type": None}] + [{"_type": f"t{i}"} for i in range(N)]}) == [
        r.id for r in coll.find()]


def test_an_and_of_ten_thousand_negations(coll):
    # $ne on one path merge into one $nin; $not of ranges cannot merge and stay ten thousand conditions.
    check(coll, {"$and": [{"n": {"$ne": i}} for i in range(5, N)]})
    assert c_find(coll, {"$and": [{"n": {"$not": {"$gt": 50 + i}}} for i in range(N)]}) == [
        f"d{i:02}" for i in range(51)]


@pytest.mark.parametrize("coll", ["plain"], indirect=True)  # an $or is never planned onto an index
def test_an_or_of_ten_thousand_branches_that_do_not_merge(coll):
    # SQLite takes time quadratic in the number of distinct values to prepare such a statement
    # (about a second here for ten thousand), so the slower shapes run through fewer entry points.
    assert check(coll, {"$or": [{"tags": {"$size": 3 + i}} for i in range(N)] + [{"n": 7}]}) == ["d07"]
    assert [r.id for r in coll.find({"$or": [{"n": {"$gte": i, "$lt": i + 1}} for i in range(0, 2 * N, 2)]})] == [
        f"d{i:02}" for i in range(0, 61, 2)]
    assert c_find(coll, {"$or": [{"k": i % 7, "n": i} for i in range(N)]}) == [f"d{i:02}" for i in range(60)]


def c_find(coll, filter):
    got = [r.id for r in coll.find(filter)]
    assert got == reference.find(coll.find(), filter, None)
    return got


def test_a_mixed_or_merges_per_path(coll):
    branches = []
    for i in range(N):
        branches.append({"n": i + 55} if i % 3 == 0 else {"v": f"nope{i}"} if i % 3 == 1 else {"tags": f"z{i}"})
    check(coll, {"$or": branches + [{"v": 1}, {"tags": "t2"}]})


def test_the_builder_with_ten_thousand_wheres(coll):
    q = coll.query()
    for i in range(N):
        q = q.where("n", "!=", i + 40)
    assert [r.id for r in q.all()] == [f"d{i:02}" for i in range(40)]
    assert q.count() == 40 and q.exists()


def test_an_indexed_or_of_equalities_uses_the_index(store):
    c = store.collection("planned")
    c.put_many([(f"d{i}", {"owner": f"o{i % 50}"}) for i in range(200)])
    c.create_index("owner")
    plan = c.query().where({"$or": [{"owner": f"o{i}"} for i in range(1000)]}).explain()
    assert plan.index == "owner" and "filter" in plan.used_for
    assert c.count({"$or": [{"owner": f"o{i}"} for i in range(3)]}) == 12


def test_too_many_values_for_one_statement_is_a_query_error(store):
    c = store.collection("huge")
    c.put({"a": 1, "b": 2})
    # 70,000 ranges cannot merge: past the engine's limit on parameters in one statement (SQLite's 32,766,
    # PostgreSQL's 65,535), refused in so many words.
    with pytest.raises(errors.QueryError, match=r"more than (32766|65535) values"):
        c.find({"$or": [{"a": {"$gt": i}} for i in range(70_000)]})
    # The same number of equalities is one $in and runs.
    assert c.count({"$or": [{"a": i} for i in range(70_000)]}) == 1


# -- nesting -------------------------------------------------------------------------------

def nest(depth: int, leaf: dict, wrap) -> dict:
    f = leaf
    for i in range(depth - 1):
        f = wrap(f, i)
    return f


WRAPS = {
    "$and": lambda f, i: {"$and": [f, {"n": {"$gte": -i}}]},
    "$or": lambda f, i: {"$or": [f, {"n": 1000 + i}]},
    "$nor": lambda f, i: {"$nor": [f, {"n": 1000 + i}]},
    "$not": lambda f, i: {"$not": f},
    "$and of one": lambda f, i: {"$and": [f]},
}


@pytest.mark.parametrize("wrap", WRAPS)
def test_filters_nested_to_the_limit_run_and_deeper_is_a_query_error(coll, wrap):
    leaf = {"tags": {"$in": ["t1", 2]}}
    check(coll, nest(MAX_DEPTH, leaf, WRAPS[wrap]))
    deep = nest(MAX_DEPTH + 1, leaf, WRAPS[wrap])
    for run in (coll.find, coll.count, coll.exists, lambda f: coll.aggregate([{"$match": f}]),
                lambda f: coll.query().where(f).all(), lambda f: list(coll.scan(f))):
        with pytest.raises(errors.QueryError, match=f"more than {MAX_DEPTH} levels deep"):
            run(deep)


def test_nesting_ten_thousand_deep_is_a_query_error_not_a_recursion_error(coll):
    assert sys.getrecursionlimit() < N
    for wrap in WRAPS.values():
        deep = nest(N, {"n": 1}, wrap)
        for run in (coll.find, coll.count, coll.exists, lambda f: coll.aggregate([{"$match": f}]),
                    lambda f: coll.query().where(f).all(), lambda f: coll.search_text("x", filter=f)):
            with pytest.raises(errors.QueryError, match="levels deep"):
                run(deep)
    ops = {"$gt": 1}
    for _ in range(N):
        ops = {"$not": ops}
    with pytest.raises(errors.QueryError, match=r"^n(\.\$not)+: the filter nests"):
        coll.find({"n": ops})


def test_operands_nested_past_the_limit_are_query_errors(coll):
    def nested_list(depth):
        v: list = []
        for _ in range(depth - 1):
            v = [v]
        return v

    assert check(coll, {"v": nested_list(MAX_VALUE_DEPTH)}) == []
    for depth in (MAX_VALUE_DEPTH + 1, N):
        for filter in ({"v": nested_list(depth)}, {"v": {"$in": [1, nested_list(depth)]}},
                       {"v": {"$ne": nested_list(depth)}}, {"v": {"$gt": nested_list(depth)}}):
            with pytest.raises(errors.QueryError, match=f"more than {MAX_VALUE_DEPTH} levels deep"):
                coll.find(filter)
        with pytest.raises(errors.QueryError, match=r"pipeline\[0\]\.\$group\._id"):
            coll.aggregate([{"$group": {"_id": nested_list(depth)}}])
    # Messages that show the value stay short, however deep it is.
    with pytest.raises(errors.QueryError, match=r"^sort\[0\]: expected a field") as e:
        coll.find(sort=[nested_list(N)])
    assert len(str(e.value)) < 200


# -- integers past 64 bits -----------------------------------------------------------------

BIG = 2**63


@pytest.mark.parametrize("call", [
    lambda c: c.find(limit=BIG), lambda c: c.find(skip=BIG), lambda c: c.find(limit=10**30),
    lambda c: c.query().limit(BIG).all(), lambda c: c.query().skip(BIG).count(),
    lambda c: c.aggregate([{"$limit": BIG}]), lambda c: c.aggregate([{"$skip": BIG}]),
    lambda c: c.search_text("x", limit=BIG), lambda c: c.find({"tags": {"$size": BIG}}),
    lambda c: c.aggregate([{"$group": {"_id": None, "s": {"$sum": BIG}}}]),
], ids=["find-limit", "find-skip", "find-limit-1e30", "builder-limit", "builder-skip", "agg-limit", "agg-skip",
        "search-limit", "size", "sum-constant"])
def test_integers_past_64_bits_are_query_errors(store, call):
    c = store.collection("ints")
    c.put({"x": "a", "tags": []})
    c.create_text_index(["x"])
    with pytest.raises(errors.QueryError, match="64|2\\*\\*63"):
        call(c)


def test_the_largest_64_bit_limit_and_skip_are_accepted(store):
    c = store.collection("ints")
    c.put_many([("a", {"x": 1}), ("b", {"x": 2})])
    top = 2**63 - 1
    assert [r.id for r in c.find(limit=top)] == ["a", "b"] and c.find(skip=top) == []
    assert c.query().limit(top).count() == 2
    assert c.aggregate([{"$skip": 1}, {"$limit": top}]) == [{"x": 2, "_id": "b"}]
    # batch_size is a memory bound, not a count in SQL: past any collection's size it is "all at once".
    assert [r.id for r in c.scan(batch_size=BIG)] == ["a", "b"]


# -- hostile values ------------------------------------------------------------------------

@pytest.mark.parametrize("call,where", [
    (lambda c: c.find({"x": "a\ud800"}), r"^x:"),
    (lambda c: c.find({"x\ud800": 1}), r"^x\\ud800:"),
    (lambda c: c.find({"x": {"$in": ["a", "\udfff"]}}), r"^x\.\$in\[1\]:"),
    (lambda c: c.find({"x": {"$startswith": "\ud800"}}), r"^x\.\$startswith:"),
    (lambda c: c.find({"x": {"k": "\ud800"}}), r"^x\.k:"),
    (lambda c: c.find(sort="\ud800"), r"^sort\[0\]:"),
    (lambda c: c.find(fields=["a", "\ud800"]), r"^fields\[1\]:"),
    (lambda c: c.aggregate([{"$count": "\ud800"}]), r"^pipeline\[0\]\.\$count:"),
    (lambda c: c.aggregate([{"$group": {"_id": None, "\ud800": {"$count": {}}}}]), r"^pipeline\[0\]\.\$group:"),
    (lambda c: c.aggregate([{"$group": {"_id": {"\ud800": "$x"}}}]), r"^pipeline\[0\]\.\$group\._id:"),
    (lambda c: c.search_text("\ud800 word"), r"^search text:"),
])
def test_lone_surrogates_are_query_errors(store, call, where):
    c = store.collection("text")
    c.put({"x": "a"})
    c.create_text_index(["x"])
    with pytest.raises(errors.QueryError, match="lone surrogate") as e:
        call(c)
    assert e.match(where)
    str(e.value).encode()  # the message itself is printable text


@pytest.mark.parametrize("stage,where", [
    ({"$group": {"_id": float("nan")}}, r"\$group\._id: nan is not a finite number"),
    ({"$group": {"_id": {"k": {1, 2}}}}, r"\$group\._id\.k: a set is not a JSON value"),
    ({"$group": {"_id": 2**64}}, r"\$group\._id: integer .* outside the 64-bit range"),
    ({"$group": {"_id": {1: "$x"}}}, r"\$group\._id: key 1 is not a string"),
    ({"$group": {"_id": None, "s": {"$sum": float("inf")}}}, r"\$group\.s\.\$sum: inf"),
    ({"$group": {"_id": None, 5: {"$count": {}}}}, r"\$group: output field 5 is not a string"),
    ({"$project": {"k": {"$literal": 2**64}}}, r"\$project\.k\.\$literal: integer"),
    ({"$project": {"k": {"$literal": object()}}}, r"\$project\.k\.\$literal: a object is not a JSON value"),
    ({"$unwind": {1: 2, "b": 3, "path": "$x"}}, r"\$unwind: unknown option"),
])
def test_pipeline_literals_must_be_json(store, stage, where):
    c = store.collection("lits")
    c.put({"x": 1})
    with pytest.raises(errors.QueryError, match=where):
        c.aggregate([stage, {"$match": {"k": 1}}])


def test_a_group_of_everything_without_accumulators(store):
    c = store.collection("g")
    assert c.aggregate([{"$group": {"_id": None}}]) == []
    c.put({"x": 1})
    assert c.aggregate([{"$group": {"_id": None}}]) == [{"_id": None}]
    assert c.aggregate([{"$group": {"_id": "k"}}]) == [{"_id": "k"}]


def test_every_error_is_a_kuradb_error(store):
    """A sweep over odd inputs: whatever is refused is refused with a QueryError."""
    c = store.collection("odd")
    c.put({"x": 1})
    odd = [object(), {1, 2}, (1, 2), b"x", 2**64, float("nan"), "\ud800", [object()], {"$gt": object()},
           lambda: 1, kuradb, ..., NotImplemented]
    for value in odd:
        for call in (lambda v: c.find({"x": v}), lambda v: c.find({"x": {"$in": [v]}}), lambda v: c.find(v),
                     lambda v: c.find(sort=v), lambda v: c.find(limit=v), lambda v: c.find(fields=v),
                     lambda v: c.aggregate(v), lambda v: c.aggregate([{"$group": {"_id": v}}]),
                     lambda v: c.aggregate([{"$match": {"x": v}}]), lambda v: c.query().where("x", "==", v).all()):
            try:
                call(value)
            except errors.QueryError:
                pass
