"""Positions in commit order on PostgreSQL: writers in several processes, a reader that must never see a gap."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

WRITER = """
import sys, kuradb
s = kuradb.open(sys.argv[1])
n = s.collection("notes")
me = sys.argv[2]
for i in range(int(sys.argv[3])):
    if i % 10 == 0:
        n.put_many([(f"{me}-{i}-{j}", {"i": i, "j": j}) for j in range(5)])
    else:
        with s.transaction():
            n.put({"i": i}, id=f"{me}-{i}")
            n.put({"i": i, "again": True}, id=f"{me}-{i}")
s.close()
"""


def test_positions_are_gapless_and_never_seen_out_of_order_with_writers_in_three_processes(pg):
    location = pg.location("s")
    s = pg.open("s")
    s.collection("notes").put({}, id="first")      # the schema exists before the writers race
    seen: list[int] = []
    gaps: list[tuple[int, int]] = []
    done = threading.Event()

    def follow() -> None:
        last = s.position
        while True:
            finished = done.is_set()
            for change in s.changes(since=last):
                if change.position != last + 1:
                    gaps.append((last, change.position))
                last = change.position
                seen.append(last)
            if finished:
                return
            time.sleep(0.001)

    reader = threading.Thread(target=follow)
    reader.start()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, location, f"w{k}", "60"]) for k in range(3)]
    try:
        assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    finally:
        done.set()
        reader.join(timeout=60)
    # each writer: 6 batches of 5 records and 54 transactions of two versions = 138 entries
    assert s.position == 1 + 3 * 138
    assert gaps == [], f"a reader saw positions out of order: {gaps[:5]}"
    assert seen == list(range(2, s.position + 1))
    assert [c.position for c in s.changes(0)] == list(range(1, s.position + 1))
    assert s.collection("notes").get("w2-59").content == {"i": 59, "again": True}
    s.close()
