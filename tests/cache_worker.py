"""A second process for the Redis cache tests: reads commands on stdin, answers on stdout."""
from __future__ import annotations

import sys
import time

import orjson

import kuradb


def main() -> None:
    url, namespace = sys.argv[1], sys.argv[2]
    cache = kuradb.Cache(None, redis_url=url, namespace=namespace)
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
        else:
            break
        print(orjson.dumps(out).decode(), flush=True)
    cache.close()


if __name__ == "__main__":
    main()
