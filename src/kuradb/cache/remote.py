"""L2 in Redis: shared by every process and host that names the same ``redis_url`` and namespace.

Values carry a small header (expiry, priority, tags) so a hit can be copied into
L1 as it is. Every change is published on ``{namespace}:!inval``; each Cache
listens on a thread and drops its local copies of the keys others changed.

Redis going away is not the caller's problem: every call that fails is counted
(``errors`` in L2's stats), Redis is skipped for a back-off period, and the cache
serves from its local tiers. When the listener reconnects it drops every local
memory copy, because invalidations published while it was away were lost.

But it is the operator's: the tier pings Redis when it starts, and every change
of state (unreachable; refused, e.g. a database index the server does not have
or a bad password, which will not heal by itself; reachable again) is logged
once on the ``kuradb.cache`` logger and kept in ``state`` for ``Cache.health()``.

``incr`` adds in Redis, in one step: a Lua script rewrites the integer after the
header (Lua's numbers are doubles, so the script takes only |values| < 2**53);
other integers (larger ones, a custom serializer's) go through an optimistic
WATCH/MULTI transaction, retried until no other client changed the key meanwhile.
"""
from __future__ import annotations

import logging
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import errors
from .stats import TierCounters

_HEAD = struct.Struct("<dBH")   # expires, priority, length of the tags
_BACKOFF = (0.05, 2.0)          # first and longest pause after a failure, seconds
# Release a single-flight lease only if it is still ours: after it expired another process may hold it.
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# incr: 0 absent, 1 not an integer, 2 an integer this script cannot add exactly (the caller does), else the new value
_INCR = """
local raw = redis.call('get', KEYS[1])
if not raw then return 0 end
if #raw < 12 then return 1 end
local head = 11 + string.byte(raw, 10) + 256 * string.byte(raw, 11)
local tag = string.sub(raw, head + 1, head + 1)
if tag ~= 'j' then
  if tag == 'p' or tag == 'c' then return 2 end
  return 1
end
local digits = string.match(string.sub(raw, head + 2), '^%-?%d+$')
if not digits then return 1 end
if #digits > 17 then return 2 end
local v = tonumber(digits)
local sum = v + tonumber(ARGV[1])
if math.abs(v) >= 9007199254740992 or math.abs(sum) >= 9007199254740992 then return 2 end
local new = string.sub(raw, 1, head) .. 'j' .. string.format('%.0f', sum)
redis.call('set', KEYS[1], new, 'KEEPTTL')
redis.call('publish', ARGV[2], ARGV[3])
return new
"""
_EXACT = 1 << 53
ABSENT, NOT_INT = "absent", "not an integer"
log = logging.getLogger("kuradb.cache")
Fields = tuple[bytes, float, int, tuple[str, ...]]   # encoded value, expires, priority, tags


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


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
        self._refusals: tuple[type[BaseException], ...] = (redis.ResponseError, redis.AuthenticationError)
        self._watch_error: type[BaseException] = redis.WatchError
        self.url = redacted(url)
        try:
            self._r: Any = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        except ValueError as e:
            raise errors.ValidationError(f"redis_url {self.url!r} is not a Redis URL: {e}", path="redis_url",
                                         hint="e.g. redis://127.0.0.1:6379/0 (scheme redis, rediss or unix)") from e
        self.state = "ok"           # ok | unreachable | refused (see the module doc)
        self.detail = ""
        self.since = time.time()
        self.prefix = namespace + ":"
        self.channel = namespace + ":!inval"
        self.counters = counters
        self._on_invalidate = on_invalidate
        self._me = uuid.uuid4().hex.encode()
        self._unlock = self._r.register_script(_UNLOCK)
        self._incr = self._r.register_script(_INCR)
        self._down_until = 0.0
        self._backoff = _BACKOFF[0]
        self._closed = threading.Event()
        self.listening = threading.Event()
        reachable = self.ping()
        self._listener = threading.Thread(target=self._listen, name="kuradb-cache-inval", daemon=True)
        self._listener.start()
        if reachable:   # so that a cache is told of others' changes from its first read on
            self.listening.wait(2.0)

    # -- failure handling -------------------------------------------------------------

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def ping(self) -> bool:
        return bool(self._call(lambda: self._r.ping(), False))

    def _failed(self, e: BaseException) -> None:
        self.counters.errors += 1
        self._down_until = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, _BACKOFF[1])
        self._note(e)

    def _note(self, e: BaseException) -> None:
        """Record why Redis cannot be used; log it once per change of state."""
        state = "refused" if isinstance(e, self._refusals) else "unreachable"
        detail = f"{type(e).__name__}: {e}"
        if state != self.state:
            self.state, self.since = state, time.time()
            if state == "refused":
                log.warning("Redis at %s refuses this cache (%s): caching in this process's own tiers only, "
                            "until the URL or the server is fixed; Cache.health() shows it", self.url, detail)
            else:
                log.warning("Redis at %s is unreachable (%s): caching in this process's own tiers only, "
                            "retrying; Cache.health() shows it", self.url, detail)
        self.detail = detail

    def _call(self, fn: Callable[[], Any], fallback: Any = None) -> Any:
        if time.monotonic() < self._down_until:
            return fallback
        try:
            result = fn()
        except self._redis_errors as e:
            self._failed(e)
            return fallback
        self._backoff = _BACKOFF[0]
        if self.state != "ok":
            log.info("Redis at %s is reachable again", self.url)
            self.state, self.detail, self.since = "ok", "", time.time()
        return result

    # -- values -----------------------------------------------------------------------

    def get(self, key: str) -> Fields | None:
        raw = self._call(lambda: self._r.get(self.prefix + key))
        return None if raw is None else self._fields(raw)

    @staticmethod
    def _fields(raw: bytes) -> Fields:
        expires, priority, n = _HEAD.unpack_from(raw)
        tags = raw[_HEAD.size:_HEAD.size + n].decode()
        return raw[_HEAD.size + n:], expires, priority, tuple(tags.split("\x1f")) if tags else ()

    def set(self, key: str, data: bytes, expires: float, priority: int, tags: tuple[str, ...], *,
            only_new: bool = False) -> bool:
        """Store ``key`` (``only_new``: only if Redis does not have it); False if it did not happen."""
        t = "\x1f".join(tags).encode()
        raw = _HEAD.pack(expires, priority, len(t)) + t + data

        def run() -> bool:
            p = self._r.pipeline(transaction=False)
            if expires:
                p.set(self.prefix + key, raw, pxat=max(1, int(expires * 1000)), nx=only_new)
            else:
                p.set(self.prefix + key, raw, nx=only_new)
            for tag in tags:
                p.sadd(self.prefix + "!tag:" + tag, key)
            p.publish(self.channel, self._me + b"\0k\0" + key.encode())
            return bool(p.execute()[0])
        return bool(self._call(run, False))

    def incr(self, key: str, delta: int, change: Callable[[bytes], bytes]) -> Fields | str | None:
        """Add ``delta`` to the integer stored under ``key``, atomically for every client of this Redis.

        The new fields; ``ABSENT``; ``NOT_INT``; or None when Redis cannot be used.
        ``change(encoded) -> encoded`` does the addition where the script cannot.
        """
        if abs(delta) < _EXACT:
            got = self._call(lambda: self._incr(keys=[self.prefix + key], args=[
                str(delta), self.channel, self._me + b"\0k\0" + key.encode()]))
            if got is None or got == 0:
                return None if got is None else ABSENT
            if got == 1:
                return NOT_INT
            if got != 2:
                return self._fields(got)
        return self._call(lambda: self._update(key, change))

    def _update(self, key: str, change: Callable[[bytes], bytes]) -> Fields | str:
        k = self.prefix + key
        with self._r.pipeline() as p:
            while True:
                try:
                    p.watch(k)
                    raw = p.get(k)
                    if raw is None:
                        return ABSENT
                    head = _HEAD.size + _HEAD.unpack_from(raw)[2]
                    new = raw[:head] + change(raw[head:])    # its ValidationError reaches the caller
                    p.multi()
                    p.set(k, new, keepttl=True)
                    p.publish(self.channel, self._me + b"\0k\0" + key.encode())
                    p.execute()
                    return self._fields(new)
                except self._watch_error:
                    continue    # another client changed it between WATCH and EXEC: read it again

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
            except self._redis_errors as e:
                self.listening.clear()
                if not missed:
                    self.counters.errors += 1
                    self._note(e)
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
