"""Aggregation, indexed queries and odd content on PostgreSQL: the same answers as a SQLite store, indexes used.

The contract tests (tests/test_aggregate.py, test_indexes.py...) run on PostgreSQL with ``--impl postgres``;
these run by default and compare a PostgreSQL store with a SQLite store given the same records, value for
value and type for type (``1`` is not ``1.0``), over random pipelines.
"""
from __future__ import annotations

import json
import random

import pytest

import kuradb
from kuradb import errors

VALUES = [None, True, False, 0, 1, 2, -1, 0.5, 1.0, 2.5, 1e16, 1e300, "", "a", "b", "B", "1", "é", [1], [1.0], [],
          {"x": 1}, {"x": 1.0}, 2**62, -(2**63), 2**63 - 1, 3.25e-7]
KEYS = ["a", "b", "c"]
PATHS = ["$a", "$b", "$c", "$n.x", "$_id", "$_version", "$t", "$t.0"]


def _doc(rnd: random.Random) -> dict:
    d = {k: rnd.choice(VALUES) for k in KEYS if rnd.random() < 0.8}
    if rnd.random() < 0.5:
        d["n"] = {"x": rnd.choice(VALUES)}
    if rnd.random() < 0.3:
        d["t"] = [rnd.choice(VALUES) for _ in range(rnd.randint(0, 3))]
    return d


def _pipeline(rnd: random.Random) -> list:
    stages: list = []
    for _ in range(rnd.randint(0, 4)):
        op = rnd.choice(["$match", "$sort", "$skip", "$limit", "$group", "$count", "$project", "$unwind"])
        if op == "$match":
            cond = rnd.choice([{"$gte": rnd.choice([0, 1, "a"])}, {"$ne": None}, {"$exists": True},
                               {"$regex": "^[ab]"}, rnd.choice(VALUES)])
            stages.append({"$match": {rnd.choice(KEYS): cond}})
        elif op == "$sort":
            stages.append({"$sort": [rnd.choice(["a", "-a", "b", "-b", "n.x", "_id"])]})
        elif op in ("$skip", "$limit"):
            stages.append({op: rnd.randint(0, 5)})
        elif op == "$count":
            stages.append({"$count": "n"})
        elif op == "$project":
            stages.append({"$project": {"a": 1, "b": 1, "n": 1, "t": 1}})
        elif op == "$unwind":
            stages.append({"$unwind": "$t"})
        else:
            group: dict = {"_id": rnd.choice([None, "$a", "$b", {"p": "$a", "q": "$c"}, "$n.x"])}
            for i in range(rnd.randint(0, 4)):
                acc = rnd.choice(["$sum", "$avg", "$min", "$max", "$push", "$first", "$last", "$count"])
                group[f"f{i}"] = {acc: {} if acc == "$count" else
                                  rnd.choice(PATHS + ([1, 2.5] if acc == "$sum" else []))}
            stages.append({"$group": group})
    return stages


def _typed(x):
    """A value with its types spelled out; a group key's number by value only (which member's spelling a
    group of equal numbers shows, 1 or 1.0, is the engine's)."""
    if isinstance(x, dict):
        return {k: _loose(v) if k == "_id" else _typed(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_typed(v) for v in x]
    return [type(x).__name__, x]


def _loose(x):
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return ["number", float(x)]
    if isinstance(x, dict):
        return {k: _loose(v) for k, v in x.items()}
    return _typed(x)


def _outcome(collection, pipeline):
    try:
        return json.dumps(_typed(collection.aggregate(pipeline)), sort_keys=True)
    except errors.QueryError as e:
        return f"QueryError: {e.message}"


@pytest.mark.parametrize("seed", range(3))
def test_random_pipelines_give_what_sqlite_gives(pg, tmp_path, seed):
    rnd = random.Random(seed)
    docs = [(f"d{i:02}", _doc(rnd)) for i in range(25)]
    with pg.open("agg") as p, kuradb.open(tmp_path / "s") as s:
        for store in (p, s):
            store.collection("c").put_many(docs)
            if seed:
                store.collection("c").create_index("a")
        for _ in range(150):
            pipeline = _pipeline(rnd)
            assert _outcome(p.collection("c"), pipeline) == _outcome(s.collection("c"), pipeline), pipeline


def test_an_indexed_equality_reads_through_the_index(pg):
    with pg.open("big") as store:
        c = store.collection("items")
        c.put_many([(f"k{i:05}", {"owner": f"o{i % 100}", "score": i % 97}) for i in range(3000)])
        c.create_index("owner")
        c.create_index("score", unique=False)
        c.create_index("_type")
        for q, name in ((c.query().where("owner", "==", "o7"), "owner"),
                        (c.query().where("owner", "in", ["o1", "o2"]), "owner"),
                        (c.query().where("score", ">=", 95), "score"),
                        (c.query().order_by("score").limit(5), "score")):
            plan = q.explain()
            assert plan.index == name
            coll = next(line for line in plan.sqlite_plan if "Index" in line)
            assert '"kura:' in coll and f":{name}\"" in coll, plan.sqlite_plan   # kuradb's name, not the digest
        assert [r.id for r in c.find({"owner": "o7"})] == [f"k{i:05}" for i in range(7, 3000, 100)]
        assert [r.content["score"] for r in c.find({}, sort="score", limit=3)] == [0, 0, 0]


def test_a_long_in_is_one_parameter(pg):
    with pg.open("long") as store:
        c = store.collection("c")
        c.put_many([("a", {"v": 5, "s": "x"}), ("b", {"v": [1], "s": None})])
        assert c.count({"v": {"$in": list(range(2, 70_000))}}) == 1   # (v may be an array: [1] holds 1)
        assert c.count({"v": {"$in": [[1], *range(200)]}}) == 2
        assert c.count({"s": {"$in": [None, *map(str, range(200))]}}) == 1
        c.create_index("v", unique=True)
        assert c.count({"v": {"$in": list(range(2, 200))}}) == 1


def test_objects_and_arrays_compare_by_their_canonical_json(pg):
    with pg.open("canon") as store:
        c = store.collection("c")
        c.put_many([("i", {"v": [1]}), ("f", {"v": [1.0]}), ("o", {"v": {"x": 1}}), ("p", {"v": {"x": 1.0}})])
        assert [r.id for r in c.find({"v": [1]})] == ["i"]
        assert [r.id for r in c.find({"v": {"x": 1.0}})] == ["p"]
        out = c.aggregate([{"$group": {"_id": "$v", "n": {"$count": {}}}}])
        assert len(out) == 4
        c.create_index("v", unique=True)   # [1] and [1.0] are not duplicates, as on SQLite
        with pytest.raises(errors.DuplicateKey):
            c.put({"v": [1]}, id="j")


def test_a_nul_in_a_string_breaks_no_query(pg):
    with pg.open("nul") as store:
        c = store.collection("c")
        c.put_many([("a", {"s": "x\x00y", "n": 1}), ("b", {"s": "xy", "n": 2}), ("c", {"s": "\\u0000", "n": 3})])
        assert [r.id for r in c.find({"n": {"$gte": 1}}, sort="s")] == ["c", "a", "b"]   # "\\" < "x"; "x\x00y" < "xy"
        assert c.find({"s": {"$startswith": "x"}}, sort="-n")[0].content == {"s": "xy", "n": 2}
        assert c.get("a").content["s"] == "x\x00y"     # the record itself is untouched
        c.create_index("s")
        assert [r.id for r in c.find({"s": "\\u0000"})] == ["c"]
        assert c.aggregate([{"$match": {"n": 1}}, {"$project": {"s": 1, "_id": 0}}]) == [{"s": "x\x00y"}]
        # values an aggregation computes read U+0000 as U+0001, as queries do (jsonb and json cannot give it)
        assert c.aggregate([{"$group": {"_id": None, "s": {"$push": "$s"}}}])[0]["s"] == ["x\x01y", "xy", "\\u0000"]
