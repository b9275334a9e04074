"""Backups and restores against SQLite's own copies (the floor), incremental vs full, reopen after kill -9.

Run:  python bench/backup.py [--records 300000] [--rounds 3]      (--records 1600000: a ~1 GB store)

A store of the query benchmark's documents. In the same run, interleaved:
kuradb's ``store.backup()`` (plain and encrypted) and ``kuradb.backups.restore()``
(which verifies the restored store), SQLite's online backup API to a file, and
``VACUUM INTO``; the damage check a backup runs on its copy (``quick_check`` and
every body's JSONB) against ``integrity_check``. Then, per round, 1% of the records changed and an incremental
backup taken, against the full backup's time; a point-in-time restore in the
middle of those changes; zstd levels 1 and 3 on the database copy; and the time
to reopen the store and read a record after ``kill -9`` of a process writing to
it. Prints medians, MB/s of database bytes, and ratios.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import apsw
import zstandard

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))
from query import fill, make_docs  # noqa: E402

import kuradb  # noqa: E402
from kuradb.backends.sqlite import damage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="kuradb-backup-bench-")
    try:
        docs = make_docs(args.records)
        store_dir = os.path.join(d, "s")
        with kuradb.open(store_dir, durability="off") as s:
            c = s.collection("docs")
            fill(c, docs)
            c.create_index("owner")
        db = os.path.join(store_dir, "kura.db")
        mb = os.path.getsize(db) / 1e6
        full, restore = "store.backup() (copy + zstd + manifest)", "backups.restore() (checks + verify)"
        sealed, sealed_restore = "store.backup(encryption_key=...)", "backups.restore() of it"
        times: dict[str, list[float]] = {k: [] for k in (
            full, restore, sealed, sealed_restore, "SQLite backup API to a file", "VACUUM INTO")}
        inc_times: dict[str, list[float]] = {k: [] for k in (
            "changing 1% of records (put_many)", "incremental backup after 1% changed",
            "point-in-time restore (full + replay of half the 1%)")}
        inc_sizes: list[float] = []
        checks: dict[str, list[float]] = {k: [] for k in (
            "PRAGMA quick_check", "every body well-formed JSONB (json_valid)",
            "the backup's check (both: damage.copy_problems)", "PRAGMA integrity_check (not used: indexes too)")}
        rnd = random.Random(3)
        key = os.urandom(32)
        with kuradb.open(store_dir) as s:
            for r in range(args.rounds):
                bk = os.path.join(d, f"bk{r}")
                t = time.perf_counter()
                s.backup(bk)
                times[full].append(time.perf_counter() - t)
                t = time.perf_counter()
                kuradb.backups.restore(bk, os.path.join(d, f"restored{r}"))
                times[restore].append(time.perf_counter() - t)
                shutil.rmtree(os.path.join(d, f"restored{r}"))
                t = time.perf_counter()
                s.backup(os.path.join(d, f"sealed{r}"), encryption_key=key)
                times[sealed].append(time.perf_counter() - t)
                t = time.perf_counter()
                kuradb.backups.restore(os.path.join(d, f"sealed{r}"), os.path.join(d, f"opened{r}"),
                                       encryption_key=key)
                times[sealed_restore].append(time.perf_counter() - t)
                shutil.rmtree(os.path.join(d, f"opened{r}"))
                shutil.rmtree(os.path.join(d, f"sealed{r}"))
                changed = [(i, {**doc, "score": -r}) for i, doc in rnd.sample(docs, len(docs) // 100)]
                t = time.perf_counter()
                half = len(changed) // 2
                fill(s.collection("docs"), changed[:half])
                middle = s.position
                fill(s.collection("docs"), changed[half:])
                inc_times["changing 1% of records (put_many)"].append(time.perf_counter() - t)
                t = time.perf_counter()
                inc = s.backup(bk, kind="incremental")
                inc_times["incremental backup after 1% changed"].append(time.perf_counter() - t)
                assert inc.kind == "incremental"
                inc_sizes.append(inc.size / kuradb.backups.list(bk)[0].size)
                t = time.perf_counter()
                kuradb.backups.restore(bk, os.path.join(d, f"pitr{r}"), until=middle)
                inc_times["point-in-time restore (full + replay of half the 1%)"].append(time.perf_counter() - t)
                shutil.rmtree(os.path.join(d, f"pitr{r}"))
                src = apsw.Connection(db)
                target = os.path.join(d, f"api{r}.db")
                t = time.perf_counter()
                dest = apsw.Connection(target)
                with dest.backup("main", src, "main") as b:
                    while not b.done:
                        b.step(-1)
                dest.close()
                times["SQLite backup API to a file"].append(time.perf_counter() - t)
                t = time.perf_counter()
                src.execute(f"VACUUM INTO '{os.path.join(d, f'vacuum{r}.db')}'")
                times["VACUUM INTO"].append(time.perf_counter() - t)
                src.close()
                copy_conn = apsw.Connection(target)   # what store.backup() checks before keeping its copy
                t = time.perf_counter()
                assert copy_conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
                checks["PRAGMA quick_check"].append(time.perf_counter() - t)
                t = time.perf_counter()
                copy_conn.execute("SELECT count(*) FROM log WHERE body IS NOT NULL"
                                  " AND NOT json_valid(body, 8)").fetchall()
                checks["every body well-formed JSONB (json_valid)"].append(time.perf_counter() - t)
                t = time.perf_counter()
                assert damage.copy_problems(copy_conn) == []
                checks["the backup's check (both: damage.copy_problems)"].append(time.perf_counter() - t)
                t = time.perf_counter()
                assert copy_conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                checks["PRAGMA integrity_check (not used: indexes too)"].append(time.perf_counter() - t)
                copy_conn.close()
        copy = open(os.path.join(d, "api0.db"), "rb").read()
        levels = {}
        for level in (1, 3):
            ts = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                packed = zstandard.ZstdCompressor(level=level).compress(copy)
                ts.append(time.perf_counter() - t)
            levels[level] = (statistics.median(ts), len(copy) / len(packed))
        med = {k: statistics.median(v) for k, v in times.items()}
        floor = med["SQLite backup API to a file"]
        print(f"{args.records:,} records, database {mb:,.0f} MB; medians of {args.rounds} rounds\n")
        print("| operation | time | MB/s | ÷ backup API |\n|---|---|---|---|")
        for k, v in med.items():
            print(f"| {k} | {v:.2f} s | {mb / v:,.0f} | {v / floor:.2f}× |")
        print(f"\n| after changing 1% ({len(docs) // 100:,} records) | time | ÷ full backup |\n|---|---|---|")
        for k, v in inc_times.items():
            m = statistics.median(v)
            print(f"| {k} | {m:.2f} s | {m / med[full]:.3f}× |")
        print(f"\nincremental backup size ÷ full backup size: {statistics.median(inc_sizes):.3f}")
        print("\n| damage check of the database copy | time | ÷ full backup |\n|---|---|---|")
        for k, v in checks.items():
            m = statistics.median(v)
            print(f"| {k} | {m:.2f} s | {m / med[full]:.3f}× |")
        print("\n" + reopen_after_kill(store_dir, args.rounds))
        print("\n| zstd level | time | MB/s | ratio |\n|---|---|---|---|")
        for level, (t, ratio) in levels.items():
            print(f"| {level} | {t:.2f} s | {len(copy) / 1e6 / t:,.0f} | {ratio:.2f}× |")
    finally:
        shutil.rmtree(d, ignore_errors=True)


WRITER = """
import sys, kuradb
with kuradb.open(sys.argv[1]) as s:
    c = s.collection("load")
    print("ready", flush=True)
    i = 0
    while True:
        c.put_many([(f"k{i}-{j}", {"i": i, "pad": "x" * 500}) for j in range(50)])
        i += 1
"""


def reopen_after_kill(store_dir: str, rounds: int) -> str:
    """A process writing in a loop is killed with SIGKILL; the time to open the store and read a record."""
    ts = []
    for _ in range(rounds):
        p = subprocess.Popen([sys.executable, "-c", WRITER, store_dir], stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")})
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
        time.sleep(1.0)
        p.send_signal(signal.SIGKILL)
        p.wait()
        wal = os.path.getsize(os.path.join(store_dir, "kura.db-wal")) / 1e6
        t = time.perf_counter()
        with kuradb.open(store_dir) as s:
            s.collection("docs").get("doc00000001")
            ts.append(time.perf_counter() - t)
    return (f"reopen + first read after kill -9 of a writer ({wal:.0f} MB of WAL): median {statistics.median(ts):.3f} s"
            f" of {rounds} (seed target < 60 s; ours < 1 s)")


if __name__ == "__main__":
    main()
