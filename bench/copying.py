"""Backups, restores and ``kuradb.copy`` of the same store on SQLite and on PostgreSQL.

Run:  python bench/copying.py [--records 20000] [--versions 3] [--rounds 3] [--url postgresql://postgres@127.0.0.1/test]

One store of ``--records`` records with ``--versions`` versions each (the query
benchmark's documents), a unique and a plain index and 20 blobs (10 small, 10
of 200 kB), made once in a directory and copied into a PostgreSQL schema. Then,
per round, on each backend: a full backup, an incremental after 1% changed, a
restore into a directory and into a new schema, and ``kuradb.copy`` into each
backend. Prints the median of each, and PostgreSQL's time over SQLite's.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))
from query import make_docs  # noqa: E402

import kuradb  # noqa: E402


def fill(s: kuradb.Store, records: int, versions: int) -> None:
    docs = make_docs(records)
    c = s.collection("docs")
    for v in range(versions):
        batch = [(f"d{i:07}", {**doc, "n": i, "v": v}) for i, (_, doc) in enumerate(docs)]
        for i in range(0, len(batch), 5000):
            c.put_many(batch[i:i + 5000])
    c.create_index("owner")
    c.create_index("n", unique=True)
    for i in range(20):
        ref = s.blobs.put(os.urandom(200_000 if i % 2 else 1000))
        c.put({"n": -i - 1, "file": ref}, id=f"blob{i}")


def timed(out: dict[str, list[float]], what: str, fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn(*args, **kwargs)
    out.setdefault(what, []).append(time.perf_counter() - t)


def drop(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--versions", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="kuradb-copy-bench-")
    prefix = f"kb_{uuid.uuid4().hex[:8]}"
    schemas: list[str] = []

    def schema(name: str) -> str:
        schemas.append(f"{prefix}_{name}")
        return f"{args.url}?schema={prefix}_{name}"

    try:
        stores = {"sqlite": os.path.join(d, "src"), "postgres": schema("src")}
        t = time.perf_counter()
        with kuradb.open(stores["sqlite"], durability="off") as s:
            fill(s, args.records, args.versions)
            entries = s.position
        print(f"store: {args.records} records x {args.versions} versions, {entries} change-log entries"
              f" (made in {time.perf_counter() - t:.1f}s)")
        kuradb.copy(stores["sqlite"], stores["postgres"])
        times: dict[str, dict[str, list[float]]] = {"sqlite": {}, "postgres": {}}
        n = 0
        for r in range(args.rounds):
            for engine, location in stores.items():
                out = times[engine]
                n += 1
                bk = os.path.join(d, f"bk{n}")
                with kuradb.open(location) as s:
                    timed(out, "full backup", s.backup, bk)
                    c = s["docs"]
                    c.put_many([(f"d{i:07}", {"n": i, "changed": r}) for i in range(0, args.records, 100)])
                    timed(out, "incremental backup (1% changed)", s.backup, bk, kind="incremental")
                    s["docs"].put_many([(f"d{i:07}", {"n": i, "back": r}) for i in range(0, args.records, 100)])
                timed(out, "restore into a directory", kuradb.backups.restore, bk, os.path.join(d, f"r{n}"))
                target = schema(f"r{n}")
                timed(out, "restore into a PostgreSQL schema", kuradb.backups.restore, bk, target)
                timed(out, "copy into a directory", kuradb.copy, location, os.path.join(d, f"c{n}"))
                target = schema(f"c{n}")
                timed(out, "copy into a PostgreSQL schema", kuradb.copy, location, target)
                for name in (f"r{n}", f"c{n}", f"bk{n}"):
                    shutil.rmtree(os.path.join(d, name), ignore_errors=True)
                for name in (f"r{n}", f"c{n}"):
                    drop(args.url, f"{prefix}_{name}")
        print(f"{'median seconds':40} {'SQLite store':>13} {'PostgreSQL store':>17} {'PG/SQLite':>10}")
        for what in times["sqlite"]:
            a, b = statistics.median(times["sqlite"][what]), statistics.median(times["postgres"][what])
            print(f"{what:40} {a:13.2f} {b:17.2f} {b / a:9.2f}x")
    finally:
        shutil.rmtree(d, ignore_errors=True)
        for name in schemas:
            drop(args.url, name)


if __name__ == "__main__":
    main()
