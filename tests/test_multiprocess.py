"""Several processes on one directory: conditional writes with retries lose no update."""
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


def test_four_processes_with_if_version_retries_lose_no_update(tmp_path):
    with kuradb.open(tmp_path) as store:
        for k in range(3):
            store["counters"].put({"n": 0}, id=f"k{k}")
    procs = [subprocess.Popen([sys.executable, "-c", INCREMENTER, str(tmp_path), str(seed)],
                              stderr=subprocess.PIPE, text=True) for seed in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with kuradb.open(tmp_path) as store:
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


def test_reader_in_another_process_is_not_blocked_by_a_writer(tmp_path):
    with kuradb.open(tmp_path) as store:
        store["c"].put({"v": 1}, id="x")
        with store.transaction():
            store["c"].put({"v": 2}, id="x")
            out = subprocess.run([sys.executable, "-c", READER, str(tmp_path)], capture_output=True,
                                 text=True, timeout=60)
            assert out.returncode == 0, out.stderr  # a blocked reader would hit Busy, not return
            assert out.stdout.strip() == "1"  # it sees the last commit, not the open transaction
