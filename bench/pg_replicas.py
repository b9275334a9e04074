"""What a PostgreSQL store's read replica costs a read: get latency on the primary vs on a streaming standby.

Run: python bench/pg_replicas.py [--reads 3000] [--rounds 3] [--wait 0.05]

Starts its own primary (initdb, wal_level=replica) and a hot standby of it
(pg_basebackup -R) on spare loopback ports with the machine's PostgreSQL
binaries (tests/postgres/pg_servers.py), then times ``Collection.get`` of one
small record through four stores, in interleaved rounds:

- primary, idle: a store without replicas, gets with no commit between them
- replica, idle: a store with ``replicas=[standby]``, the same gets (they go to the standby)
- primary, after a commit: ``put`` then ``get`` (the get timed)
- replica, after a commit: the same; the get waits until the standby has replayed the put's commit
  (read-your-writes: polls ``pg_last_wal_replay_lsn()``), at most replica_wait, else reads the primary

and the ``put`` itself with and without replicas (the COMMIT also reads the WAL position, same
round trip). p50/p99 in microseconds, and how many post-commit reads fell back on the primary.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "postgres"))

from pg_servers import Server, server_binaries  # noqa: E402

import kuradb  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1e6


def idle_gets(store: kuradb.Store, n: int) -> list[float]:
    notes = store.collection("notes")
    notes.get("a")
    out = []
    for _ in range(n):
        t = time.perf_counter()
        notes.get("a")
        out.append(time.perf_counter() - t)
    return out


def gets_after_commit(store: kuradb.Store, n: int, writes: list[float]) -> list[float]:
    notes = store.collection("notes")
    out = []
    for i in range(n):
        t = time.perf_counter()
        notes.put({"v": i}, id="a")
        t1 = time.perf_counter()
        record = notes.get("a")
        out.append(time.perf_counter() - t1)
        writes.append(t1 - t)
        assert record.content == {"v": i}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wait", type=float, default=kuradb.open.__kwdefaults__["replica_wait"],
                        help="replica_wait: seconds a read waits for the replica to replay its commit")
    args = parser.parse_args()
    bindir = server_binaries()
    if bindir is None:
        sys.exit("PostgreSQL's server binaries are not installed: apt-get install postgresql")
    primary = Server(bindir, settings="-c wal_level=replica")
    standby = Server(bindir, standby_of=primary)
    try:
        url = primary.url + "?schema=bench"
        plain = kuradb.open(url)
        replicated = kuradb.open(url, replicas=[standby.url], replica_wait=args.wait)
        plain.collection("notes").put({"v": 0}, id="a")
        time.sleep(0.5)
        results: dict[str, list[float]] = {k: [] for k in (
            "primary, idle", "replica, idle", "primary, after a commit", "replica, after a commit",
            "put, no replicas", "put, with replicas")}
        for _ in range(args.rounds):
            results["primary, idle"] += idle_gets(plain, args.reads)
            results["replica, idle"] += idle_gets(replicated, args.reads)
            results["primary, after a commit"] += gets_after_commit(plain, args.reads, results["put, no replicas"])
            results["replica, after a commit"] += gets_after_commit(replicated, args.reads,
                                                                    results["put, with replicas"])
        seen = replicated.stats()["replicas"][0]
        print(f"replica_wait={args.wait:g} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'':28} {'p50 us':>8} {'p99 us':>8}")
        for name, xs in results.items():
            print(f"{name:28} {pct(xs, 0.5):8.0f} {pct(xs, 0.99):8.0f}")
        added = pct(results["replica, after a commit"], 0.99) - pct(results["primary, after a commit"], 0.99)
        print(f"read-your-writes on the replica adds {added:.0f} us at p99 to a get right after a commit")
        print(f"replica: {seen['reads']} reads, {seen['waits']} waited for replay, {seen['fallbacks']} fell back"
              " on the primary")
        plain.close()
        replicated.close()
    finally:
        standby.remove()
        primary.remove()


if __name__ == "__main__":
    main()
