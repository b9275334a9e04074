"""Which storage layout for core v2? Every candidate's raw SQL for kuradb's work, against the raw floor.

Run: python bench/layout_v2.py [--records 100000] [--rounds 5]

No kuradb code: each layout runs the statements kuradb would run for one
versioned, hash-chained write (read the head, write the version, move the head,
append the change-log entry), for a get by id, and for an unindexed equality
filter over a collection, on the same ~200-byte JSON documents. The floor is a
plain ``(key TEXT PRIMARY KEY, value BLOB)`` table doing the plain thing.
Rounds are interleaved across layouts; medians are quoted.

v1   today: ``docs`` (current copy, text collection, hex digests) + ``log`` (every version's content)
v2   content once: ``log`` holds every version; a partial unique index on
     ``(coll, id) WHERE head = 1`` finds the current one; integer collection ids,
     16-byte digests; two statements move the head
v2t  v2 with the head moved by a BEFORE INSERT trigger (one statement per write)
v3   ``versions`` WITHOUT ROWID clustered by ``(coll, id, version)``, positions in a unique index
v4   ``docs`` holds the current content, ``log`` versions without it; an overwrite moves the
     old content into its log row
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
from hashlib import blake2b
from typing import Any

import apsw
import orjson

WORDS = "ink canvas harbour layer brush sketch colour light shadow paper frame glaze".split()


def make_docs(n: int, seed: int = 7) -> list[tuple[str, bytes]]:
    rnd = random.Random(seed)
    return [(f"doc-{rnd.getrandbits(40):010x}-{i}", orjson.dumps({
        "type": rnd.choice(["note", "canvas", "asset"]), "name": f"name-{i}",
        "owner": f"user{rnd.randrange(1000)}", "score": round(rnd.random() * 100, 3),
        "tags": rnd.sample(WORDS, 3), "nested": {"a": rnd.randrange(1000)},
        "text": " ".join(rnd.choice(WORDS) for _ in range(10))}, option=orjson.OPT_SORT_KEYS))
        for i in range(n)]


def digest(*parts: Any) -> bytes:
    h = blake2b(digest_size=16)
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.digest()


class Layout:
    name = "?"
    ddl: list[str] = []

    def __init__(self, path: str) -> None:
        self.conn = apsw.Connection(path)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-131072"):
            self.conn.execute(f"PRAGMA {pragma}").fetchall()
        for ddl in self.ddl:
            self.conn.execute(ddl)
        self.cur = self.conn.cursor()
        self.prev_hash = bytes(16)

    def write_batch(self, batch: list[tuple[str, bytes]]) -> None:
        self.cur.execute("BEGIN IMMEDIATE")
        for k, v in batch:
            self.write(k, v)
        self.cur.execute("COMMIT")

    def write_one(self, k: str, v: bytes) -> None:
        self.cur.execute("BEGIN IMMEDIATE")
        self.write(k, v)
        self.cur.execute("COMMIT")

    def chain(self, position: int, k: str, version: int, rev: bytes) -> bytes:
        self.prev_hash = digest(self.prev_hash.hex(), position, k, version, rev.hex())
        return self.prev_hash

    def close(self) -> None:
        self.conn.close()


class Floor(Layout):
    name = "raw floor"
    ddl = ["CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB)"]

    def write_batch(self, batch):
        self.cur.execute("BEGIN")
        self.cur.executemany("INSERT OR REPLACE INTO kv VALUES(?, ?)", batch)
        self.cur.execute("COMMIT")

    def write_one(self, k, v):
        self.cur.execute("INSERT OR REPLACE INTO kv VALUES(?, ?)", (k, v))

    def get(self, k):
        row = self.cur.execute("SELECT value FROM kv WHERE key=?", (k,)).fetchone()
        return row and orjson.loads(row[0])

    def scan(self, owner):
        return [orjson.loads(v) for k, v in self.cur.execute(
            "SELECT key, json(value) FROM kv WHERE json_extract(value, '$.owner') = ?", (owner,))]


class FloorJSONB(Floor):
    """The query floor (bench/query.py's): values as JSONB, filtered with json_extract."""

    name = "raw floor (JSONB)"

    def write_batch(self, batch):
        self.cur.execute("BEGIN")
        self.cur.executemany("INSERT OR REPLACE INTO kv VALUES(?, jsonb(?))", batch)
        self.cur.execute("COMMIT")

    def write_one(self, k, v):
        self.cur.execute("INSERT OR REPLACE INTO kv VALUES(?, jsonb(?))", (k, v))

    def get(self, k):
        row = self.cur.execute("SELECT json(value) FROM kv WHERE key=?", (k,)).fetchone()
        return row and orjson.loads(row[0])


class V1(Layout):
    name = "v1 docs+log (today)"
    ddl = ["""CREATE TABLE docs(collection TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, rev TEXT NOT NULL,
        type TEXT, created INTEGER NOT NULL, modified INTEGER NOT NULL, author TEXT, deleted INTEGER NOT NULL DEFAULT 0,
        position INTEGER NOT NULL, checksum TEXT, body BLOB, UNIQUE(collection, id))""",
           """CREATE TABLE log(position INTEGER PRIMARY KEY, kind TEXT NOT NULL, collection TEXT, id TEXT,
        version INTEGER, rev TEXT, op TEXT NOT NULL, at INTEGER NOT NULL, author TEXT, type TEXT, created INTEGER,
        checksum TEXT, prev INTEGER, erased INTEGER NOT NULL DEFAULT 0, body BLOB, actor_hash BLOB, hash BLOB,
        txn INTEGER)"""]

    def write(self, k, v):
        cur = self.cur
        row = cur.execute("SELECT version, rev, created, deleted, position FROM docs WHERE collection=? AND id=?",
                          ("bench", k)).fetchone()
        top = cur.execute("SELECT position, hash FROM log ORDER BY position DESC LIMIT 1").fetchone()
        position = (top[0] if top else 0) + 1
        version = row[0] + 1 if row else 1
        ck = blake2b(v, digest_size=16).hexdigest()
        rev = f"{version}-{digest(row and row[1], ck).hex()}"
        now = time.time_ns() // 1000
        cur.execute("INSERT INTO docs(collection, id, version, rev, type, created, modified, author, deleted,"
                    " position, checksum, body) VALUES(?,?,?,?,?,?,?,?,?,?,?,jsonb(?)) ON CONFLICT(collection, id)"
                    " DO UPDATE SET version=excluded.version, rev=excluded.rev, modified=excluded.modified,"
                    " position=excluded.position, checksum=excluded.checksum, body=excluded.body",
                    ("bench", k, version, rev, None, now, now, None, 0, position, ck, v))
        cur.execute("INSERT INTO log(position, kind, collection, id, version, rev, op, at, author, type, created,"
                    " checksum, prev, body, actor_hash, hash, txn) VALUES(?, 'record', ?,?,?,?, 'put', ?,?,?,?,?,?,"
                    " jsonb(?), ?, ?, ?)", (position, "bench", k, version, rev, now, None, None, now, ck,
                                           row[4] if row else None, v, None,
                                           self.chain(position, k, version, rev.encode()), position))

    def get(self, k):
        row = self.cur.execute("SELECT version, rev, type, created, modified, author, deleted, checksum, json(body)"
                               " FROM docs WHERE collection=? AND id=?", ("bench", k)).fetchone()
        return row and orjson.loads(row[8])

    def scan(self, owner):
        return [orjson.loads(r[1]) for r in self.cur.execute(
            "SELECT id, json(body) FROM docs INDEXED BY sqlite_autoindex_docs_1 WHERE collection='bench'"
            " AND deleted=0 AND json_extract(body, '$.owner') = ?", (owner,))]


V2_LOG = """CREATE TABLE log(position INTEGER PRIMARY KEY, kind INTEGER NOT NULL, op INTEGER NOT NULL,
    coll INTEGER, id TEXT, version INTEGER, rev BLOB, at INTEGER NOT NULL, author TEXT, type TEXT,
    created INTEGER, checksum BLOB, prev INTEGER, erased INTEGER NOT NULL DEFAULT 0, head INTEGER,
    body BLOB, actor_hash BLOB, hash BLOB, txn INTEGER NOT NULL DEFAULT 0)"""
V2_HEADS = "CREATE UNIQUE INDEX log_heads ON log(coll, id) WHERE head = 1"
V2_INSERT = ("INSERT INTO log(position, kind, op, coll, id, version, rev, at, author, type, created, checksum, prev,"
             " head, body, actor_hash, hash) VALUES(?, 1, 1, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, jsonb(?), ?, ?)")


class V2(Layout):
    name = "v2 log+heads index"
    ddl = [V2_LOG, V2_HEADS]
    trigger = False

    def write(self, k, v):
        cur = self.cur
        row = cur.execute("SELECT position, version, rev, created FROM log WHERE coll=1 AND id=? AND head=1",
                          (k,)).fetchone()
        position = (cur.execute("SELECT max(position) FROM log").fetchone()[0] or 0) + 1
        version = row[1] + 1 if row else 1
        ck = blake2b(v, digest_size=16).digest()
        rev = digest(row and row[2], ck)
        now = time.time_ns() // 1000
        if row and not self.trigger:
            cur.execute("UPDATE log SET head=NULL WHERE position=?", (row[0],))
        cur.execute(V2_INSERT, (position, k, version, rev, now, None, None, now if not row else row[3], ck,
                                row[0] if row else None, v, None, self.chain(position, k, version, rev)))

    def get(self, k):
        row = self.cur.execute("SELECT version, rev, type, created, at, author, op, checksum, json(body)"
                               " FROM log WHERE coll=1 AND id=? AND head=1", (k,)).fetchone()
        return row and orjson.loads(row[8])

    def scan(self, owner):
        return [orjson.loads(r[1]) for r in self.cur.execute(
            "SELECT id, json(body) FROM log INDEXED BY log_heads WHERE coll=1 AND head=1 AND op<>3"
            " AND json_extract(body, '$.owner') = ?", (owner,))]


class V2B(V2):
    """v2 with batches written as kuradb's put_many would: one head lookup, executemany."""

    name = "v2 batched"

    def write_batch(self, batch):
        cur = self.cur
        cur.execute("BEGIN IMMEDIATE")
        heads = {r[0]: r[1:] for r in cur.execute(
            "SELECT id, position, version, rev, created FROM log WHERE coll=1 AND head=1 AND id IN"
            " (SELECT value FROM json_each(?))", (orjson.dumps([k for k, _ in batch]).decode(),))}
        position = cur.execute("SELECT max(position) FROM log").fetchone()[0] or 0
        now = time.time_ns() // 1000
        rows, moved = [], []
        for k, v in batch:
            position += 1
            row = heads.get(k)
            version = row[1] + 1 if row else 1
            ck = blake2b(v, digest_size=16).digest()
            rev = digest(row and row[2], ck)
            if row:
                moved.append((row[0],))
            rows.append((position, k, version, rev, now, None, None, now if not row else row[3], ck,
                         row[0] if row else None, v, None, self.chain(position, k, version, rev)))
            heads[k] = (position, version, rev, now if not row else row[3])
        if moved:
            cur.executemany("UPDATE log SET head=NULL WHERE position=?", moved)
        cur.executemany(V2_INSERT, rows)
        cur.execute("COMMIT")


class V2T(V2):
    name = "v2t heads by trigger"
    trigger = True
    ddl = [V2_LOG, V2_HEADS, "CREATE TRIGGER log_head BEFORE INSERT ON log WHEN new.head = 1 BEGIN"
                             " UPDATE log SET head = NULL WHERE coll = new.coll AND id = new.id AND head = 1; END"]


class V2S(V2):
    """v2 scanning the whole log sequentially instead of through the heads index."""

    name = "v2 (scan: whole log)"

    def scan(self, owner):
        return [orjson.loads(r[1]) for r in self.cur.execute(
            "SELECT id, json(body) FROM log NOT INDEXED WHERE coll=1 AND head=1 AND op<>3"
            " AND json_extract(body, '$.owner') = ?", (owner,))]


class V3(Layout):
    name = "v3 versions WITHOUT ROWID"
    ddl = ["""CREATE TABLE versions(coll INTEGER NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        position INTEGER NOT NULL, kind INTEGER NOT NULL, op INTEGER NOT NULL, rev BLOB, at INTEGER NOT NULL,
        author TEXT, type TEXT, created INTEGER, checksum BLOB, erased INTEGER NOT NULL DEFAULT 0, head INTEGER,
        body BLOB, actor_hash BLOB, hash BLOB, txn INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY(coll, id, version)) WITHOUT ROWID""",
           "CREATE UNIQUE INDEX versions_position ON versions(position)"]

    def write(self, k, v):
        cur = self.cur
        row = cur.execute("SELECT version, rev, created FROM versions WHERE coll=1 AND id=?"
                          " ORDER BY version DESC LIMIT 1", (k,)).fetchone()
        position = (cur.execute("SELECT max(position) FROM versions").fetchone()[0] or 0) + 1
        version = row[0] + 1 if row else 1
        ck = blake2b(v, digest_size=16).digest()
        rev = digest(row and row[1], ck)
        now = time.time_ns() // 1000
        if row:
            cur.execute("UPDATE versions SET head=NULL WHERE coll=1 AND id=? AND version=?", (k, row[0]))
        cur.execute("INSERT INTO versions(coll, id, version, position, kind, op, rev, at, author, type, created,"
                    " checksum, head, body, actor_hash, hash) VALUES(1, ?, ?, ?, 1, 1, ?, ?, ?, ?, ?, ?, 1,"
                    " jsonb(?), ?, ?)", (k, version, position, rev, now, None, None, row[2] if row else now, ck, v,
                                         None, self.chain(position, k, version, rev)))

    def get(self, k):
        row = self.cur.execute("SELECT version, rev, type, created, at, author, op, checksum, json(body)"
                               " FROM versions WHERE coll=1 AND id=? ORDER BY version DESC LIMIT 1", (k,)).fetchone()
        return row and orjson.loads(row[8])

    def scan(self, owner):
        return [orjson.loads(r[1]) for r in self.cur.execute(
            "SELECT id, json(body) FROM versions WHERE coll=1 AND head=1 AND op<>3"
            " AND json_extract(body, '$.owner') = ?", (owner,))]


class V4(Layout):
    name = "v4 docs content (log without)"
    ddl = ["""CREATE TABLE docs(coll INTEGER NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, rev BLOB NOT NULL,
        type TEXT, created INTEGER NOT NULL, modified INTEGER NOT NULL, author TEXT, deleted INTEGER NOT NULL DEFAULT 0,
        position INTEGER NOT NULL, checksum BLOB, body BLOB, UNIQUE(coll, id))""",
           V2_LOG]

    def write(self, k, v):
        cur = self.cur
        row = cur.execute("SELECT version, rev, created, position, body FROM docs WHERE coll=1 AND id=?",
                          (k,)).fetchone()
        position = (cur.execute("SELECT max(position) FROM log").fetchone()[0] or 0) + 1
        version = row[0] + 1 if row else 1
        ck = blake2b(v, digest_size=16).digest()
        rev = digest(row and row[1], ck)
        now = time.time_ns() // 1000
        if row:
            cur.execute("UPDATE log SET body=? WHERE position=?", (row[4], row[3]))
        cur.execute("INSERT INTO docs(coll, id, version, rev, type, created, modified, author, deleted, position,"
                    " checksum, body) VALUES(1,?,?,?,?,?,?,?,0,?,?,jsonb(?)) ON CONFLICT(coll, id) DO UPDATE SET"
                    " version=excluded.version, rev=excluded.rev, modified=excluded.modified,"
                    " position=excluded.position, checksum=excluded.checksum, body=excluded.body",
                    (k, version, rev, None, now, now, None, position, ck, v))
        cur.execute("INSERT INTO log(position, kind, op, coll, id, version, rev, at, author, type, created, checksum,"
                    " prev, actor_hash, hash) VALUES(?, 1, 1, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (position, k, version, rev, now, None, None, now, ck, row[3] if row else None, None,
                     self.chain(position, k, version, rev)))

    def get(self, k):
        row = self.cur.execute("SELECT version, rev, type, created, modified, author, deleted, checksum, json(body)"
                               " FROM docs WHERE coll=1 AND id=?", (k,)).fetchone()
        return row and orjson.loads(row[8])

    def scan(self, owner):
        return [orjson.loads(r[1]) for r in self.cur.execute(
            "SELECT id, json(body) FROM docs INDEXED BY sqlite_autoindex_docs_1 WHERE coll=1 AND deleted=0"
            " AND json_extract(body, '$.owner') = ?", (owner,))]


LAYOUTS = [Floor, FloorJSONB, V1, V2, V2B, V2T, V2S, V3, V4]


def timed(fn, items) -> float:
    t = time.perf_counter()
    for x in items:
        fn(x)
    return len(items) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=",".join(c.name for c in LAYOUTS))
    args = ap.parse_args()
    classes = [c for c in LAYOUTS if c.name in args.only.split(",")]
    docs = make_docs(args.records)
    fresh = make_docs(4000, seed=8)
    rnd = random.Random(3)
    lookups = [k for k, _ in rnd.choices(docs, k=40_000)]
    updates = [(k, orjson.dumps({**orjson.loads(v), "rev": 2})) for k, v in rnd.sample(docs, 4000)]
    owners = [f"user{rnd.randrange(1000)}" for _ in range(40)]
    base = tempfile.mkdtemp(prefix="layout-")
    ops = ["batched put", "single put (new)", "single put (overwrite)", "get by id", "filter scan (q/s)"]
    rates: dict[str, dict[str, list[float]]] = {c.name: {op: [] for op in ops} for c in classes}
    try:
        systems = [c(os.path.join(base, f"{i}.db")) for i, c in enumerate(classes)]
        for i in range(0, len(docs), 1000):          # load in interleaved batches
            for s in systems:
                t = time.perf_counter()
                s.write_batch(docs[i:i + 1000])
                rates[s.name]["batched put"].append(1000 / (time.perf_counter() - t))
        print(f"... loaded {len(docs):,}", file=sys.stderr, flush=True)
        n = len(fresh) // args.rounds
        for r in range(args.rounds):
            for s in systems:
                rates[s.name]["single put (new)"].append(
                    timed(lambda kv, s=s: s.write_one(*kv), fresh[r * n:(r + 1) * n]))
                rates[s.name]["single put (overwrite)"].append(
                    timed(lambda kv, s=s: s.write_one(*kv), updates[r * n:(r + 1) * n]))
        for s in systems:
            for k in lookups[:10_000]:
                s.get(k)
        n = len(lookups) // args.rounds
        m = len(owners) // args.rounds
        for r in range(args.rounds):
            for s in systems:
                rates[s.name]["get by id"].append(timed(s.get, lookups[r * n:(r + 1) * n]))
            for s in systems:
                rates[s.name]["filter scan (q/s)"].append(timed(s.scan, owners[r * m:(r + 1) * m]))
        for s in systems[1:]:
            assert len(s.scan("user7")) == len(systems[0].scan("user7")), s.name
        for s in systems:
            s.close()
        sizes = {c.name: os.path.getsize(os.path.join(base, f"{i}.db")) for i, c in enumerate(classes)}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    floor = rates[classes[0].name]
    # kuradb stores JSONB: its scans compare with the JSONB floor (json_extract on text parses every row)
    scan_floor = rates.get(FloorJSONB.name, floor)
    scan_name = FloorJSONB.name if FloorJSONB.name in rates else classes[0].name
    print(f"\n{args.records:,} records, medians of {args.rounds} interleaved rounds; apsw {apsw.apsw_version()};"
          f" ratios to {classes[0].name}, the filter scan's to {scan_name}\n")
    print("| layout | " + " | ".join(ops) + " | db MB |")
    print("|---|" + "---|" * (len(ops) + 1))
    for name, r in rates.items():
        cells = []
        for op in ops:
            med = statistics.median(r[op])
            base = scan_floor if op == "filter scan (q/s)" else floor
            cells.append(f"{med:,.0f}/s ({med / statistics.median(base[op]):.2f}×)")
        print(f"| {name} | " + " | ".join(cells) + f" | {sizes[name] / 1e6:.1f} |")


if __name__ == "__main__":
    main()
