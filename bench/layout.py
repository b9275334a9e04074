"""Which table layout for records, history and the change log? Single-put commits per layout.

Run: python bench/layout.py
Raw SQL only (no kuradb code): each layout's statements for one put, each put its
own transaction, on a 50,000-row table with half new keys and half overwrites.

A: log indexed on (collection, id, version), docs with a unique index.
B: log chained by a prev pointer (no log index), docs with a unique index.  <- chosen
C: like B, with docs WITHOUT ROWID.
D: like A, with docs WITHOUT ROWID.
"""
from __future__ import annotations

import os
import random
import statistics
import tempfile
import time

import apsw
import orjson

DOC = orjson.dumps({"name": "x" * 20, "owner": "user1", "score": 1.5, "tags": ["a", "b", "c"],
                    "nested": {"a": 1}, "pad": "y" * 80}).decode()
LOG = "CREATE TABLE log(position INTEGER PRIMARY KEY, c, id, v, rev, t, created, at, a, ck, prev, body)"
LOG_INDEX = "CREATE INDEX li ON log(c, id, v)"
DOCS = "CREATE TABLE docs(c, id, v, rev, t, created, at, a, d, pos, ck, body, UNIQUE(c, id))"
DOCS_WR = "CREATE TABLE docs(c, id, v, rev, t, created, at, a, d, pos, ck, body, PRIMARY KEY(c, id)) WITHOUT ROWID"
INSERT_LOG = ("INSERT INTO log(c, id, v, rev, t, created, at, a, ck, body)"
              " VALUES('kv', ?, 1, ?, ?, ?, ?, ?, ?, jsonb(?))")
UPSERT_DOC = ("INSERT INTO docs VALUES('kv', ?, 1, ?, ?, ?, ?, ?, 0, last_insert_rowid(), ?, jsonb(?))"
              " ON CONFLICT(c, id) DO UPDATE SET v = v + 1")
LAYOUTS = {
    "A log+index, docs+index": [LOG, LOG_INDEX, DOCS],
    "B log chain, docs+index": [LOG, DOCS],
    "C log chain, docs WITHOUT ROWID": [LOG, DOCS_WR],
    "D log+index, docs WITHOUT ROWID": [LOG, LOG_INDEX, DOCS_WR],
}
ROW = ("1-0123456789abcdef0123456789abcdef", None, 1, 1, None, "0123456789abcdef0123456789abcdef", DOC)


def run(layout: str | None, n: int = 4000, preload: int = 50_000) -> float:
    con = apsw.Connection(os.path.join(tempfile.mkdtemp(), "x.db"))
    con.execute("PRAGMA journal_mode=WAL").fetchall()
    con.execute("PRAGMA synchronous=NORMAL")
    if layout is None:
        con.execute("CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB)")
    else:
        for ddl in LAYOUTS[layout]:
            con.execute(ddl)

    def write(key: str) -> None:
        if layout is None:
            con.execute("INSERT OR REPLACE INTO kv VALUES(?, jsonb(?))", (key, DOC))
        else:
            con.execute(INSERT_LOG, (key, *ROW))
            con.execute(UPSERT_DOC, (key, *ROW))

    keys = [f"key{random.randrange(10**9):09d}" for _ in range(preload)]
    with con:
        for k in keys:
            write(k)
    started = time.perf_counter()
    for i in range(n):
        key = f"key{random.randrange(10**9):09d}" if i % 2 else random.choice(keys)
        if layout is None:
            write(key)
        else:
            con.execute("BEGIN IMMEDIATE")
            con.execute("SELECT 1")  # stands in for the read of the current version
            write(key)
            con.execute("COMMIT")
    return n / (time.perf_counter() - started)


def main() -> None:
    results: dict[str, list[float]] = {"raw (key, value)": [], **{k: [] for k in LAYOUTS}}
    for _ in range(3):  # interleaved rounds
        results["raw (key, value)"].append(run(None))
        for layout in LAYOUTS:
            results[layout].append(run(layout))
    raw = statistics.median(results["raw (key, value)"])
    for name, rates in results.items():
        rate = statistics.median(rates)
        print(f"{name:34s} {rate:9,.0f}/s  {rate / raw:.2f}x raw")


if __name__ == "__main__":
    main()
