"""Which table layout for records, history and the change log? Single-put commits per layout.

Run: python bench/layout.py
Raw SQL only (no kuradb code): each layout's statements for one put, each put its
own transaction, on a 50,000-row table with half new keys and half overwrites.
A: log with an index on (collection, id, version), docs with a unique index.
B: log chained by a prev pointer (no log index), docs with a unique index.   <- chosen
C: like B, docs WITHOUT ROWID.   D: like A, docs WITHOUT ROWID.
"""
import apsw, tempfile, time, os, orjson, random, statistics
doc = orjson.dumps({"name": "x"*20, "owner": "user1", "score": 1.5, "tags": ["a","b","c"], "nested": {"a": 1}, "pad": "y"*80}).decode()
env = ("rev-1-0123456789abcdef0123456789abcdef", None, 1, 1, None, 0, "ck0123456789abcdef0123456789abcdef")
LAYOUTS = {
 "raw": ("CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB)", ["INSERT OR REPLACE INTO kv VALUES(?, jsonb(?))"]),
 "A log+idx, docs+idx": ("""CREATE TABLE log(position INTEGER PRIMARY KEY, c, id, v, rev, t, created, at, a, ck, body);
   CREATE INDEX li ON log(c,id,v);
   CREATE TABLE docs(c, id, v, rev, t, created, at, a, d, pos, ck, body, UNIQUE(c,id))""",
   ["INSERT INTO log(c,id,v,rev,t,created,at,a,ck,body) VALUES('kv',?,1,?,?,?,?,?,?,jsonb(?))",
    "INSERT INTO docs VALUES('kv',?,1,?,?,?,?,?,0,last_insert_rowid(),?,jsonb(?)) ON CONFLICT(c,id) DO UPDATE SET v=v+1"]),
 "B log chain, docs+idx": ("""CREATE TABLE log(position INTEGER PRIMARY KEY, c, id, v, rev, t, created, at, a, ck, prev, body);
   CREATE TABLE docs(c, id, v, rev, t, created, at, a, d, pos, ck, body, UNIQUE(c,id))""",
   ["INSERT INTO log(c,id,v,rev,t,created,at,a,ck,body) VALUES('kv',?,1,?,?,?,?,?,?,jsonb(?))",
    "INSERT INTO docs VALUES('kv',?,1,?,?,?,?,?,0,last_insert_rowid(),?,jsonb(?)) ON CONFLICT(c,id) DO UPDATE SET v=v+1"]),
 "C log chain, docs WR": ("""CREATE TABLE log(position INTEGER PRIMARY KEY, c, id, v, rev, t, created, at, a, ck, prev, body);
   CREATE TABLE docs(c, id, v, rev, t, created, at, a, d, pos, ck, body, PRIMARY KEY(c,id)) WITHOUT ROWID""",
   ["INSERT INTO log(c,id,v,rev,t,created,at,a,ck,body) VALUES('kv',?,1,?,?,?,?,?,?,jsonb(?))",
    "INSERT INTO docs VALUES('kv',?,1,?,?,?,?,?,0,last_insert_rowid(),?,jsonb(?)) ON CONFLICT(c,id) DO UPDATE SET v=v+1"]),
 "D log+idx, docs WR": ("""CREATE TABLE log(position INTEGER PRIMARY KEY, c, id, v, rev, t, created, at, a, ck, prev, body);
   CREATE INDEX li ON log(c,id,v);
   CREATE TABLE docs(c, id, v, rev, t, created, at, a, d, pos, ck, body, PRIMARY KEY(c,id)) WITHOUT ROWID""",
   ["INSERT INTO log(c,id,v,rev,t,created,at,a,ck,body) VALUES('kv',?,1,?,?,?,?,?,?,jsonb(?))",
    "INSERT INTO docs VALUES('kv',?,1,?,?,?,?,?,0,last_insert_rowid(),?,jsonb(?)) ON CONFLICT(c,id) DO UPDATE SET v=v+1"]),
}
def run(name, n=4000, preload=50000):
    d = tempfile.mkdtemp(); con = apsw.Connection(os.path.join(d, "x.db"))
    con.execute("PRAGMA journal_mode=WAL"); con.execute("PRAGMA synchronous=NORMAL")
    ddl, stmts = LAYOUTS[name]; con.execute(ddl)
    def one(k):
        if name == "raw":
            con.execute(stmts[0], (k, doc)); return
        con.execute("BEGIN IMMEDIATE")
        con.execute("SELECT 1")  # stands in for the read of the current version
        con.execute(stmts[0], (k, env[0], None, 1, 1, None, env[6], doc))
        con.execute(stmts[1], (k, env[0], None, 1, 1, None, env[6], doc))
        con.execute("COMMIT")
    keys = [f"key{random.randrange(10**9):09d}" for _ in range(preload)]
    con.execute("BEGIN")
    for k in keys:
        if name == "raw": con.execute(stmts[0], (k, doc))
        else:
            con.execute(stmts[0], (k, env[0], None, 1, 1, None, env[6], doc)); con.execute(stmts[1], (k, env[0], None, 1, 1, None, env[6], doc))
    con.execute("COMMIT")
    t = time.perf_counter()
    for i in range(n): one(f"key{random.randrange(10**9):09d}" if i % 2 else random.choice(keys))
    return n / (time.perf_counter() - t)
res = {k: [] for k in LAYOUTS}
for r in range(3):
    for k in LAYOUTS: res[k].append(run(k))
raw = statistics.median(res["raw"])
for k, v in res.items(): print(f"{k:24s} {statistics.median(v):9,.0f}/s  {statistics.median(v)/raw:.2f}x raw")
