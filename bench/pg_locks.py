"""How PostgreSQL writers keep change-log positions in commit order, and what each way costs.

Run: python bench/pg_locks.py [--url postgresql://postgres@127.0.0.1:5432/test] [--txns 2000] [--rounds 5]
                              [--processes 4]

Each write transaction appends one row at ``max(position) + 1`` (what kuradb's
ChangeLog does) to a table of its own schema, through psycopg 3, one process:

- none: no lock (the floor; positions collide under concurrency, so it is not a choice)
- advisory: ``pg_advisory_xact_lock(key)`` sent with ``BEGIN`` (kuradb's choice)
- table lock: ``LOCK TABLE ... IN EXCLUSIVE MODE`` (eventsourcing's postgres.py)

then the same with ``--processes`` writers at once (commits/s in all; duplicate
positions counted). Medians of interleaved rounds.
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
import uuid

import psycopg
from psycopg import sql

WAYS = {
    "none": "BEGIN",
    "advisory": "BEGIN; SELECT pg_advisory_xact_lock(4242)",
    "table lock": "BEGIN; LOCK TABLE log IN EXCLUSIVE MODE",
}


def connect(url: str, schema: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}")


def run(url: str, schema: str, way: str, txns: int) -> tuple[float, int]:
    """(commits/s, duplicate-position errors) of ``txns`` transactions."""
    conn = connect(url, schema)
    cur = conn.cursor()
    errors = 0
    t = time.perf_counter()
    for _ in range(txns):
        try:
            cur.execute(WAYS[way])
            cur.execute("INSERT INTO log(position, body) SELECT coalesce(max(position), 0) + 1, %s FROM log",
                        ("x" * 150,))
            cur.execute("COMMIT")
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK")
            errors += 1
    rate = txns / (time.perf_counter() - t)
    conn.close()
    return rate, errors


def _worker(args: tuple[str, str, str, int]) -> tuple[float, int]:
    return run(*args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--txns", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--processes", type=int, default=4)
    args = ap.parse_args()
    schema = f"bench_locks_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.url, autocommit=True)
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    admin.execute(sql.SQL("CREATE TABLE {}.log(position bigint PRIMARY KEY, body text)").format(sql.Identifier(schema)))
    single: dict[str, list[float]] = {w: [] for w in WAYS}
    many: dict[str, list[float]] = {w: [] for w in WAYS}
    dupes: dict[str, int] = {w: 0 for w in WAYS}
    try:
        with multiprocessing.Pool(args.processes) as pool:
            for _ in range(args.rounds):
                for way in WAYS:
                    single[way].append(run(args.url, schema, way, args.txns)[0])
                for way in WAYS:
                    t = time.perf_counter()
                    out = pool.map(_worker, [(args.url, schema, way, args.txns // args.processes)] * args.processes)
                    many[way].append(sum(args.txns // args.processes for _ in out) / (time.perf_counter() - t))
                    dupes[way] += sum(e for _, e in out)
    finally:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        admin.close()
    v = psycopg.connect(args.url).info.server_version
    version = f"{v // 10000}.{v % 10000}"
    print(f"PostgreSQL {version}, psycopg {psycopg.__version__}; {args.txns} transactions per round,"
          f" medians of {args.rounds} rounds\n")
    print(f"| way | 1 process, commits/s | ÷ none | {args.processes} processes, commits/s in all"
          " | duplicate positions refused |\n|---|---|---|---|---|")
    base = statistics.median(single["none"])
    for way in WAYS:
        s, m = statistics.median(single[way]), statistics.median(many[way])
        print(f"| {way} | {s:,.0f} | {s / base:.2f}× | {m:,.0f} | {dupes[way]} |")


if __name__ == "__main__":
    main()
