"""Full backup and restore against SQLite's own copies (the floor), and the zstd level for the copy.

Run:  python bench/backup.py [--records 300000] [--rounds 3]

A store of the query benchmark's documents. In the same run, interleaved:
kuradb's ``store.backup()`` and ``kuradb.backups.restore()`` (which verifies
the restored store), SQLite's online backup API to a file, and ``VACUUM
INTO``. Then zstd levels 1 and 3 on the database copy. Prints medians,
MB/s of database bytes, and ratios.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import apsw
import zstandard

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))
from query import fill, make_docs  # noqa: E402

import kuradb  # noqa: E402


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
            s._backend._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        db = os.path.join(store_dir, "kura.db")
        mb = os.path.getsize(db) / 1e6
        times: dict[str, list[float]] = {k: [] for k in (
            "store.backup() (copy + zstd + manifest)", "backups.restore() (checks + verify)",
            "SQLite backup API to a file", "VACUUM INTO")}
        with kuradb.open(store_dir) as s:
            for r in range(args.rounds):
                bk = os.path.join(d, f"bk{r}")
                t = time.perf_counter()
                s.backup(bk)
                times["store.backup() (copy + zstd + manifest)"].append(time.perf_counter() - t)
                t = time.perf_counter()
                kuradb.backups.restore(bk, os.path.join(d, f"restored{r}"))
                times["backups.restore() (checks + verify)"].append(time.perf_counter() - t)
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
        print("\n| zstd level | time | MB/s | ratio |\n|---|---|---|---|")
        for level, (t, ratio) in levels.items():
            print(f"| {level} | {t:.2f} s | {len(copy) / 1e6 / t:,.0f} | {ratio:.2f}× |")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
