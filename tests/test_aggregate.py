"""aggregate() against results computed by hand."""
from __future__ import annotations

import pytest


@pytest.fixture
def sales(store):
    c = store.collection("sales")
    c.put_many([
        ("s1", {"item": "pen", "qty": 2, "price": 1.5, "tags": ["office", "cheap"], "region": {"name": "north"}}),
        ("s2", {"item": "pen", "qty": 5, "price": 1.0, "tags": ["office"], "region": {"name": "south"}}),
        ("s3", {"item": "ink", "qty": 1, "price": 20, "tags": [], "region": {"name": "north"}}),
        ("s4", {"item": "pad", "qty": 3, "price": 4, "region": {"name": "north"}}),
        ("s5", {"item": "ink", "qty": "?", "price": None}),
    ])
    c.put({"item": "gone", "qty": 100}, id="s6")
    c.delete("s6")
    return c


def test_group_with_every_accumulator(sales):
    out = sales.aggregate([
        {"$group": {"_id": "$item", "n": {"$count": {}}, "qty": {"$sum": "$qty"}, "avg": {"$avg": "$price"},
                    "lo": {"$min": "$price"}, "hi": {"$max": "$price"}, "ids": {"$push": "$_id"},
                    "first": {"$first": "$qty"}, "last": {"$last": "$qty"}}},
        {"$sort": {"_id": 1}}])
    # Non-numbers are skipped by $sum/$avg; null and missing by $min/$max; $first/$last in _id order.
    assert out == [
        {"_id": "ink", "n": 2, "qty": 1, "avg": 20.0, "lo": 20, "hi": 20, "ids": ["s3", "s5"], "first": 1,
         "last": "?"},
        {"_id": "pad", "n": 1, "qty": 3, "avg": 4.0, "lo": 4, "hi": 4, "ids": ["s4"], "first": 3, "last": 3},
        {"_id": "pen", "n": 2, "qty": 7, "avg": 1.25, "lo": 1.0, "hi": 1.5, "ids": ["s1", "s2"], "first": 2,
         "last": 5},
    ]


def test_match_group_sort(sales):
    out = sales.aggregate([{"$match": {"qty": {"$gte": 2}}},
                           {"$group": {"_id": "$region.name", "total": {"$sum": 1}}}, {"$sort": "-total"}])
    assert out == [{"_id": "north", "total": 2}, {"_id": "south", "total": 1}]


def test_group_by_compound_key_and_everything(sales):
    out = sales.aggregate([{"$group": {"_id": {"i": "$item", "r": "$region.name"}, "n": {"$sum": 1}}},
                           {"$sort": ["_id.i", "_id.r"]}])
    assert [(o["_id"]["i"], o["_id"]["r"]) for o in out] == [
        ("ink", None), ("ink", "north"), ("pad", "north"), ("pen", "north"), ("pen", "south")]
    assert sales.aggregate([{"$group": {"_id": None, "total": {"$sum": "$qty"}}}]) == [{"_id": None, "total": 11}]


def test_group_keys_keep_types_apart(store):
    c = store.collection("mixed")
    c.put_many([("a", {"k": 1}), ("b", {"k": 1.0}), ("c", {"k": "1"}), ("d", {"k": True}), ("e", {}),
                ("f", {"k": None}), ("g", {"k": [1]})])
    out = c.aggregate([{"$group": {"_id": "$k", "ids": {"$push": "$_id"}}}, {"$sort": "_id"}])
    # missing and null group together; 1 == 1.0; the total order sorts the groups
    assert out == [{"_id": None, "ids": ["e", "f"]}, {"_id": 1, "ids": ["a", "b"]}, {"_id": "1", "ids": ["c"]},
                   {"_id": [1], "ids": ["g"]}, {"_id": True, "ids": ["d"]}]


def test_unwind_then_group_in_sql(sales):
    out = sales.aggregate([{"$unwind": "$tags"}, {"$group": {"_id": "$tags", "n": {"$sum": 1}}}, {"$sort": "_id"}])
    assert out == [{"_id": "cheap", "n": 1}, {"_id": "office", "n": 2}]


def test_count_project_skip_limit(sales):
    assert sales.aggregate([{"$match": {"item": "pen"}}, {"$count": "pens"}]) == [{"pens": 2}]
    assert sales.aggregate([{"$match": {"item": "zzz"}}, {"$count": "n"}]) == []
    out = sales.aggregate([{"$project": {"item": 1, "r": "$region.name"}}, {"$sort": "-_id"}, {"$skip": 1},
                           {"$limit": 2}])
    assert out == [{"_id": "s4", "item": "pad", "r": "north"}, {"_id": "s3", "item": "ink", "r": "north"}]
    # strings sort after numbers, so the "?" comes first descending
    assert sales.aggregate([{"$sort": "-qty"}, {"$limit": 2}, {"$project": {"qty": 1, "_id": 0}}]) == [
        {"qty": "?"}, {"qty": 5}]


def test_sum_beyond_64_bits_falls_back_to_floats(store):
    c = store.collection("big")
    c.put_many([("a", {"v": 2**62}), ("b", {"v": 2**62}), ("c", {"v": 2**62})])
    (out,) = c.aggregate([{"$group": {"_id": None, "s": {"$sum": "$v"}}}])
    assert out["s"] == pytest.approx(3 * 2**62)


def test_each_group_keeps_its_own_sum_type_when_another_overflows(store):
    top, bottom = 2**63 - 1, -(2**63)
    groups = {
        "fits": [1, 2, 3],                       # 6, an integer
        "over": [top, 1],                        # 2**63: past 64 bits, the float nearest
        "under": [bottom, -1],                   # -2**63 - 1
        "edge-high": [top - 5, 5],               # exactly the largest integer
        "edge-low": [bottom + 7, -7],            # exactly the smallest
        "back-in": [top, top, -top, -top, 9],    # past 64 bits on the way, 9 at the end: exact
        "floats": [1.5, 2, top],                 # any float: a float sum
        "none": ["x", None, True],               # no numbers: 0
        "exact": [top, top, top, 3],             # past 64 bits: the float nearest the exact sum
    }
    c = store.collection("sums")
    c.put_many([(f"{g}{i}", {"g": g, "v": v}) for g, vs in groups.items() for i, v in enumerate(vs)])
    out = {d["_id"]: d for d in c.aggregate([{"$group": {"_id": "$g", "s": {"$sum": "$v"}, "n": {"$sum": 1},
                                                            "k": {"$sum": 2**62}, "ver": {"$sum": "$_version"}}}])}
    want = {"fits": 6, "over": float(2**63), "under": float(-(2**63) - 1), "edge-high": top, "edge-low": bottom,
            "back-in": 9, "floats": 3.5 + top, "none": 0, "exact": float(3 * top + 3)}
    for g, s in want.items():
        assert out[g]["s"] == s and type(out[g]["s"]) is type(s), (g, out[g]["s"])
        assert out[g]["n"] == len(groups[g]) and type(out[g]["n"]) is int
        assert out[g]["ver"] == len(groups[g]) and type(out[g]["ver"]) is int
    assert out["fits"]["k"] == 3 * 2**62 and type(out["fits"]["k"]) is float  # a constant past 64 bits too
    assert out["over"]["k"] == 2**63 and type(out["over"]["k"]) is float
    assert out["none"]["k"] == 3 * 2**62
    # The same with one group of everything, and after a Python stage.
    (one,) = c.aggregate([{"$match": {"g": {"$in": ["fits", "edge-high"]}}},
                          {"$group": {"_id": None, "s": {"$sum": "$v"}}}])
    assert one["s"] == float(top + 6)
    rows = c.aggregate([{"$project": {"g": 1, "v": 1}}, {"$group": {"_id": "$g", "s": {"$sum": "$v"}}}])
    assert {d["_id"]: d["s"] for d in rows} == want


def test_a_float_sum_past_the_float_range_is_infinite(store):
    c = store.collection("inf")
    c.put_many([("a", {"v": 1e308}), ("b", {"v": 1e308}), ("c", {"v": -1e308})])
    (out,) = c.aggregate([{"$match": {"_id": {"$ne": "c"}}}, {"$group": {"_id": None, "s": {"$sum": "$v"}}}])
    assert out["s"] == float("inf")


def test_empty_pipeline_returns_documents_with_their_ids(sales):
    out = sales.aggregate([])
    assert [d["_id"] for d in out] == ["s1", "s2", "s3", "s4", "s5"]
    assert out[3] == {"_id": "s4", "item": "pad", "qty": 3, "price": 4, "region": {"name": "north"}}
