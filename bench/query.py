"""Query benchmark: kuradb's query engine against hand-written SQL (the floor) and TinyDB.

Run:  python bench/query.py [--sizes 100000,1000000] [--rounds 7] [--tinydb 100000] [--postgres URL]

One run per size, every system on the same documents
``{type (3 values), name, owner (1 of 1,000), score float, tags [3], nested {a int}, text}``:

- the floor: a plain ``(id TEXT PRIMARY KEY, body JSONB)`` table through the same
  binding (apsw), queried with the SQL a person would write, with the same
  expression indexes and a contentless FTS5 table for text;
- kuradb through its public API (find / aggregate / search_text);
- TinyDB (default JSON file storage) at 100,000 documents;
- with ``--postgres URL``: kuradb on PostgreSQL (the same API calls and indexes) and the
  PostgreSQL floor: a plain ``(id text PRIMARY KEY, body jsonb)`` table on the same server
  through the same driver (psycopg 3), with expression indexes and a GIN index over
  ``to_tsvector('simple', body->>'text')`` ranked by ``ts_rank``, each in a schema of its own
  (dropped at the end). Before each query is timed, both PostgreSQL systems must return the
  same number of results for the same parameters.

Queries (each with parameters varied per call, so no result cache helps):
equality on owner (~0.1% of documents) without and with an index, range on
score (~1%) with an index, sorted by score; count grouped by type; a 3-stage
aggregation (match, group by owner with an average, sort); a text search
(top 10 by BM25). Both sides materialize the results as Python dicts.
Phases are interleaved round-robin, rotating which system goes first; the
table quotes the median over rounds of each round's median time per query,
and the ratio floor time / kuradb time (1.0 = as fast as hand-written SQL).
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

TYPES = ["note", "canvas", "asset"]
TAGS = [f"tag{i}" for i in range(20)]
VOCABULARY = [f"w{i}" for i in range(5000)]


def make_docs(n: int, seed: int = 11) -> list[tuple[str, dict[str, Any]]]:
    rnd = random.Random(seed)
    return [(f"doc{i:08d}", {
        "type": rnd.choice(TYPES), "name": f"name {i}", "owner": f"owner{rnd.randrange(1000)}",
        "score": rnd.random() * 100, "tags": rnd.sample(TAGS, 3), "nested": {"a": rnd.randrange(1000)},
        "text": " ".join(rnd.choice(VOCABULARY) for _ in range(8)),
    }) for i in range(n)]


def fill(collection: Any, docs: list[tuple[str, dict[str, Any]]], batch: int = 10_000) -> None:
    """Load ``docs`` into a kuradb collection with put_many, ``batch`` per transaction."""
    for i in range(0, len(docs), batch):
        collection.put_many(docs[i:i + batch])


# -- the systems: each answers the same questions -------------------------------------------

class Kura:
    name = "kuradb"

    def __init__(self, d: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        self.store = kuradb.open(os.path.join(d, "kura"), durability="off")
        self.c = self.store.collection("docs")
        fill(self.c, docs)

    def index(self) -> None:
        self.c.create_index("owner")
        self.c.create_index("score")
        self.c.create_text_index(["text"])

    def eq(self, owner: str) -> int:
        return len([r.content for r in self.c.find({"owner": owner})])

    def range(self, lo: float) -> int:
        return len([r.content for r in self.c.find({"score": {"$gte": lo, "$lt": lo + 1}}, sort="score")])

    def group(self, _: Any) -> int:
        return len(self.c.aggregate([{"$group": {"_id": "$type", "n": {"$count": {}}}}]))

    def pipeline(self, cut: int) -> int:
        return len(self.c.aggregate([{"$match": {"nested.a": {"$lt": cut}}},
                                     {"$group": {"_id": "$owner", "avg": {"$avg": "$score"}}},
                                     {"$sort": "-avg"}]))

    def text(self, word: str) -> int:
        return len([h.record.content for h in self.c.search_text(word, limit=10)])

    def close(self) -> None:
        self.store.close()


class Floor:
    name = "hand-written SQL"

    def __init__(self, d: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        self.conn = apsw.Connection(os.path.join(d, "floor.db"))
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-131072"):
            self.conn.execute(f"PRAGMA {pragma}").fetchall()
        self.conn.execute("CREATE TABLE docs(id TEXT PRIMARY KEY, body BLOB NOT NULL)")
        for i in range(0, len(docs), 10_000):
            with self.conn:
                self.conn.executemany("INSERT INTO docs VALUES(?, jsonb(?))",
                                      [(k, orjson.dumps(v)) for k, v in docs[i:i + 10_000]])

    def index(self) -> None:
        with self.conn:
            self.conn.execute("CREATE INDEX by_owner ON docs(json_extract(body, '$.owner'));"
                              " CREATE INDEX by_score ON docs(json_extract(body, '$.score'));"
                              " CREATE VIRTUAL TABLE fts USING fts5(text, content='',"
                              " tokenize='unicode61 remove_diacritics 2');"
                              " INSERT INTO fts(rowid, text) SELECT rowid, json_extract(body, '$.text') FROM docs;"
                              " ANALYZE")

    def _rows(self, sql: str, args: tuple[Any, ...]) -> int:
        return len([(i, orjson.loads(t)) for i, t in self.conn.execute(sql, args)])

    def eq(self, owner: str) -> int:
        return self._rows("SELECT id, json(body) FROM docs WHERE json_extract(body, '$.owner') = ?", (owner,))

    def range(self, lo: float) -> int:
        return self._rows("SELECT id, json(body) FROM docs WHERE json_extract(body, '$.score') >= ?"
                          " AND json_extract(body, '$.score') < ? ORDER BY json_extract(body, '$.score')",
                          (lo, lo + 1))

    def group(self, _: Any) -> int:
        return len(self.conn.execute("SELECT json_extract(body, '$.type'), count(*) FROM docs GROUP BY 1")
                   .fetchall())

    def pipeline(self, cut: int) -> int:
        return len(self.conn.execute(
            "SELECT json_extract(body, '$.owner') AS o, avg(json_extract(body, '$.score')) AS a FROM docs"
            " WHERE json_extract(body, '$.nested.a') < ? GROUP BY o ORDER BY a DESC", (cut,)).fetchall())

    def text(self, word: str) -> int:
        return self._rows("SELECT d.id, json(d.body) FROM fts JOIN docs AS d ON d.rowid = fts.rowid"
                          " WHERE fts MATCH ? ORDER BY bm25(fts) LIMIT 10", (f'"{word}"',))

    def close(self) -> None:
        self.conn.close()


class KuraPostgres(Kura):
    """kuradb on PostgreSQL (``--postgres URL``): a schema of its own, dropped at the end."""

    name = "kuradb (PostgreSQL)"
    URL = ""

    def __init__(self, d: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        self.schema = "qbench_" + os.path.basename(d).replace("-", "_").lower()
        self.store = kuradb.open(f"{self.URL}?schema={self.schema}", durability="off")
        self.c = self.store.collection("docs")
        fill(self.c, docs)

    def close(self) -> None:
        self.store.backend.drop()
        self.store.close()


class PgFloor:
    """The PostgreSQL floor: a plain (id, body jsonb) table through the same driver (psycopg 3),
    queried with the SQL a person would write in PostgreSQL; rows become dicts through orjson."""

    name = "PostgreSQL floor"
    URL = ""
    SCORE = "((body->>'score')::float8)"
    TSV = "to_tsvector('simple', body->>'text')"

    def __init__(self, d: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        import psycopg

        self.schema = "qfloor_" + os.path.basename(d).replace("-", "_").lower()
        self.conn = psycopg.connect(self.URL, autocommit=True)
        self.conn.execute(f"CREATE SCHEMA {self.schema}")
        self.conn.execute(f"SET search_path TO {self.schema}")
        self.conn.execute('CREATE TABLE docs(id text COLLATE "C" PRIMARY KEY, body jsonb NOT NULL)')
        cur = self.conn.cursor()
        for i in range(0, len(docs), 10_000):
            with self.conn.transaction(), cur.copy("COPY docs (id, body) FROM STDIN") as copy:
                for k, v in docs[i:i + 10_000]:
                    copy.write_row((k, orjson.dumps(v).decode()))
        self.conn.execute("ANALYZE docs")
        self.cur = self.conn.cursor()

    def index(self) -> None:
        for stmt in ("CREATE INDEX by_owner ON docs((body->>'owner'))",
                     f"CREATE INDEX by_score ON docs({self.SCORE})",
                     f"CREATE INDEX by_text ON docs USING gin({self.TSV})",
                     "ANALYZE docs"):
            self.conn.execute(stmt)

    def _rows(self, sql: str, args: tuple[Any, ...]) -> int:
        return len([(i, orjson.loads(t)) for i, t in self.cur.execute(sql, args)])

    def eq(self, owner: str) -> int:
        return self._rows("SELECT id, body::text FROM docs WHERE body->>'owner' = %s", (owner,))

    def range(self, lo: float) -> int:
        return self._rows(f"SELECT id, body::text FROM docs WHERE {self.SCORE} >= %s AND {self.SCORE} < %s"
                          f" ORDER BY {self.SCORE}", (lo, lo + 1))

    def group(self, _: Any) -> int:
        return len(self.cur.execute("SELECT body->>'type', count(*) FROM docs GROUP BY 1").fetchall())

    def pipeline(self, cut: int) -> int:
        return len(self.cur.execute(
            f"SELECT body->>'owner' AS o, avg({self.SCORE}) AS a FROM docs"
            " WHERE (body->'nested'->>'a')::float8 < %s GROUP BY o ORDER BY a DESC", (cut,)).fetchall())

    def text(self, word: str) -> int:
        return self._rows(f"SELECT id, body::text FROM docs, plainto_tsquery('simple', %s) AS q"
                          f" WHERE {self.TSV} @@ q ORDER BY ts_rank({self.TSV}, q) DESC LIMIT 10", (word,))

    def close(self) -> None:
        self.conn.execute(f"DROP SCHEMA {self.schema} CASCADE")
        self.conn.close()


class Tiny:
    name = "TinyDB"

    def __init__(self, d: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
        import tinydb

        self.q = tinydb.Query()
        self.db = tinydb.TinyDB(os.path.join(d, "tiny.json"))
        self.db.insert_multiple({"_key": k, **v} for k, v in docs)

    def index(self) -> None:
        pass  # TinyDB has no indexes

    def eq(self, owner: str) -> int:
        self.db.clear_cache()
        return len(self.db.search(self.q.owner == owner))

    def range(self, lo: float) -> int:
        self.db.clear_cache()
        return len(sorted(self.db.search((self.q.score >= lo) & (self.q.score < lo + 1)), key=lambda d: d["score"]))

    def group(self, _: Any) -> int:
        counts: dict[str, int] = {}
        for d in self.db.all():
            counts[d["type"]] = counts.get(d["type"], 0) + 1
        return len(counts)

    def pipeline(self, cut: int) -> int:
        self.db.clear_cache()
        sums: dict[str, list[float]] = {}
        for d in self.db.search(self.q.nested.a < cut):
            s = sums.setdefault(d["owner"], [0.0, 0])
            s[0] += d["score"]
            s[1] += 1
        return len(sorted(((o, t / n) for o, (t, n) in sums.items()), key=lambda x: -x[1]))

    def text(self, word: str) -> int:
        self.db.clear_cache()
        return len(self.db.search(self.q.text.search(rf"\b{word}\b"))[:10])  # no ranking: a lower bound

    def close(self) -> None:
        self.db.close()


# -- measuring ------------------------------------------------------------------------

def per_query(fn: Callable[[Any], int], params: list[Any], budget: float) -> tuple[float, int]:
    """Median seconds per call over ``params`` (stops early past ``budget`` seconds), and hits."""
    times, hits, started = [], 0, time.perf_counter()
    for p in params:
        t = time.perf_counter()
        hits += fn(p)
        times.append(time.perf_counter() - t)
        if time.perf_counter() - started > budget:
            break
    return statistics.median(times), hits // len(times)


def phase(systems: list[Any], op: str, params: list[Any], rounds: int, budget: float,
          results: dict[tuple[str, str], list[float]], hits: dict[str, int]) -> None:
    for r in range(rounds):
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        for s in order:
            t, h = per_query(getattr(s, op), params, budget)
            results.setdefault((op, s.name), []).append(t)
            hits[op] = h


OPS = [("eq", "equality on owner, no index", "eq_noindex"), ("range", "range on score, no index", "range_noindex"),
       ("pipeline", "3-stage aggregation (match, group, sort)", "pipeline"),
       ("group", "count grouped by type", "group"),
       ("eq", "equality on owner, indexed", "eq_indexed"), ("range", "range on score (1%), indexed, sorted",
                                                            "range_indexed"),
       ("text", "text search, top 10 by BM25", "text")]


def same_hits(systems: list[Any], op: str, params: list[Any]) -> None:
    """The PostgreSQL systems must agree with each other (and kuradb with kuradb) on every result count."""
    names = [s.name for s in systems]
    pairs = [(a, b) for a, b in ((KuraPostgres.name, PgFloor.name), (KuraPostgres.name, Kura.name))
             if a in names and b in names]
    by_name = {s.name: s for s in systems}
    for a, b in pairs:
        for p in params:
            ha, hb = getattr(by_name[a], op)(p), getattr(by_name[b], op)(p)
            assert ha == hb, f"{op}({p!r}): {a} returned {ha} results, {b} {hb}"


def run_size(n: int, rounds: int, with_tiny: bool, postgres: bool = False
             ) -> tuple[dict[tuple[str, str], list[float]], dict[str, int], list[str], dict[str, float]]:
    docs = make_docs(n)
    d = tempfile.mkdtemp(prefix="kuradb-query-bench-")
    loads: dict[str, float] = {}
    systems: list[Any] = []
    try:
        classes: tuple[Any, ...] = (Kura, Floor) + ((KuraPostgres, PgFloor) if postgres else ())
        for cls in classes + ((Tiny,) if with_tiny else ()):
            t = time.perf_counter()
            systems.append(cls(d, docs))
            loads[cls.name] = time.perf_counter() - t
            print(f"  loaded {n:,} into {cls.name} in {loads[cls.name]:.1f} s", file=sys.stderr)
        rnd = random.Random(3)
        owners = [f"owner{rnd.randrange(1000)}" for _ in range(40)]
        lows = [rnd.random() * 99 for _ in range(40)]
        cuts = [rnd.randrange(200, 800) for _ in range(10)]
        words = [rnd.choice(VOCABULARY) for _ in range(40)]
        params = {"eq": owners, "range": lows, "group": [None] * 5, "pipeline": cuts, "text": words}
        results: dict[tuple[str, str], list[float]] = {}
        hits: dict[str, int] = {}
        budget = 2.0 if n <= 100_000 else 6.0
        for s in systems:  # warm the page cache for every system alike
            s.group(None)
        for op, _, key in OPS:
            if key == "eq_indexed":
                for s in systems:
                    t = time.perf_counter()
                    s.index()
                    print(f"  indexed {s.name} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            slow = [s for s in systems if s.name == "TinyDB"]
            fast = [s for s in systems if s.name != "TinyDB"]
            same_hits(fast, op, params[op][:3])
            res: dict[tuple[str, str], list[float]] = {}
            phase(fast, op, params[op], rounds, budget, res, hits)
            if slow:
                phase(slow, op, params[op][:3], max(3, rounds // 2), budget, res, {})
            for (_, name), ts in res.items():
                results[(key, name)] = ts
            print(f"  {key}: done", file=sys.stderr)
        return results, hits, [s.name for s in systems], loads
    finally:
        for s in systems:
            s.close()
        shutil.rmtree(d, ignore_errors=True)


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:,.0f} µs"


def print_postgres(med: dict[tuple[str, str], float], hits: dict[str, int]) -> None:
    """The PostgreSQL rows: kuradb on PostgreSQL against the PostgreSQL floor and kuradb on SQLite."""
    print("\nPostgreSQL: floor time ÷ kuradb (PostgreSQL) time, and kuradb (SQLite) time ÷ kuradb (PostgreSQL)"
          " time (1.0 = as fast)\n")
    print("| query | hits | kuradb (PostgreSQL) | PostgreSQL floor | ÷ PostgreSQL floor | kuradb (SQLite)"
          " | ÷ kuradb (SQLite) |")
    print("|---|---|---|---|---|---|---|")
    for op, label, key in OPS:
        k, f, s = med[(key, KuraPostgres.name)], med[(key, PgFloor.name)], med[(key, Kura.name)]
        print(f"| {label} | {hits.get(op, 0):,} | {fmt(k)} | {fmt(f)} | {f / k:.2f}× | {fmt(s)} | {s / k:.2f}× |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tinydb", type=int, default=100_000, help="run TinyDB at this size only")
    ap.add_argument("--postgres", metavar="URL", default="",
                    help="also run kuradb on PostgreSQL and the PostgreSQL floor on this server")
    args = ap.parse_args()
    KuraPostgres.URL = PgFloor.URL = args.postgres
    print(f"kuradb query benchmark; apsw {apsw.apsw_version()}, SQLite {apsw.sqlite_lib_version()},"
          f" Python {sys.version.split()[0]}; medians of {args.rounds} interleaved rounds\n")
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"running {n:,} documents...", file=sys.stderr)
        results, hits, names, loads = run_size(n, args.rounds, n == args.tinydb, bool(args.postgres))
        med = {k: statistics.median(v) for k, v in results.items()}
        tiny = "TinyDB" in names
        print(f"### {n:,} documents\n")
        head = "| query | hits | kuradb | hand-written SQL | kuradb ÷ floor |" + (" TinyDB | kuradb vs TinyDB |" if tiny
                                                                              else "")
        print(head)
        print("|---" * (head.count("|") - 1) + "|")
        for op, label, key in OPS:
            k, f = med[(key, "kuradb")], med[(key, "hand-written SQL")]
            line = f"| {label} | {hits.get(op, 0):,} | {fmt(k)} | {fmt(f)} | {f / k:.2f}× |"
            if tiny:
                t = med[(key, "TinyDB")]
                line += f" {fmt(t)} | {t / k:,.0f}× faster |"
            print(line)
        if KuraPostgres.name in names:
            print_postgres(med, hits)
        print("\nLoad: " + ", ".join(f"{name} {loads[name]:.1f} s" for name in names) + "\n")


if __name__ == "__main__":
    main()
