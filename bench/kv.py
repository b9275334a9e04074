"""Key-value benchmark: kuradb against raw SQLite (the floor), diskcache, sqlitedict and TinyDB.

Run:  python bench/kv.py [--records 100000] [--rounds 10] [--open-records 1000000] [--postgres URL]

With ``--postgres URL`` kuradb on PostgreSQL runs too, beside the raw psycopg floor
(the same plain table shape on the same server, through the same driver).

One run, every system on the same ~200-byte JSON documents, interleaved in one
process. Operations: batched put (1,000 per transaction) to load the records,
single durable put (each its own commit, WAL + synchronous=NORMAL where the
system allows), get by id (random existing), get missing. Each operation runs
in rounds, round-robin across the systems, and the table quotes the median of
the rounds (the machines are noisy; drift hits every system alike). Gets follow
an untimed warm-up pass so every system reads from a warm page cache. TinyDB
rewrites its whole JSON file on every write, so it runs at a smaller size
against kuradb at that same size. Prints ops/s, p50/p99 and kuradb's ratios.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import apsw
import orjson

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
import kuradb  # noqa: E402

WORDS = "ink canvas harbour layer brush sketch colour light shadow paper frame glaze".split()


def make_docs(n: int, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    rnd = random.Random(seed)
    docs = []
    for i in range(n):
        docs.append((f"doc-{rnd.getrandbits(40):010x}-{i}", {
            "type": rnd.choice(["note", "canvas", "asset"]), "name": f"name-{i}",
            "owner": f"user{rnd.randrange(1000)}", "score": round(rnd.random() * 100, 3),
            "tags": rnd.sample(WORDS, 3), "nested": {"a": rnd.randrange(1000)},
            "text": " ".join(rnd.choice(WORDS) for _ in range(10)),
        }))
    return docs


class Rounds:
    """Collects per-op latencies and per-round throughput for one system and operation."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.rates: list[float] = []
        self.n = 0

    def run(self, fn: Callable[[Any], None], items: list[Any], per_call: int = 1) -> None:
        started = time.perf_counter()
        for item in items:
            t = time.perf_counter_ns()
            fn(item)
            self.latencies.append((time.perf_counter_ns() - t) / per_call)
        self.rates.append(len(items) * per_call / (time.perf_counter() - started))
        self.n += len(items) * per_call

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies)
        return {"ops_s": statistics.median(self.rates), "p50_us": lat[len(lat) // 2] / 1000,
                "p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000, "n": self.n}


# -- the systems: each gives load(batch), put(item), get(key) -------------------------------


class Kura:
    name = "kuradb"

    def __init__(self, d: str) -> None:
        self.store = kuradb.open(d)
        self.c = self.store.collection("bench")

    def load(self, batch):
        self.c.put_many(batch)

    def put(self, item):
        self.c.put(item[1], id=item[0])

    def get(self, key):
        r = self.c.get(key, None)
        return r and r.content

    def close(self):
        self.store.close()


class KuraTx(Kura):
    """kuradb with put() called 1,000 times inside one transaction (not put_many)."""

    name = "kuradb put() in tx"

    def load(self, batch):
        with self.store.transaction():
            for k, v in batch:
                self.c.put(v, id=k)


class KuraEncrypted(Kura):
    """kuradb with encryption at rest (needs the apsw-sqlite3mc build of apsw)."""

    name = "kuradb encrypted"

    def __init__(self, d: str) -> None:
        self.store = kuradb.open(d, encryption_key=bytes(range(32)))
        self.c = self.store.collection("bench")


class Raw:
    name = "raw SQLite"

    def __init__(self, d: str) -> None:
        self.conn = apsw.Connection(os.path.join(d, "raw.db"))
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-131072"):
            self.conn.execute(f"PRAGMA {pragma}").fetchall()
        self.conn.execute("CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB)")
        self.cur = self.conn.cursor()

    def load(self, batch):
        with self.conn:
            self.cur.executemany("INSERT OR REPLACE INTO kv VALUES(?, ?)",
                                 [(k, orjson.dumps(v)) for k, v in batch])

    def put(self, item):
        self.cur.execute("INSERT OR REPLACE INTO kv VALUES(?, ?)", (item[0], orjson.dumps(item[1])))

    def get(self, key):
        row = self.cur.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row and orjson.loads(row[0])

    def close(self):
        self.conn.close()


class KuraPostgres(Kura):
    """kuradb on PostgreSQL (``--postgres URL``): a schema of its own, dropped at the end."""

    name = "kuradb (PostgreSQL)"
    URL = ""

    def __init__(self, d: str) -> None:
        self.schema = "kvbench_" + os.path.basename(d).replace("-", "_").lower()
        self.store = kuradb.open(f"{self.URL}?schema={self.schema}")
        self.c = self.store.collection("bench")

    def close(self):
        self.store.backend.drop()
        self.store.close()


class RawPostgres:
    """The PostgreSQL floor: a plain (key, value) table through the same driver (psycopg 3), one
    statement per operation, a batch in one transaction through executemany (libpq's pipeline)."""

    name = "raw psycopg"
    URL = ""

    def __init__(self, d: str) -> None:
        import psycopg

        self.schema = "kvraw_" + os.path.basename(d).replace("-", "_").lower()
        self.conn = psycopg.connect(self.URL, autocommit=True)
        self.conn.execute(f"CREATE SCHEMA {self.schema}")
        self.conn.execute(f"CREATE TABLE {self.schema}.kv(key text COLLATE \"C\" PRIMARY KEY, value text)")
        self.conn.execute(f"SET search_path TO {self.schema}")
        self.cur = self.conn.cursor()

    _PUT = "INSERT INTO kv VALUES(%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value"

    def load(self, batch):
        with self.conn.transaction():
            self.cur.executemany(self._PUT, [(k, orjson.dumps(v).decode()) for k, v in batch])

    def put(self, item):
        self.cur.execute(self._PUT, (item[0], orjson.dumps(item[1]).decode()))

    def get(self, key):
        row = self.cur.execute("SELECT value FROM kv WHERE key=%s", (key,)).fetchone()
        return row and orjson.loads(row[0])

    def close(self):
        self.conn.execute(f"DROP SCHEMA {self.schema} CASCADE")
        self.conn.close()


class DiskCache:
    name = "diskcache"

    def __init__(self, d: str) -> None:
        import diskcache

        self.cache = diskcache.Cache(os.path.join(d, "dc"))

    def load(self, batch):
        with self.cache.transact():
            for k, v in batch:
                self.cache.set(k, v)

    def put(self, item):
        self.cache.set(item[0], item[1])

    def get(self, key):
        return self.cache.get(key)

    def close(self):
        self.cache.close()


class SqliteDict:
    name = "sqlitedict"

    def __init__(self, d: str) -> None:
        from sqlitedict import SqliteDict as SD

        path = os.path.join(d, "sd.sqlite")
        self.batch_db = SD(path, journal_mode="WAL", autocommit=False,
                           encode=orjson.dumps, decode=orjson.loads)
        self.db = SD(path, journal_mode="WAL", autocommit=True, encode=orjson.dumps, decode=orjson.loads)

    def load(self, batch):
        for k, v in batch:
            self.batch_db[k] = v
        self.batch_db.commit()

    def put(self, item):
        self.db[item[0]] = item[1]

    def get(self, key):
        return self.db.get(key)

    def close(self):
        self.batch_db.close()
        self.db.close()


class TinyDB:
    name = "TinyDB"

    def __init__(self, d: str) -> None:
        import tinydb

        self.db = tinydb.TinyDB(os.path.join(d, "tiny.json"))
        self.table = self.db.table("bench")
        self.ids: dict[str, int] = {}
        self.Document = tinydb.table.Document

    def load(self, batch):
        doc_ids = self.table.insert_multiple({"_key": k, **v} for k, v in batch)
        self.ids.update(zip((k for k, _ in batch), doc_ids, strict=True))

    def put(self, item):
        self.ids[item[0]] = self.table.insert({"_key": item[0], **item[1]})

    def get(self, key):
        doc_id = self.ids.get(key)  # TinyDB's fastest lookup: by its own integer doc_id
        return None if doc_id is None else self.table.get(doc_id=doc_id)

    def close(self):
        self.db.close()


SYSTEMS = [Kura, KuraTx, KuraEncrypted, Raw, DiskCache, SqliteDict, TinyDB]
POSTGRES = [KuraPostgres, RawPostgres]    # with --postgres URL
OPS = ["batched put", "single put", "get by id", "get missing"]


def interleaved(classes, docs, extra, lookups, missing, rounds, dirs):
    """Every operation runs in rounds, round-robin across systems, so drift hits all alike."""
    systems = [cls(d) for cls, d in zip(classes, dirs, strict=True)]
    stats = {s.name: {op: Rounds() for op in OPS} for s in systems}
    batches = [docs[i:i + 1000] for i in range(0, len(docs), 1000)]
    for batch in batches:  # each system loads this batch in turn
        for s in systems:
            stats[s.name]["batched put"].run(s.load, [batch], per_call=1000)
    chunk = len(extra) // rounds
    for r in range(rounds):
        for s in systems:
            stats[s.name]["single put"].run(s.put, extra[r * chunk:(r + 1) * chunk])
    for s in systems:  # untimed warm-up: kuradb's reader connection starts with a cold page cache
        for k in lookups[:20_000]:
            s.get(k)
    for op, keys in (("get by id", lookups), ("get missing", missing)):
        chunk = len(keys) // rounds
        for r in range(rounds):
            for s in systems:
                stats[s.name][op].run(s.get, keys[r * chunk:(r + 1) * chunk])
    kura = next((s for s in systems if isinstance(s, Kura)), None)
    if kura is not None:  # the reads returned the right documents
        want = dict(docs)
        assert all(kura.get(k) == want[k] for k in lookups[:1000])
        assert all(kura.get(k) is None for k in missing[:100])
    for s in systems:
        s.close()
    return {name: {op: r.summary() for op, r in ops.items()} for name, ops in stats.items()}


def bench_open(n: int) -> dict[str, float]:
    """Median time to open an n-record store and read one record."""
    d = os.path.join(tempfile.gettempdir(), f"kuradb-open-bench-{n}")
    if not os.path.exists(os.path.join(d, "kura.db")):
        shutil.rmtree(d, ignore_errors=True)
        with kuradb.open(d, durability="off") as s:
            c = s.collection("bench")
            for i in range(0, n, 10_000):
                c.put_many([(f"k{j:08d}", {"i": j, "pad": "x" * 150}) for j in range(i, min(n, i + 10_000))])
    times = []
    for _ in range(11):
        t = time.perf_counter()
        with kuradb.open(d) as s:
            s.collection("bench").get("k00000042")
            times.append(time.perf_counter() - t)
    with kuradb.open(d) as s:
        records = len(s.collection("bench"))
    return {"records": records, "median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--tinydb-records", type=int, default=5_000,
                    help="TinyDB rewrites its whole JSON file on every write, so it gets fewer")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--open-records", type=int, default=1_000_000)
    from kuradb.backends.sqlite import atrest

    ap.add_argument("--systems", default=",".join(c.name for c in SYSTEMS
                                                  if c is not KuraEncrypted or atrest.available()))
    ap.add_argument("--postgres", metavar="URL", default="",
                    help="also run kuradb on PostgreSQL and the raw psycopg floor on this server")
    args = ap.parse_args()

    wanted = set(args.systems.split(","))
    classes = [c for c in SYSTEMS if c.name in wanted and c is not TinyDB]
    if args.postgres:
        KuraPostgres.URL = RawPostgres.URL = args.postgres
        classes += POSTGRES
    rnd = random.Random(9)
    docs = make_docs(args.records)
    extra = make_docs(5000, seed=8)
    lookups = [k for k, _ in rnd.choices(docs, k=50_000)]
    missing = [f"missing-{i}" for i in range(50_000)]
    size = statistics.median(len(orjson.dumps(v)) for _, v in docs[:1000])
    dirs = [tempfile.mkdtemp(prefix="kvbench-") for _ in classes]
    try:
        print(f"... {', '.join(c.name for c in classes)}: {args.records:,} records", file=sys.stderr, flush=True)
        results = interleaved(classes, docs, extra, lookups, missing, args.rounds, dirs)
        if TinyDB.name in wanted:
            n = args.tinydb_records
            print(f"... TinyDB: {n:,} records (and kuradb again at that size)", file=sys.stderr, flush=True)
            small = [tempfile.mkdtemp(prefix="kvbench-") for _ in range(2)]
            dirs += small
            tiny = interleaved([Kura, TinyDB], docs[:n], extra[:200], [k for k, _ in rnd.choices(docs[:n], k=2000)],
                               missing[:2000], 4, small)
            results[f"TinyDB ({n:,})"] = tiny["TinyDB"]
            results[f"kuradb ({n:,})"] = tiny["kuradb"]
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)

    print(f"\n{args.records:,} records of ~{size:.0f}-byte JSON; medians of {args.rounds} interleaved rounds;"
          f" apsw {apsw.apsw_version()}, SQLite {apsw.sqlite_lib_version()}, Python {sys.version.split()[0]}\n")
    names = list(results)
    print("| operation | " + " | ".join(f"{n}" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for op in OPS:
        cells = [f"{r['ops_s']:,.0f}/s ({r['p50_us']:.1f} / {r['p99_us']:.0f} µs)"
                 for r in (results[n][op] for n in names)]
        print(f"| {op} | " + " | ".join(cells) + " |")
    print("\nops/s, then p50 / p99 latency per operation (per record for batched put).")
    if "kuradb" in results:
        peers = [(n, "kuradb") for n in names if n != "kuradb" and not n.startswith(("TinyDB", "kuradb ("))]
        peers += [(n, n.replace("TinyDB", "kuradb")) for n in names if n.startswith("TinyDB")]
        print("\nkuradb ÷ peer (ops/s; > 1 means kuradb is faster)\n")
        print("| operation | " + " | ".join(p for p, _ in peers) + " |")
        print("|---|" + "---|" * len(peers))
        for op in OPS:
            print(f"| {op} | " + " | ".join(
                f"{results[k][op]['ops_s'] / results[p][op]['ops_s']:.2f}×" for p, k in peers) + " |")
    if KuraPostgres.name in results and RawPostgres.name in results:
        print("\nkuradb on PostgreSQL ÷ raw psycopg (the PostgreSQL floor) and ÷ kuradb on SQLite\n")
        print("| operation | ÷ raw psycopg | ÷ kuradb (SQLite) |\n|---|---|---|")
        pg = results[KuraPostgres.name]
        for op in OPS:
            vs_sqlite = (f"{pg[op]['ops_s'] / results['kuradb'][op]['ops_s']:.2f}×" if "kuradb" in results else "")
            print(f"| {op} | {pg[op]['ops_s'] / results[RawPostgres.name][op]['ops_s']:.2f}× | {vs_sqlite} |")
    if args.open_records:
        o = bench_open(args.open_records)
        print(f"\nopen a {o['records']:,}-record store and read one record: median {o['median_ms']:.1f} ms"
              f" (max {o['max_ms']:.1f} ms over 11 opens)")


if __name__ == "__main__":
    main()
