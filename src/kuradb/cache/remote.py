"""L2 in Redis: shared by every process and host that names the same ``redis_url`` and namespace.

Values carry a small header (expiry, priority, tags) so a hit can be copied into
L1 as it is. Every change is published on ``{namespace}:!inval``; each Cache
listens on a thread and drops its local copies of the keys others changed.

Redis going away is not the caller's problem: every call that fails is counted
(``errors`` in L2's stats), Redis is skipped for a back-off period, and the cache
serves from its local tiers. When the listener reconnects it drops every local
memory copy, because invalidations published while it was away were lost.
"""
from __future__ import annotations

import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .. import errors
from .stats import TierCounters

_HEAD = struct.Struct("<dBH")   # expires, priority, length of the tags
_BACKOFF = (0.05, 2.0)          # first and longest pause after a failure, seconds
# Release a single-flight lease only if it is still ours: after it expired another process may hold it.
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisTier:
    def __init__(self, url: str, namespace: str, counters: TierCounters,
                 on_invalidate: Callable[[str | None, str | None], None]) -> None:
        try:
            import redis
        except ImportError as e:
            raise errors.KuraError("redis_url needs the redis package", hint="pip install 'kuradb[cache]'") from e
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._r: Any = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.prefix = namespace + ":"
        self.channel = namespace + ":!inval"
        self.counters = counters
        self._on_invalidate = on_invalidate
        self._me = uuid.uuid4().hex.encode()
        self._unlock = self._r.register_script(_UNLOCK)
        self._down_until = 0.0
        self._backoff = _BACKOFF[0]
        self._closed = threading.Event()
        self.listening = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="kuradb-cache-inval", daemon=True)
        self._listener.start()

    # -- failure handling -------------------------------------------------------------

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self) -> None:
        self.counters.errors += 1
        self._down_until = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, _BACKOFF[1])

    def _call(self, fn: Callable[[], Any], fallback: Any = None) -> Any:
        if time.monotonic() < self._down_until:
            return fallback
        try:
            result = fn()
        except self._redis_errors:
            self._failed()
            return fallback
        self._backoff = _BACKOFF[0]
        return result

    # -- values -----------------------------------------------------------------------

    def get(self, key: str) -> tuple[bytes, float, int, tuple[str, ...]] | None:
        raw = self._call(lambda: self._r.get(self.prefix + key))
        if raw is None:
            return None
        expires, priority, n = _HEAD.unpack_from(raw)
        tags = raw[_HEAD.size:_HEAD.size + n].decode()
        return raw[_HEAD.size + n:], expires, priority, tuple(tags.split("\x1f")) if tags else ()

    def set(self, key: str, data: bytes, expires: float, priority: int, tags: tuple[str, ...]) -> bool:
        t = "\x1f".join(tags).encode()
        raw = _HEAD.pack(expires, priority, len(t)) + t + data

        def run() -> bool:
            p = self._r.pipeline(transaction=False)
            if expires:
                p.set(self.prefix + key, raw, pxat=max(1, int(expires * 1000)))
            else:
                p.set(self.prefix + key, raw)
            for tag in tags:
                p.sadd(self.prefix + "!tag:" + tag, key)
            p.publish(self.channel, self._me + b"\0k\0" + key.encode())
            p.execute()
            return True
        return bool(self._call(run, False))

    def delete(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        if not keys:
            return 0

        def run() -> int:
            p = self._r.pipeline(transaction=False)
            p.delete(*(self.prefix + k for k in keys))
            for k in keys:
                p.publish(self.channel, self._me + b"\0k\0" + k.encode())
            return int(p.execute()[0])
        return int(self._call(run, 0))

    def keys(self, pattern: str | None = None, tag: str | None = None) -> list[str]:
        n = len(self.prefix)

        def run() -> list[str]:
            if tag is not None:
                return [k.decode() for k in self._r.smembers(self.prefix + "!tag:" + tag)]
            match = _glob_escape(self.prefix) + (pattern if pattern is not None else "*")
            return [k.decode()[n:] for k in self._r.scan_iter(match=match, count=1000)
                    if not k.decode()[n:].startswith("!")]
        return list(self._call(run, []))

    def forget_tag(self, tag: str) -> None:
        self._call(lambda: self._r.delete(self.prefix + "!tag:" + tag))

    def clear_all(self) -> None:
        def run() -> None:
            batch = [k for k in self._r.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000)]
            for i in range(0, len(batch), 500):
                self._r.delete(*batch[i:i + 500])
            self._r.publish(self.channel, self._me + b"\0*\0")
        self._call(run)

    def set_expires(self, key: str, expires: float) -> bool:
        def run() -> bool:
            raw = self._r.get(self.prefix + key)
            if raw is None:
                return False
            _, priority, n = _HEAD.unpack_from(raw)
            new = _HEAD.pack(expires, priority, n) + raw[_HEAD.size:]
            if expires:
                self._r.set(self.prefix + key, new, pxat=max(1, int(expires * 1000)), xx=True)
            else:
                self._r.set(self.prefix + key, new, xx=True)
            self._r.publish(self.channel, self._me + b"\0k\0" + key.encode())
            return True
        return bool(self._call(run, False))

    # -- single flight across processes -------------------------------------------------

    def lock(self, key: str, seconds: float) -> bool | None:
        """True: this process loads ``key``; False: another does; None: Redis is unavailable."""
        return self._call(lambda: bool(self._r.set(self.prefix + "!lock:" + key, self._me, nx=True,
                                                   px=max(1, int(seconds * 1000)))), None)

    def unlock(self, key: str) -> None:
        self._call(lambda: self._unlock(keys=[self.prefix + "!lock:" + key], args=[self._me]))

    def locked(self, key: str) -> bool:
        return bool(self._call(lambda: self._r.exists(self.prefix + "!lock:" + key), False))

    # -- invalidation listener -------------------------------------------------------------

    def _listen(self) -> None:
        missed = False
        while not self._closed.is_set():
            pubsub = None
            try:
                pubsub = self._r.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                if missed:
                    self._on_invalidate(None, None)   # messages were lost while away: drop all local copies
                    missed = False
                self.listening.set()
                while not self._closed.is_set():
                    msg = pubsub.get_message(timeout=0.2)
                    if msg is not None and msg["type"] == "message":
                        self._message(msg["data"])
            except self._redis_errors:
                self.listening.clear()
                if not missed:
                    self.counters.errors += 1
                missed = True
                self._closed.wait(0.2)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except self._redis_errors:
                        pass

    def _message(self, data: bytes) -> None:
        sender, kind, rest = data.split(b"\0", 2)
        if sender == self._me:
            return
        if kind == b"k":
            self._on_invalidate(rest.decode(), None)
        elif kind == b"t":
            self._on_invalidate(None, rest.decode())
        else:
            self._on_invalidate(None, None)

    def publish_tag(self, tag: str) -> None:
        self._call(lambda: self._r.publish(self.channel, self._me + b"\0t\0" + tag.encode()))

    def close(self) -> None:
        self._closed.set()
        self._listener.join(timeout=2)
        self._r.close()
