"""Indexed queries on a PostgreSQL store: an equality, a range and a sorted page, with and without the index.

Run:  python bench/pg_index.py [--records 100000] [--url postgresql://postgres@127.0.0.1:5432/test]

Loads ``--records`` documents into a fresh schema, times each query (median of
rounds) before and after ``create_index``, and prints PostgreSQL's plan for it
(explain names the index as ``kura:<collection id>:<name>``).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import psycopg

import kuradb


def timed(fn: Any, rounds: int = 21) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    schema = "bench_pg_index"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    store = kuradb.open(f"{args.url}?schema={schema}")
    c = store.collection("items")
    n = args.records
    for lo in range(0, n, 5000):
        c.put_many([(f"k{i:07}", {"owner": f"o{i % 1000}", "score": i % 997, "name": f"item {i}"})
                    for i in range(lo, min(n, lo + 5000))])
    queries = {
        "equality {owner: 'o7'} (100 rows)": lambda: c.find({"owner": "o7"}),
        "count {owner: 'o7'}": lambda: c.count({"owner": "o7"}),
        "range {score: {$gte: 990}} (~700 rows)": lambda: c.find({"score": {"$gte": 990}}),
        "sorted page {}, sort score, limit 10": lambda: c.find({}, sort="score", limit=10),
    }
    plans = {
        "equality {owner: 'o7'} (100 rows)": c.query().where("owner", "==", "o7"),
        "count {owner: 'o7'}": None,
        "range {score: {$gte: 990}} (~700 rows)": c.query().where("score", ">=", 990),
        "sorted page {}, sort score, limit 10": c.query().order_by("score").limit(10),
    }
    before = {k: timed(q, 5) for k, q in queries.items()}
    c.create_index("owner")
    c.create_index("score")
    after = {k: timed(q) for k, q in queries.items()}
    print(f"{n:,} records on PostgreSQL")
    for k in queries:
        print(f"{k:45} no index {before[k] * 1000:9.2f} ms   index {after[k] * 1000:8.2f} ms"
              f"   x{before[k] / after[k]:.0f}")
        q = plans[k]
        if q is not None:
            e = q.explain()
            print("    index", e.index, "for", e.used_for, "|", next((line.strip() for line in e.sqlite_plan
                                                                    if "Index" in line or "Seq" in line), ""))
    store.close()
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    main()
