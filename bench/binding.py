"""Compare apsw with the stdlib sqlite3 on the operations kuradb's hot paths use.

Run: python bench/binding.py [N]
Point put (one commit each, WAL, synchronous=NORMAL), point get by key,
and a JSON filter scan over N documents stored as JSON text and (apsw only) JSONB.
"""
from __future__ import annotations

import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time

import apsw
import orjson

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
ROUNDS = 3


def docs(n):
    rnd = random.Random(1)
    for i in range(n):
        yield f"k{i:08d}", orjson.dumps({
            "type": rnd.choice("abc"), "name": f"name-{i}", "owner": f"user{rnd.randrange(1000)}",
            "score": rnd.random() * 100, "tags": [rnd.choice("xyzw") for _ in range(3)],
            "nested": {"a": rnd.randrange(100)}, "pad": "x" * 40})


PRAGMAS = ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA cache_size=-262144"]


def run(binding, path):
    if binding == "sqlite3":
        con = sqlite3.connect(path, isolation_level=None)
    else:
        con = apsw.Connection(path)
    for p in PRAGMAS:
        con.execute(p).fetchall()
    con.execute("CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB)")
    items = list(docs(N))
    out = {}
    # single puts (each its own commit)
    t = time.perf_counter()
    for k, v in items[:5000]:
        con.execute("INSERT INTO kv VALUES(?,?)", (k, v))
    out["single put/s"] = 5000 / (time.perf_counter() - t)
    # batched puts
    t = time.perf_counter()
    for i in range(5000, N, 1000):
        con.execute("BEGIN")
        for k, v in items[i:i + 1000]:
            con.execute("INSERT INTO kv VALUES(?,?)", (k, v))
        con.execute("COMMIT")
    out["batch put/s"] = (N - 5000) / (time.perf_counter() - t)
    keys = [k for k, _ in random.Random(2).choices(items, k=50_000)]
    t = time.perf_counter()
    for k in keys:
        row = con.execute("SELECT value FROM kv WHERE key=?", (k,)).fetchone()
        orjson.loads(row[0])
    out["get/s"] = len(keys) / (time.perf_counter() - t)
    t = time.perf_counter()
    n = con.execute("SELECT count(*) FROM kv WHERE json_extract(value,'$.owner')='user7'").fetchone()[0]
    out["json scan ms"] = (time.perf_counter() - t) * 1000
    if binding == "apsw":
        con.execute("CREATE TABLE kvb(key TEXT PRIMARY KEY, value BLOB)")
        con.execute("INSERT INTO kvb SELECT key, jsonb(value) FROM kv")
        t = time.perf_counter()
        n2 = con.execute("SELECT count(*) FROM kvb WHERE json_extract(value,'$.owner')='user7'").fetchone()[0]
        out["jsonb scan ms"] = (time.perf_counter() - t) * 1000
        assert n == n2
        t = time.perf_counter()
        for k in keys[:20000]:
            row = con.execute("SELECT json(value) FROM kvb WHERE key=?", (k,)).fetchone()
            orjson.loads(row[0])
        out["jsonb get/s"] = 20000 / (time.perf_counter() - t)
    con.close()
    return out


def main():
    results = {"sqlite3": [], "apsw": []}
    for _ in range(ROUNDS):
        for b in ("sqlite3", "apsw"):  # interleaved, so drift hits both
            with tempfile.TemporaryDirectory() as d:
                results[b].append(run(b, os.path.join(d, "x.db")))
    print(f"N={N}, median of {ROUNDS} interleaved rounds;"
          f" sqlite3 {sqlite3.sqlite_version}, apsw {apsw.sqlite_lib_version()}")
    keys = results["apsw"][0].keys()
    for k in keys:
        a = statistics.median(x[k] for x in results["apsw"])
        if k in results["sqlite3"][0]:
            s = statistics.median(x[k] for x in results["sqlite3"])
            print(f"{k:16s} sqlite3 {s:12,.1f}  apsw {a:12,.1f}  apsw/sqlite3 {a / s:5.2f}")
        else:
            print(f"{k:16s} {'':20s} apsw {a:12,.1f}")


if __name__ == "__main__":
    main()
