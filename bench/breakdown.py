"""Where a single put and a get by id spend their time: kuradb's pieces timed alone, beside the raw floor.

Run: python bench/breakdown.py [--records 100000] [--ops 20000] [--rounds 7]

A store and a raw ``(key TEXT PRIMARY KEY, value BLOB)`` table (bench/kv.py's
floor) are loaded with the same records; then, interleaved per round, each piece
is timed over ``--ops`` random existing keys and the median µs per operation
printed. The pieces are what the write and read paths call, through the
modules' own functions; "the rest" is the whole operation minus its pieces
(the writes and their commit for a put, the Python between the calls).
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
sys.path.insert(0, os.path.dirname(__file__))
from kv import make_docs  # noqa: E402

import kuradb  # noqa: E402
from kuradb import audit  # noqa: E402
from kuradb.encoding import content_digest, encode_content, rev_digest  # noqa: E402
from kuradb.records import Record  # noqa: E402


def per_op(fn: Callable[[Any], Any], items: list[Any]) -> float:
    t = time.perf_counter()
    for x in items:
        fn(x)
    return (time.perf_counter() - t) / len(items) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--ops", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="kuradb-breakdown-")
    try:
        docs = make_docs(args.records)
        store = kuradb.open(os.path.join(d, "s"))
        c = store.collection("bench")
        raw = apsw.Connection(os.path.join(d, "raw.db"))
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-131072"):
            raw.execute(f"PRAGMA {pragma}").fetchall()
        raw.execute("CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB)")
        cur = raw.cursor()
        for i in range(0, len(docs), 1000):
            c.put_many(docs[i:i + 1000])
            with raw:
                cur.executemany("INSERT INTO kv VALUES(?, ?)", [(k, orjson.dumps(v)) for k, v in docs[i:i + 1000]])
        backend = store.backend
        with backend.read() as r:
            coll = r.collection("bench")[0]   # type: ignore[index]
        rnd = random.Random(11)
        sample = [docs[rnd.randrange(len(docs))] for _ in range(args.ops)]
        data = [encode_content(v)[0] for _, v in sample]
        texts = [t.decode() for t in data]
        row = backend.reader().live(coll, sample[0][0])
        assert row is not None
        rev = f"{row[0]}-{row[1].hex()}"

        def head_in_tx(k: str) -> None:
            with backend.write() as tx:
                tx.head(coll, k)

        def digests(b: bytes) -> None:
            ck = content_digest(b)
            r = rev_digest(rev, ck)
            audit.entry_hash(b"\0" * 16, 1, 1, "record", "put", "bench", "k", 2, f"2-{r.hex()}",
                             audit.actor_digest(None))

        def floor_put(kv: tuple[str, Any]) -> None:
            cur.execute("INSERT OR REPLACE INTO kv VALUES(?, ?)", (kv[0], orjson.dumps(kv[1])))

        def floor_get(kv: tuple[str, Any]) -> Any:
            return orjson.loads(cur.execute("SELECT value FROM kv WHERE key=?", (kv[0],)).fetchone()[0])

        reader = backend.reader()
        rows = [reader.live(coll, k) for k, _ in sample]
        pieces: dict[str, Callable[[], float]] = {
            "put: the whole put()": lambda: per_op(lambda kv: c.put(kv[1], id=kv[0]), sample),
            "put: encode and validate the content": lambda: per_op(lambda kv: encode_content(kv[1]), sample),
            "put: checksum, rev and audit-chain digests": lambda: per_op(digests, data),
            "put: transaction (lock, queue, BEGIN IMMEDIATE, head read, empty COMMIT)":
                lambda: per_op(lambda kv: head_in_tx(kv[0]), sample),
            "put: raw floor (INSERT OR REPLACE, own commit)": lambda: per_op(floor_put, sample),
            "get: the whole get().content": lambda: per_op(lambda kv: c.get(kv[0]).content, sample),
            "get: the backend's read of the head row": lambda: per_op(lambda kv: reader.live(coll, kv[0]), sample),
            "get: checksum check": lambda: per_op(lambda t: content_digest(t.encode()), texts),
            "get: Record": lambda: per_op(lambda r: Record("bench", "k", r[2], r[0], r[1], r[7], r[5], False, r[8],
                                                           r[3], r[4]), rows),
            "get: JSON decode (orjson)": lambda: per_op(orjson.loads, texts),
            "get: raw floor (SELECT + orjson)": lambda: per_op(floor_get, sample),
        }
        times: dict[str, list[float]] = {k: [] for k in pieces}
        for _ in range(args.rounds):
            for name, fn in pieces.items():
                times[name].append(fn())
        store.close()
        raw.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.records:,} records, {args.ops:,} random existing keys per round; medians of {args.rounds} rounds;"
          f" apsw {apsw.apsw_version()}\n")
    print("| piece | µs per operation |\n|---|---|")
    for op in ("put", "get"):
        names = [k for k in med if k.startswith(op + ":")]
        whole, floor = med[names[0]], med[names[-1]]
        for k in names:
            print(f"| {k} | {med[k]:.2f} |")
        rest = whole - sum(med[k] for k in names[1:-1])
        print(f"| {op}: the rest (whole minus the pieces above) | {rest:.2f} |")
        print(f"| {op}: kuradb ÷ floor (ops/s) | {floor / whole:.2f}× |")


if __name__ == "__main__":
    main()
