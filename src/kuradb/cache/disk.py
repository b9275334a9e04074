"""L3 (disk) and L4 (compressed archive): what goes where in the cache directory's file, shared by every process.

A key lives in at most one of the two (tier 3 or 4). Writes go to L3; when L3
is over its byte budget its least valuable entries (lowest priority, then least
recently used) move to L4, compressed; when L4 is over its budget they are
deleted. Item and byte totals are kept in the file (backends/sqlite/cachefile.py),
so every process sees the same numbers. Reads never write: the access times of
L3 hits are kept in memory and written with the next write transaction.

A full disk is ``StorageFull`` and the write changes nothing (``Cache`` writes
here before it changes memory or Redis). The one write made after another tier
changed, ``incr``'s copy of what Redis added, passes ``shadow=True``: if it fails,
the key's now stale row is shadowed in memory (reads skip the disk for it) until
a later write transaction succeeds, which first deletes those rows. More than
``_STALE_MAX`` such keys shadow the whole tier, and the first write that succeeds empties it.
"""
from __future__ import annotations

import errno
import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .. import errors
from ..backends.sqlite.cachefile import CacheFile, CacheTx

RAW, ZSTD, ZSTD_DICT = 0, 1, 2
_DICT_SAMPLES = 1000       # values moved to L4 before a dictionary is trained from them
_DICT_BYTES = 16 * 1024    # 2.76x on ~200-byte JSON against 1.25x without (docs/DECISIONS.md)
_STALE_MAX = 10_000        # shadowed keys remembered one by one; beyond, the whole tier is shadowed
_EXPIRED_BATCH = 64        # expired entries removed by one write
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_WARN_EVERY = 300.0        # seconds between two warnings that the disk is full
log = logging.getLogger("kuradb.cache")


class DiskTiers:
    """L3 and, when ``archive_max_bytes`` > 0, L4. Thread-safe (one file behind a lock)."""

    def __init__(self, directory: str, *, max_bytes: int, archive_max_bytes: int, archive_ttl: float | None) -> None:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as e:
            if e.errno in _FULL_ERRNOS:
                raise errors.StorageFull(f"cannot create the cache directory {directory!r}: the disk is full",
                                         hint="free space, or create the cache without a directory") from e
            raise errors.PermissionDenied(f"cannot create the cache directory {directory!r}: {e.strerror}") from e
        self.directory = directory
        self.max_bytes = max_bytes
        self.archive_max_bytes = archive_max_bytes
        self.archive_ttl = archive_ttl
        self._zstd: Any = None
        self._zc: Any = None
        self._zd: Any = None
        self._zcd: Any = None
        self._zdd: Any = None
        self._samples: list[bytes] = []
        if archive_max_bytes:
            self._open_zstd()
        self._lock = threading.Lock()
        self._touched: dict[str, float] = {}
        self._stale: set[str] = set()
        self._stale_all = False
        self.full_since: float | None = None    # when a write last failed for want of space, until one succeeds
        self.full_detail = ""
        self._warned, self._warned_at = False, 0.0
        self._file = CacheFile(directory)
        self.path = self._file.path
        if archive_max_bytes:
            try:
                self._load_dictionary()
            except errors.KuraError:
                self._file.close()
                raise

    @contextmanager
    def _writing(self, shadows: Iterable[str] = ()) -> Iterator[CacheTx]:
        """The lock and one write transaction.

        The rows shadowed by earlier failed writes are deleted first. If this one fails
        for want of space, the keys in ``shadows`` are shadowed in turn.
        """
        with self._lock:
            try:
                with self._file.transaction() as tx:
                    self._purge_stale(tx)
                    yield tx
            except errors.StorageFull as e:
                self._full(e, shadows)
                raise
            self._stale.clear()
            self._stale_all = False
            self.full_since = None
            if self._warned:
                self._warned = False
                log.info("the disk holding the cache %r takes writes again", self.directory)

    def _full(self, e: errors.StorageFull, shadows: Iterable[str]) -> None:
        """A write failed for want of space: shadow the rows it left stale, say so now and then (lock held)."""
        self._stale.update(shadows)
        if len(self._stale) > _STALE_MAX:
            self._stale_all = True
            self._stale.clear()
        now = time.time()
        if self.full_since is None:
            self.full_since = now
        if now - self._warned_at > _WARN_EVERY:     # a nearly full disk flaps between fitting and not
            self._warned, self._warned_at = True, now
            log.warning("the disk holding the cache %r is full: writes raise StorageFull and change nothing "
                        "until space is freed; the cache serves what it holds", self.directory)
        self.full_detail = str(e.__cause__ or e)

    def _purge_stale(self, tx: CacheTx) -> None:
        if self._stale_all:
            self._touched.clear()
            tx.clear()
        elif self._stale:
            tx.delete_many(self._stale)

    def close(self) -> None:
        with self._lock:
            if self._touched:
                try:
                    with self._file.transaction() as tx:
                        self._flush_touched(tx)
                except errors.KuraError:
                    pass    # read times only order evictions: closing matters more
            self._file.close()

    # -- reads ---------------------------------------------------------------------

    def get(self, key: str) -> tuple[int, bytes, float, int, tuple[str, ...]] | None:
        """(tier, encoded value, expires, priority, tags) or None. Expired rows are returned as they are."""
        with self._lock:
            if self._stale_all or key in self._stale:     # shadowed: a failed write left the row stale
                return None
            row = self._file.get(key)
            if row is None:
                return None
            tier, value, codec, expires, priority, tags = row
            if tier == 3:
                self._touched[key] = time.time()
            if codec != RAW and (self._zd is None or (codec == ZSTD_DICT and self._zdd is None)):
                self._ready_zstd(codec)     # archived earlier by a cache opened with an archive
        return tier, self._unpacked(value, codec), expires, priority, tags

    def _ready_zstd(self, codec: int) -> None:
        if self._zd is None:
            self._open_zstd()
        if codec == ZSTD_DICT and self._zdd is None:
            self._load_dictionary()

    def _unpacked(self, value: bytes, codec: int) -> bytes:
        if codec == ZSTD:
            return bytes(self._zd.decompress(value))
        if codec == ZSTD_DICT:
            return bytes(self._zdd.decompress(value))
        return bytes(value)

    def count(self) -> int:
        """Entries in L3 and L4 (expired ones not yet removed included)."""
        with self._lock:
            return self._file.count()

    def victims(self, n: int) -> list[str]:
        """The ``n`` least valuable keys: the archive's first, then by priority, then least recently read."""
        with self._lock:
            return self._file.victims(n)

    def usage(self) -> dict[int, tuple[int, int]]:
        with self._lock:
            return self._file.usage()

    def keys(self, pattern: str | None = None, tag: str | None = None) -> list[str]:
        with self._lock:
            if self._stale_all:
                return []
            keys = [k for k in self._file.keys(tag) if k not in self._stale]
        if pattern is not None:
            keys = [k for k in keys if fnmatch.fnmatchcase(k, pattern)]
        return keys

    # -- writes --------------------------------------------------------------------

    def put(self, key: str, data: bytes, expires: float, priority: int, tags: tuple[str, ...],
            tier: int = 3, *, shadow: bool = False) -> tuple[int, int]:
        """Store ``key`` in L3 (or L4); returns how many entries moved to L4 and how many were deleted
        to make room. ``shadow``: another tier has this value already, so if the write fails the
        row left here is stale and must not be served."""
        with self._writing((key,) if shadow else ()) as tx:
            now = time.time()
            self._insert(tx, key, data, expires, priority, tags, tier, now)
            self._flush_touched(tx)
            return self._make_room(tx, now)

    def _insert(self, tx: CacheTx, key: str, data: bytes, expires: float, priority: int, tags: tuple[str, ...],
                tier: int, now: float) -> None:
        codec = RAW
        if tier == 4:
            data, codec, expires = self._archived(tx, data, expires, now)
        tx.put(key, tier, data, codec, expires, priority, tags, now)

    def update(self, key: str, change: Callable[[bytes], bytes]
               ) -> tuple[bytes, float, int, tuple[str, ...], tuple[int, int]] | None:
        """Replace ``key``'s value by ``change(value)`` in one write transaction, so that processes
        sharing the directory never lose each other's changes (``Cache.incr``). None if the key is
        absent or expired; ``change``'s exception rolls back. Returns the new value, its expiry,
        priority and tags (kept), and what ``put`` returns."""
        with self._writing() as tx:
            row = self._file.get(key)
            if row is None:
                return None
            tier, value, codec, expires, priority, tags = row
            now = time.time()
            if expires and expires <= now:
                return None
            if codec != RAW:
                self._ready_zstd(codec)
            new = change(self._unpacked(value, codec))
            self._insert(tx, key, new, expires, priority, tags, 3, now)    # read again: back to L3
            self._touched.pop(key, None)
            return new, expires, priority, tags, self._make_room(tx, now)

    def _archived(self, tx: CacheTx, data: bytes, expires: float, now: float) -> tuple[bytes, int, float]:
        if self.archive_ttl is not None:
            expires = min(expires or float("inf"), now + self.archive_ttl)
        if self._zcd is None and len(data) <= 4096:
            self._samples.append(data)
            if len(self._samples) >= _DICT_SAMPLES:
                self._train(tx)
        if self._zcd is not None:
            packed, codec = self._zcd.compress(data), ZSTD_DICT
        else:
            packed, codec = self._zc.compress(data), ZSTD
        return (packed, codec, expires) if len(packed) < len(data) else (data, RAW, expires)

    def _open_zstd(self) -> None:
        try:
            import zstandard
        except ImportError as e:
            raise errors.KuraError("the archive tier needs zstandard",
                                   hint="pip install 'kuradb[cache]', or pass archive_max_bytes=0") from e
        self._zstd = zstandard
        self._zc = zstandard.ZstdCompressor(level=1)
        self._zd = zstandard.ZstdDecompressor()

    def _load_dictionary(self) -> None:
        raw = self._file.meta("zstd_dict")
        if raw is not None:
            d = self._zstd.ZstdCompressionDict(raw)
            self._zcd = self._zstd.ZstdCompressor(level=1, dict_data=d)
            self._zdd = self._zstd.ZstdDecompressor(dict_data=d)

    def _train(self, tx: CacheTx) -> None:
        """Train the archive's dictionary once (inside a write transaction: one process does it)."""
        self._load_dictionary()     # another process may have trained it already
        if self._zcd is None:
            try:
                d = self._zstd.train_dictionary(_DICT_BYTES, self._samples)
            except self._zstd.ZstdError:
                self._samples.clear()   # too little variety to train on: try again with new samples
                return
            tx.set_meta("zstd_dict", d.as_bytes())
            self._load_dictionary()
        self._samples.clear()

    def delete(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        with self._writing() as tx:
            n = 0
            for key in keys:
                self._touched.pop(key, None)
                n += tx.delete(key)
            return n

    def clear(self) -> int:
        with self._writing() as tx:
            self._touched.clear()
            return tx.clear()

    def set_expires(self, key: str, expires: float) -> bool:
        with self._writing() as tx:
            return tx.set_expires(key, expires)

    def _flush_touched(self, tx: CacheTx) -> None:
        if self._touched:
            tx.touch(self._touched.items())
            self._touched.clear()

    def _make_room(self, tx: CacheTx, now: float) -> tuple[int, int]:
        """Drop a batch of expired rows, demote L3's overflow to L4, delete L4's overflow."""
        for k in self._file.expired(now, _EXPIRED_BATCH):
            tx.delete(k)
        demoted = dropped = 0
        for tier, budget in ((3, self.max_bytes), (4, self.archive_max_bytes)):
            if tier == 4 and not budget:
                continue   # no archive in this process: what an earlier one archived stays readable
            over = self._file.tier_bytes(tier) - budget
            if over <= 0:
                continue
            for key, value, expires in self._file.coldest(tier, over):
                if tier == 3 and self.archive_max_bytes:
                    packed, codec, exp = self._archived(tx, value, expires, now)
                    tx.move(key, 4, packed, codec, exp)
                    demoted += 1
                else:
                    tx.delete(key)
                    dropped += 1
        return demoted, dropped

    def meta(self, name: str) -> bytes | None:
        with self._lock:
            return self._file.meta(name)

    def set_meta(self, name: str, value: bytes) -> None:
        with self._writing() as tx:
            tx.set_meta(name, value)
