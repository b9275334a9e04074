"""A second process for the cache tests: reads commands on stdin, answers on stdout.

    cache_worker.py URL NAMESPACE [DIR]     URL "none": no Redis (DIR: share a cache directory)
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import orjson

import kuradb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(port: int, tmp) -> subprocess.Popen:
    """A redis-server of the test's own on ``port`` (fails under CI=true, else skips, without the binary)."""
    if shutil.which("redis-server") is None:
        import pytest
        message = "redis-server is needed to start a Redis of the test's own"
        pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
    p = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("redis-server did not start")


class Worker:
    """The test's side: starts ``cache_worker.py`` and talks to it."""

    def __init__(self, url: str | None, namespace: str, path: str | os.PathLike[str] | None = None) -> None:
        argv = [sys.executable, os.path.abspath(__file__), url or "none", namespace]
        if path is not None:
            argv.append(os.fspath(path))
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout is not None and self.p.stdout.readline().strip() == "ready"

    def send(self, *cmd):
        assert self.p.stdin is not None
        self.p.stdin.write(orjson.dumps(list(cmd)).decode() + "\n")
        self.p.stdin.flush()

    def recv(self):
        assert self.p.stdout is not None
        return orjson.loads(self.p.stdout.readline())

    def ask(self, *cmd):
        self.send(*cmd)
        return self.recv()

    def close(self):
        self.send("quit")
        self.p.wait(10)


def main() -> None:
    url, namespace = sys.argv[1], sys.argv[2]
    path = sys.argv[3] if len(sys.argv) > 3 else None
    cache = kuradb.Cache(path, redis_url=None if url == "none" else url, namespace=namespace)
    if cache.redis is not None:
        cache.redis.listening.wait(5)
        import redis
        counter = redis.Redis.from_url(url)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = orjson.loads(line)
        if cmd[0] == "get":
            out = cache.get(cmd[1])
        elif cmd[0] == "wait_for":      # poll until the key has the value (invalidation arrived)
            deadline = time.monotonic() + 5
            while cache.get(cmd[1]) != cmd[2] and time.monotonic() < deadline:
                time.sleep(0.001)
            out = cache.get(cmd[1])
        elif cmd[0] == "load":          # single flight: the loader counts its calls in Redis
            def loader():
                counter.incr(namespace + ":!calls")
                time.sleep(0.5)
                return "loaded"
            out = cache.get_or_set(cmd[1], loader)
        elif cmd[0] == "l1":
            out = cmd[1] in cache.l1.data
        elif cmd[0] == "incr":          # ["incr", key, times, delta]: the last value seen
            for _ in range(cmd[2]):
                out = cache.incr(cmd[1], cmd[3])
        else:
            break
        print(orjson.dumps(out).decode(), flush=True)
    cache.close()


if __name__ == "__main__":
    main()
