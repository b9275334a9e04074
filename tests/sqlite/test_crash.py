"""kill -9 in the middle of writes: every acknowledged write survives, nothing half-written shows."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

import kuradb

WRITER = os.path.join(os.path.dirname(__file__), "crash_writer.py")


def _run_and_kill(directory, base, durability, rnd):
    """Start a writer, SIGKILL it at a random moment, return the acknowledged step numbers."""
    proc = subprocess.Popen([sys.executable, WRITER, str(directory), str(base), durability],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acked = []
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    reader = threading.Thread(target=lambda: acked.extend(int(line) for line in proc.stdout))
    reader.start()
    time.sleep(rnd.uniform(0.0, 0.25))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join()
    assert proc.returncode == -signal.SIGKILL
    return acked


def _check(directory, acked_total):
    with kuradb.open(directory) as store:
        solos, pairs = store["solos"], store["pairs"]
        for i in acked_total:
            rec = solos.get(f"solo{i}")  # raises NotFound or CorruptedData if lost or damaged
            assert rec["i"] == i
        newest = {}
        for i in acked_total:
            newest[i % 20] = max(newest.get(i % 20, -1), i)
        for slot in range(20):
            a, b = pairs.get(f"a{slot}", None), pairs.get(f"b{slot}", None)
            assert (a is None) == (b is None), f"half a pair at slot {slot}"
            if a is None:
                assert slot not in newest
                continue
            assert a.content == b.content, f"pair {slot} half-written"
            assert a["i"] >= newest.get(slot, -1)
            if "blob" in a.content:
                assert store.blobs.get(a["blob"])
        positions = [c.position for c in store.changes()]
        assert positions == list(range(1, len(positions) + 1)), "gap in the change log"
        return len(positions)


def _crash_many(tmp_path, kills, durability="normal"):
    rnd = random.Random(kills)
    acked_total = []
    last_position = 0
    for k in range(kills):
        acked_total += _run_and_kill(tmp_path, k * 1_000_000, durability, rnd)
        position = _check(tmp_path, acked_total)
        assert position >= last_position
        last_position = position
    assert len(acked_total) > kills  # the kills landed while writes were flowing
    return acked_total


def test_kill_9_loses_no_acknowledged_write(tmp_path):
    _crash_many(tmp_path, kills=60)


def test_kill_9_with_full_durability(tmp_path):
    _crash_many(tmp_path, kills=10, durability="full")


@pytest.mark.slow
def test_kill_9_two_hundred_times(tmp_path):
    _crash_many(tmp_path, kills=200)
