"""Several processes on one store: no lost update, unique indexes and the array catalog hold across them.

The children are given ``impl.location(name)``, the test's store, as any other process would be.
"""
from __future__ import annotations

import subprocess
import sys

import kuradb

INCREMENTER = """
import random, sys, kuradb
from kuradb import errors
directory, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
with kuradb.open(directory, timeout=30) as store:
    c = store["counters"]
    for _ in range(100):
        key = f"k{rnd.randrange(3)}"
        while True:
            cur = c.get(key)
            try:
                c.put({"n": cur["n"] + 1, "by": seed}, id=key, if_version=cur.version)
                break
            except errors.ConflictError:
                continue
"""


def test_four_processes_with_if_version_retries_lose_no_update(impl, open_store):
    with open_store("s") as store:
        for k in range(3):
            store["counters"].put({"n": 0}, id=f"k{k}")
    procs = [subprocess.Popen([sys.executable, "-c", INCREMENTER, impl.location("s"), str(seed)],
                              stderr=subprocess.PIPE, text=True) for seed in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with open_store("s") as store:
        c = store["counters"]
        assert sum(c.get(f"k{k}")["n"] for k in range(3)) == 400
        for k in range(3):
            rec = c.get(f"k{k}")
            assert rec.version == rec["n"] + 1
            assert [r["n"] for r in c.history(f"k{k}")] == list(range(rec["n"] + 1))
        positions = [ch.position for ch in store.changes()]
        assert positions == list(range(1, 404))


READER = """
import sys, kuradb
with kuradb.open(sys.argv[1]) as store:
    print(store["c"].get("x")["v"])
"""


def test_reader_in_another_process_is_not_blocked_by_a_writer(impl, open_store):
    with open_store("s") as store:
        store["c"].put({"v": 1}, id="x")
        with store.transaction():
            store["c"].put({"v": 2}, id="x")
            out = subprocess.run([sys.executable, "-c", READER, impl.location("s")], capture_output=True,
                                 text=True, timeout=60)
            assert out.returncode == 0, out.stderr  # a blocked reader would hit Busy, not return
            assert out.stdout.strip() == "1"  # it sees the last commit, not the open transaction


CLAIMER = """
import sys, kuradb
from kuradb import errors
directory, who = sys.argv[1], sys.argv[2]
won = 0
with kuradb.open(directory, timeout=30) as store:
    users = store["users"]
    for i in range(200):
        try:
            users.put({"email": f"e{i}@x", "by": who}, id=f"{who}-{i}")
            won += 1
        except errors.DuplicateKey:
            pass
print(won)
"""


def test_a_unique_index_holds_across_processes(impl, open_store):
    with open_store("s") as store:
        store["users"].create_index("email", unique=True)
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, impl.location("s"), who], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for who in ("p", "q", "r")]
    won = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        won.append(int(out))
    assert sum(won) == 200  # every email claimed exactly once
    with open_store("s") as store:
        users = store["users"]
        assert users.count() == 200
        assert sorted(r["email"] for r in users.find()) == sorted(f"e{i}@x" for i in range(200))
        assert store.verify().ok


def test_another_process_making_a_field_an_array_changes_the_plan_not_the_answer(impl, open_store):
    with open_store("s") as store:
        c = store["docs"]
        c.put({"tags": "x"}, id="a")
        c.create_index("tags")
        assert c.query().where("tags", "==", "x").explain().index == "tags"
        writer = "import sys, kuradb\nwith kuradb.open(sys.argv[1]) as s: s['docs'].put({'tags': ['x', 'y']}, id='b')"
        subprocess.run([sys.executable, "-c", writer, impl.location("s")], check=True, timeout=60)
        assert [r.id for r in c.find({"tags": "x"})] == ["a", "b"]  # membership, seen through the catalog
        assert c.query().where("tags", "==", "x").explain().index != "tags"


def test_a_write_after_a_refused_one_waits_normally_for_other_processes(impl, open_store):
    """Regression: the DuplicateKey lookup left a half-read SELECT on the writer connection, holding an old
    snapshot; after another process committed, the next write failed at once with Busy (SQLITE_BUSY_SNAPSHOT)."""
    with open_store("s", timeout=10) as store:
        users = store["users"]
        users.create_index("email", unique=True)
        users.put({"email": "a@x"}, id="a")
        try:
            users.put({"email": "a@x"}, id="b")
        except kuradb.errors.DuplicateKey:
            pass
        other = "import sys, kuradb\nwith kuradb.open(sys.argv[1]) as s: s['users'].put({'email': 'o@x'}, id='o')"
        subprocess.run([sys.executable, "-c", other, impl.location("s")], check=True, timeout=60)
        users.put({"email": "c@x"}, id="c")
        assert sorted(users) == ["a", "c", "o"]
