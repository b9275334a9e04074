"""How long store.verify() and store.repair() take, against SQLite's own integrity check (the floor).

Run:  python bench/verify.py [--records 100000] [--rounds 3]

A store of the query benchmark's documents, half of them updated once (two
versions), with an index and a text index. Prints the median of ``--rounds``
runs of each, interleaved, and verify's time ÷ ``PRAGMA integrity_check``'s.
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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))
from query import fill, make_docs  # noqa: E402

import kuradb  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="kuradb-verify-bench-")
    try:
        docs = make_docs(args.records)
        with kuradb.open(os.path.join(d, "s"), durability="off") as s:
            c = s.collection("docs")
            fill(c, docs)
            half = [(k, {**v, "score": -1.0}) for k, v in docs[::2]]
            fill(c, half)
            c.create_index("owner")
            c.create_text_index(["text"])
            times: dict[str, list[float]] = {"verify()": [], "PRAGMA integrity_check": [], "repair()": []}
            for _ in range(args.rounds):
                t = time.perf_counter()
                report = s.verify()
                times["verify()"].append(time.perf_counter() - t)
                assert report.ok, report.problems[:5]
                conn = apsw.Connection(s.backend.path)
                t = time.perf_counter()
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                times["PRAGMA integrity_check"].append(time.perf_counter() - t)
                conn.close()
                t = time.perf_counter()
                s.repair()
                times["repair()"].append(time.perf_counter() - t)
            size = os.path.getsize(s.backend.path)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{args.records:,} records ({args.records + len(half):,} versions), database {size / 2**20:,.0f} MiB;"
              f" medians of {args.rounds} rounds\n")
        print("| operation | time | ÷ integrity_check |\n|---|---|---|")
        for k, v in med.items():
            print(f"| {k} | {v:.2f} s | {v / med['PRAGMA integrity_check']:.2f}× |")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
