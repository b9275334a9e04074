"""Fairness of writers across processes: N processes commit in tight loops on one store; how long can one wait?

Run: python bench/writers.py [--processes 4] [--seconds 30] [--timeout 5] [--lock queue|flock] [--src DIR]

Each process opens the same store and puts one record per transaction as fast
as it can for the given time, timing every put from call to return. It reports
each process's commits, its median, p99, p99.9 and longest wait, and the puts
that failed with Busy (a writer that waited past ``timeout``), then the same
over all puts. A fair queue bounds the longest wait by roughly (processes - 1)
x one turn; SQLite's own busy handler sleeps and retries, so a writer can lose
the race many times. The last line adds the CPU time the writer processes used
(waiting costs some) and the queue's counters.

``--lock flock`` wraps every put in a blocking ``flock`` of a file beside the
store (the kernel's own queue, for comparison: it has no timeout). ``--src``
imports kuradb from another source tree, e.g. an older commit's ``src`` (made
with ``git archive COMMIT src | tar -x -C /tmp/old``), to measure before and
after on the same machine in the same hour.
"""
from __future__ import annotations

import argparse
import fcntl
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def _kuradb(src: str) -> Any:
    sys.path.insert(0, src)
    import kuradb
    return kuradb


def writer(src: str, directory: str, me: int, seconds: float, timeout: float, lock: str, start: float,
           out: mp.Queue) -> None:
    kuradb = _kuradb(src)
    waits: list[float] = []
    busy = 0
    fd = os.open(os.path.join(directory, "bench.flock"), os.O_RDWR | os.O_CREAT, 0o644) if lock == "flock" else -1
    with kuradb.open(directory, timeout=timeout) as s:
        c = s.collection("w")
        while time.time() < start:
            time.sleep(0.001)
        end = start + seconds
        i = 0
        while time.time() < end:
            t = time.perf_counter()
            try:
                if fd >= 0:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    c.put({"by": me, "i": i}, id=f"{me}-{i % 1000}")
                finally:
                    if fd >= 0:
                        fcntl.flock(fd, fcntl.LOCK_UN)
            except kuradb.errors.Busy:
                busy += 1
            waits.append(time.perf_counter() - t)
            i += 1
    out.put((me, waits, busy, sum(os.times()[:2])))


def queue_counters(kuradb: Any, directory: str) -> str:
    try:
        from kuradb.backends.sqlite import writers
    except ImportError:
        return "no writers queue in this kuradb"
    st = writers.state(os.path.join(directory, "kura.db"))
    if st is None:
        return "no writers file"
    return (f"queue: {st.taken:,} tickets taken, {st.skipped_dead} turns of dead writers passed on,"
            f" {st.skipped_late} late turns passed over, {st.abandoned} tickets abandoned")


def ms(seconds: float) -> str:
    if seconds >= 0.0995:
        return f"{seconds * 1e3:,.0f} ms"
    return f"{seconds * 1e3:.1f} ms" if seconds >= 0.00995 else f"{seconds * 1e3:.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--timeout", type=float, default=5)
    ap.add_argument("--lock", choices=("queue", "flock"), default="queue",
                    help="queue: kuradb as it is; flock: also a blocking flock around every put")
    ap.add_argument("--src", default=SRC, help="the source tree to import kuradb from")
    args = ap.parse_args()
    src = os.path.abspath(args.src)
    kuradb = _kuradb(src)
    d = tempfile.mkdtemp(prefix="writers-")
    try:
        kuradb.open(d).close()
        ctx = mp.get_context("spawn")
        q: mp.Queue = ctx.Queue()
        start = time.time() + 3
        procs = [ctx.Process(target=writer, args=(src, d, i, args.seconds, args.timeout, args.lock, start, q))
                 for i in range(args.processes)]
        for p in procs:
            p.start()
        results = sorted(q.get() for _ in procs)
        for p in procs:
            p.join()
        counters = queue_counters(kuradb, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(f"\n{args.processes} processes, {args.seconds:g} s of single-record commits each, timeout {args.timeout:g} s,"
          f" lock {args.lock}; kuradb {kuradb.__version__} from {src}\n")
    print("| process | commits | median | p99 | p99.9 | longest wait | Busy |")
    print("|---|---|---|---|---|---|---|")
    every: list[float] = []
    for me, waits, busy, _ in results:
        w = sorted(waits)
        every += w
        print(f"| {me} | {len(w) - busy:,} | {ms(statistics.median(w))} | {ms(w[int(len(w) * 0.99)])}"
              f" | {ms(w[int(len(w) * 0.999)])} | {ms(w[-1])} | {busy} |")
    every.sort()
    busy = sum(r[2] for r in results)
    cpu = sum(r[3] for r in results)
    print(f"| all | {len(every) - busy:,} | {ms(statistics.median(every))} | {ms(every[int(len(every) * 0.99)])}"
          f" | {ms(every[int(len(every) * 0.999)])} | {ms(every[-1])} | {busy} |")
    print(f"\nall: {(len(every) - busy) / args.seconds:,.0f} commits/s; longest single wait {ms(every[-1])};"
          f" {busy} Busy; the writers used {cpu:.1f} s of CPU; {counters}")


if __name__ == "__main__":
    main()
