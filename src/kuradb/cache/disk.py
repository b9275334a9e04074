"""L3 (disk) and L4 (compressed archive): one SQLite file in WAL mode, shared by every process using the directory.

A key lives in at most one of the two (``tier`` 3 or 4). Writes go to L3; when L3
is over its byte budget its least valuable entries (lowest priority, then least
recently used) move to L4, compressed; when L4 is over its budget they are
deleted. Item and byte totals are kept by triggers in ``usage``, so every process
sees the same numbers. Reads never write: the access times of L3 hits are kept in
memory and written with the next write transaction.

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

import apsw

from .. import errors

FILE = "cache.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries(
    key TEXT PRIMARY KEY, tier INTEGER NOT NULL, value BLOB NOT NULL, codec INTEGER NOT NULL,
    expires REAL NOT NULL, size INTEGER NOT NULL, priority INTEGER NOT NULL, tags TEXT NOT NULL,
    accessed REAL NOT NULL);
CREATE INDEX IF NOT EXISTS entries_order ON entries(tier, priority, accessed);
CREATE INDEX IF NOT EXISTS entries_expires ON entries(expires) WHERE expires > 0;
CREATE TABLE IF NOT EXISTS tags(tag TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY(tag, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage(tier INTEGER PRIMARY KEY, items INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO usage VALUES (3, 0, 0), (4, 0, 0);
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value BLOB);
CREATE TRIGGER IF NOT EXISTS entries_ins AFTER INSERT ON entries BEGIN
    UPDATE usage SET items = items + 1, bytes = bytes + new.size WHERE tier = new.tier; END;
CREATE TRIGGER IF NOT EXISTS entries_del AFTER DELETE ON entries BEGIN
    UPDATE usage SET items = items - 1, bytes = bytes - old.size WHERE tier = old.tier;
    DELETE FROM tags WHERE key = old.key AND old.tags != ''; END;
CREATE TRIGGER IF NOT EXISTS entries_upd AFTER UPDATE OF tier, size ON entries BEGIN
    UPDATE usage SET items = items - 1, bytes = bytes - old.size WHERE tier = old.tier;
    UPDATE usage SET items = items + 1, bytes = bytes + new.size WHERE tier = new.tier; END;
"""
_GET = "SELECT tier, value, codec, expires, priority, tags FROM entries WHERE key = ?"
RAW, ZSTD, ZSTD_DICT = 0, 1, 2
_DICT_SAMPLES = 1000       # values moved to L4 before a dictionary is trained from them
_DICT_BYTES = 16 * 1024    # 2.76x on ~200-byte JSON against 1.25x without (docs/DECISIONS.md)
_STALE_MAX = 10_000        # shadowed keys remembered one by one; beyond, the whole tier is shadowed
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_WARN_EVERY = 300.0        # seconds between two warnings that the disk is full
log = logging.getLogger("kuradb.cache")


def _is_full(e: BaseException, conn: Any) -> bool:
    """SQLITE_FULL, or an I/O error whose cause was ENOSPC (growing the -shm file of a full disk)."""
    if isinstance(e, apsw.FullError):
        return True
    return isinstance(e, apsw.IOError) and getattr(conn, "system_errno", 0) in _FULL_ERRNOS


class DiskTiers:
    """L3 and, when ``archive_max_bytes`` > 0, L4. Thread-safe (one connection behind a lock)."""

    def __init__(self, directory: str, *, max_bytes: int, archive_max_bytes: int, archive_ttl: float | None) -> None:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as e:
            if e.errno in _FULL_ERRNOS:
                raise errors.StorageFull(f"cannot create the cache directory {directory!r}: the disk is full",
                                         hint="free space, or create the cache without a directory") from e
            raise errors.PermissionDenied(f"cannot create the cache directory {directory!r}: {e.strerror}") from e
        self.directory = directory
        self.path = os.path.join(directory, FILE)
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
        conn: Any = None
        try:
            self._conn = conn = apsw.Connection(self.path)
            self._conn.setbusytimeout(10_000)
            self._conn.execute("PRAGMA journal_mode=WAL").fetchall()
            # recursive_triggers: INSERT OR REPLACE's implicit delete must fire entries_del (usage, tags)
            self._conn.execute("PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA recursive_triggers=ON")
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(_SCHEMA)
            self._conn.execute("COMMIT")
            if archive_max_bytes:
                self._load_dictionary()
        except apsw.Error as e:
            full = _is_full(e, conn)
            if conn is not None:
                conn.close()
            if isinstance(e, apsw.BusyError | apsw.LockedError):
                raise errors.Busy(f"the cache database {self.path!r} stayed locked by another process") from e
            if full:
                raise errors.StorageFull(f"cannot open the cache database {self.path!r}: the disk is full",
                                         hint="free space, or create the cache without a directory") from e
            raise errors.CorruptedData(f"cannot open the cache database {self.path!r}: {e}",
                                       hint="delete the cache directory; a cache holds nothing that is not "
                                            "elsewhere") from e

    @contextmanager
    def _writing(self, shadows: Iterable[str] = ()) -> Iterator[None]:
        """The lock and one write transaction (IMMEDIATE: take the write lock before reading).

        The rows shadowed by earlier failed writes are deleted first. If this one fails
        for want of space, the keys in ``shadows`` are shadowed in turn.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._purge_stale()
                    yield
                    self._conn.execute("COMMIT")
                except BaseException:
                    try:
                        self._conn.execute("ROLLBACK")
                    except apsw.Error:
                        pass    # a failed COMMIT may already have ended the transaction
                    raise
            except apsw.Error as e:
                raise self._failed(e, shadows) from e
            self._stale.clear()
            self._stale_all = False
            self.full_since = None
            if self._warned:
                self._warned = False
                log.info("the disk holding the cache %r takes writes again", self.directory)

    def _failed(self, e: apsw.Error, shadows: Iterable[str]) -> errors.KuraError:
        """The typed error for ``e``; on a full disk, shadow the rows the failed write left stale (lock held)."""
        if isinstance(e, apsw.BusyError | apsw.LockedError):
            return errors.Busy(f"the cache database {self.path!r} stayed locked by another process",
                               hint="another process holds a long write transaction on it")
        if isinstance(e, apsw.CorruptError | apsw.NotADBError):
            return errors.CorruptedData(f"the cache database {self.path!r} is damaged: {e}",
                                        hint="delete the cache directory; a cache holds nothing that is not "
                                             "elsewhere")
        if not _is_full(e, self._conn):
            return errors.KuraError(f"cannot write the cache database {self.path!r}: {e}")
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
        self.full_detail = str(e)
        return errors.StorageFull(f"the disk holding the cache {self.directory!r} is full",
                                  hint="free space; nothing was changed, and the cache serves what it holds")

    def _purge_stale(self) -> None:
        if self._stale_all:
            self._touched.clear()
            self._conn.execute("DELETE FROM tags; DELETE FROM entries; UPDATE usage SET items = 0, bytes = 0")
        elif self._stale:
            self._conn.executemany("DELETE FROM entries WHERE key = ?", ((k,) for k in self._stale))

    def _shadowed(self, key: str) -> bool:
        return self._stale_all or key in self._stale

    def close(self) -> None:
        with self._lock:
            try:
                self._flush_touched()
            except apsw.Error:
                pass
            try:
                self._conn.close()
            except apsw.Error:  # closing checkpoints the WAL, which a full disk refuses: it stays for the next
                self._conn.close(True)

    # -- reads ---------------------------------------------------------------------

    def get(self, key: str) -> tuple[int, bytes, float, int, tuple[str, ...]] | None:
        """(tier, encoded value, expires, priority, tags) or None. Expired rows are returned as they are."""
        with self._lock:
            if self._shadowed(key):
                return None
            row = self._conn.execute(_GET, (key,)).fetchone()
            if row is None:
                return None
            tier, value, codec, expires, priority, tags = row
            if tier == 3:
                self._touched[key] = time.time()
            if codec != RAW and (self._zd is None or (codec == ZSTD_DICT and self._zdd is None)):
                self._ready_zstd(codec)     # archived earlier by a cache opened with an archive
        return tier, self._unpacked(value, codec), expires, priority, tuple(tags.split("\x1f")) if tags else ()

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
            return int(self._one("SELECT coalesce(sum(items), 0) FROM usage"))

    def victims(self, n: int) -> list[str]:
        """The ``n`` least valuable keys: the archive's first, then by priority, then least recently read."""
        with self._lock:
            return [k for (k,) in self._conn.execute(
                "SELECT key FROM entries ORDER BY tier DESC, priority, accessed LIMIT ?", (n,))]

    def usage(self) -> dict[int, tuple[int, int]]:
        with self._lock:
            return {t: (n, b) for t, n, b in self._conn.execute("SELECT tier, items, bytes FROM usage")}

    def keys(self, pattern: str | None = None, tag: str | None = None) -> list[str]:
        with self._lock:
            if self._stale_all:
                return []
            if tag is not None:
                rows = self._conn.execute("SELECT key FROM tags WHERE tag = ?", (tag,))
            else:
                rows = self._conn.execute("SELECT key FROM entries")
            keys = [k for (k,) in rows if k not in self._stale]
        if pattern is not None:
            keys = [k for k in keys if fnmatch.fnmatchcase(k, pattern)]
        return keys

    # -- writes --------------------------------------------------------------------

    def put(self, key: str, data: bytes, expires: float, priority: int, tags: tuple[str, ...],
            tier: int = 3, *, shadow: bool = False) -> tuple[int, int]:
        """Store ``key`` in L3 (or L4); returns how many entries moved to L4 and how many were deleted
        to make room. ``shadow``: another tier has this value already, so if the write fails the
        row left here is stale and must not be served."""
        with self._writing((key,) if shadow else ()):
            now = time.time()
            self._insert(key, data, expires, priority, tags, tier, now)
            self._flush_touched()
            return self._make_room(now)

    def _insert(self, key: str, data: bytes, expires: float, priority: int, tags: tuple[str, ...], tier: int,
                now: float) -> None:
        codec = RAW
        if tier == 4:
            data, codec, expires = self._archived(data, expires, now)
        self._conn.execute(
            "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, tier, data, codec, expires, len(data) + len(key), priority, "\x1f".join(tags), now))
        if tags:
            self._conn.executemany("INSERT OR IGNORE INTO tags VALUES (?, ?)", ((t, key) for t in tags))

    def update(self, key: str, change: Callable[[bytes], bytes]
               ) -> tuple[bytes, float, int, tuple[str, ...], tuple[int, int]] | None:
        """Replace ``key``'s value by ``change(value)`` in one write transaction, so that processes
        sharing the directory never lose each other's changes (``Cache.incr``). None if the key is
        absent or expired; ``change``'s exception rolls back. Returns the new value, its expiry,
        priority and tags (kept), and what ``put`` returns."""
        with self._writing():
            row = self._conn.execute(_GET, (key,)).fetchone()
            if row is None:
                return None
            tier, value, codec, expires, priority, tags = row
            now = time.time()
            if expires and expires <= now:
                return None
            if codec != RAW:
                self._ready_zstd(codec)
            new = change(self._unpacked(value, codec))
            tag_tuple = tuple(tags.split("\x1f")) if tags else ()
            self._insert(key, new, expires, priority, tag_tuple, 3, now)    # read again: back to L3
            self._touched.pop(key, None)
            return new, expires, priority, tag_tuple, self._make_room(now)

    def _archived(self, data: bytes, expires: float, now: float) -> tuple[bytes, int, float]:
        if self.archive_ttl is not None:
            expires = min(expires or float("inf"), now + self.archive_ttl)
        if self._zcd is None and len(data) <= 4096:
            self._samples.append(data)
            if len(self._samples) >= _DICT_SAMPLES:
                self._train()
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
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'zstd_dict'").fetchone()
        if row is not None:
            d = self._zstd.ZstdCompressionDict(bytes(row[0]))
            self._zcd = self._zstd.ZstdCompressor(level=1, dict_data=d)
            self._zdd = self._zstd.ZstdDecompressor(dict_data=d)

    def _train(self) -> None:
        """Train the archive's dictionary once (inside a write transaction: one process does it)."""
        self._load_dictionary()     # another process may have trained it already
        if self._zcd is None:
            try:
                d = self._zstd.train_dictionary(_DICT_BYTES, self._samples)
            except self._zstd.ZstdError:
                self._samples.clear()   # too little variety to train on: try again with new samples
                return
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('zstd_dict', ?)", (d.as_bytes(),))
            self._load_dictionary()
        self._samples.clear()

    def delete(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        with self._writing():
            n = 0
            for key in keys:
                self._touched.pop(key, None)
                self._conn.execute("DELETE FROM entries WHERE key = ?", (key,))
                n += self._conn.changes()
            return n

    def clear(self) -> int:
        with self._writing():
            self._touched.clear()
            n = self._one("SELECT count(*) FROM entries")
            self._conn.execute("DELETE FROM tags; DELETE FROM entries; UPDATE usage SET items = 0, bytes = 0")
            return int(n)

    def set_expires(self, key: str, expires: float) -> bool:
        with self._writing():
            self._conn.execute("UPDATE entries SET expires = ? WHERE key = ?", (expires, key))
            return self._conn.changes() > 0

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        row = self._conn.execute(sql, args).fetchone()
        assert row is not None
        return row[0]

    def _flush_touched(self) -> None:
        if self._touched:
            self._conn.executemany("UPDATE entries SET accessed = ? WHERE key = ? AND tier = 3",
                                   ((t, k) for k, t in self._touched.items()))
            self._touched.clear()

    def _make_room(self, now: float) -> tuple[int, int]:
        """Drop a batch of expired rows, demote L3's overflow to L4, delete L4's overflow."""
        gone = [k for (k,) in self._conn.execute(
            "SELECT key FROM entries WHERE expires > 0 AND expires <= ? LIMIT 64", (now,))]
        for k in gone:
            self._conn.execute("DELETE FROM entries WHERE key = ?", (k,))
        demoted = dropped = 0
        for tier, budget in ((3, self.max_bytes), (4, self.archive_max_bytes)):
            if tier == 4 and not budget:
                continue   # no archive in this process: what an earlier one archived stays readable
            over = self._one("SELECT bytes FROM usage WHERE tier = ?", (tier,)) - budget
            if over <= 0:
                continue
            rows = self._conn.execute(
                "SELECT key, value, expires, size FROM entries WHERE tier = ? ORDER BY priority, accessed",
                (tier,))
            victims = []
            for key, value, expires, size in rows:
                victims.append((key, value, expires))
                over -= size
                if over <= 0:
                    break
            for key, value, expires in victims:
                if tier == 3 and self.archive_max_bytes:
                    packed, codec, exp = self._archived(value, expires, now)
                    self._conn.execute("UPDATE entries SET tier = 4, value = ?, codec = ?, expires = ?, size = ? "
                                       "WHERE key = ?", (packed, codec, exp, len(packed) + len(key), key))
                    demoted += 1
                else:
                    self._conn.execute("DELETE FROM entries WHERE key = ?", (key,))
                    dropped += 1
        return demoted, dropped

    def meta(self, name: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
            return None if row is None else bytes(row[0])

    def set_meta(self, name: str, value: bytes) -> None:
        with self._writing():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))
