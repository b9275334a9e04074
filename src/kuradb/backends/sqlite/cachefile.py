"""The cache's disk tiers in a SQLite file: entries of L3 and L4, their tags, usage totals and meta, in WAL mode.

``kuradb.cache.disk.DiskTiers`` decides what goes where (budgets, demotion,
compression, shadowing after a failed write); this module only stores it. One
file per cache directory, shared by every process using the directory:

    entries  key -> tier (3 or 4), value, codec, expires (0: never), size, priority, tags, accessed
    tags     (tag, key) for the keys that carry tags
    usage    items and bytes per tier, kept by triggers so that every process sees the same totals
    meta     named blobs (the archive's zstd dictionary, saved statistics, the access log)

A ``CacheFile`` is not thread-safe: its caller serializes the calls (one
connection behind ``DiskTiers``' lock). Reads are methods of the file and work
in or out of a transaction; writes are methods of the ``CacheTx`` that
``transaction()`` opens. Driver errors come out as kuradb errors: Busy when
another process keeps the file locked, StorageFull on a full disk (SQLITE_FULL,
or an I/O error whose cause was ENOSPC/EDQUOT: growing the -shm file of a full
disk), CorruptedData on damage; the rest as the store's ``translate`` classes them.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import apsw

from ... import errors
from .errors import translate

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
_PUT = "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_TAG = "INSERT OR IGNORE INTO tags VALUES (?, ?)"
_DELETE = "DELETE FROM entries WHERE key = ?"
_CLEAR = "DELETE FROM tags; DELETE FROM entries; UPDATE usage SET items = 0, bytes = 0"
_SEP = "\x1f"       # between the tags of one entry (a tag is a str without control characters: cache/checks.py)
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DELETE_HINT = "delete the cache directory; a cache holds nothing that is not elsewhere"

# (tier, value, codec, expires, priority, tags): one entry as ``CacheFile.get`` returns it
Entry = tuple[int, bytes, int, float, int, tuple[str, ...]]


def is_full(e: BaseException, conn: Any) -> bool:
    """SQLITE_FULL, or an I/O error whose cause was ENOSPC or EDQUOT."""
    if isinstance(e, apsw.FullError):
        return True
    return isinstance(e, apsw.IOError) and getattr(conn, "system_errno", 0) in _FULL_ERRNOS


class CacheFile:
    """One cache directory's SQLite file, opened (created if absent) with its schema."""

    def __init__(self, directory: str) -> None:
        """Open ``directory``/cache.db. Busy, StorageFull, else CorruptedData (delete the directory) if it cannot."""
        self.directory = directory
        self.path = os.path.join(directory, FILE)
        conn: Any = None
        try:
            self._conn = conn = apsw.Connection(self.path)
            conn.setbusytimeout(10_000)
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            # recursive_triggers: INSERT OR REPLACE's implicit delete must fire entries_del (usage, tags)
            conn.execute("PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA recursive_triggers=ON")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_SCHEMA)
            conn.execute("COMMIT")
        except apsw.Error as e:
            full = is_full(e, conn)
            if conn is not None:
                conn.close()
            if isinstance(e, apsw.BusyError | apsw.LockedError):
                raise errors.Busy(f"the cache database {self.path!r} stayed locked by another process") from e
            if full:
                raise errors.StorageFull(f"cannot open the cache database {self.path!r}: the disk is full",
                                         hint="free space, or create the cache without a directory") from e
            raise errors.CorruptedData(f"cannot open the cache database {self.path!r}: {e}", hint=_DELETE_HINT) from e
        self._tx = CacheTx(self, conn)

    def failed(self, e: apsw.Error, doing: str = "write") -> errors.KuraError:
        """The kuradb error for a driver error met while doing ``doing`` ("read", "write") (chain it: ``from e``)."""
        if isinstance(e, apsw.BusyError | apsw.LockedError):
            return errors.Busy(f"the cache database {self.path!r} stayed locked by another process",
                               hint="another process holds a long write transaction on it")
        if is_full(e, self._conn):
            return errors.StorageFull(f"the disk holding the cache {self.directory!r} is full",
                                      hint="free space; nothing was changed, and the cache serves what it holds")
        if isinstance(e, apsw.CorruptError | apsw.NotADBError):
            return errors.CorruptedData(f"the cache database {self.path!r} is damaged: {e}", hint=_DELETE_HINT)
        # the store's classes (ReadOnly, PermissionDenied, Closed, ...) with the cache's words
        kind = type(translate(e))
        return kind(f"cannot {doing} the cache database {self.path!r}: {e}")

    def transaction(self) -> CacheTx:
        """``with file.transaction() as tx``: one IMMEDIATE write transaction (the write lock taken before
        reading), committed at the end of the block, rolled back if it raises; driver errors leave it translated."""
        return self._tx

    def close(self) -> None:
        try:
            self._conn.close()
        except apsw.Error:  # closing checkpoints the WAL, which a full disk refuses: it stays for the next
            self._conn.close(True)

    # -- reads (in or out of a transaction) ------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """``key``'s entry, expired or not, or None."""
        try:
            row = self._conn.execute(_GET, (key,)).fetchone()
        except apsw.Error as e:
            raise self.failed(e, "read") from e
        if row is None:
            return None
        tier, value, codec, expires, priority, tags = row
        return tier, value, codec, expires, priority, tuple(tags.split(_SEP)) if tags else ()

    def count(self) -> int:
        """Entries in L3 and L4 (expired ones not yet removed included)."""
        return int(self._one("SELECT coalesce(sum(items), 0) FROM usage"))

    def usage(self) -> dict[int, tuple[int, int]]:
        """{tier: (items, bytes)} for tiers 3 and 4."""
        try:
            return {t: (n, b) for t, n, b in self._conn.execute("SELECT tier, items, bytes FROM usage")}
        except apsw.Error as e:
            raise self.failed(e, "read") from e

    def tier_bytes(self, tier: int) -> int:
        try:    # read by every write: no helper in between
            row = self._conn.execute("SELECT bytes FROM usage WHERE tier = ?", (tier,)).fetchone()
        except apsw.Error as e:
            raise self.failed(e, "read") from e
        assert row is not None      # the schema puts a row per tier in usage
        return int(row[0])

    def keys(self, tag: str | None = None) -> list[str]:
        """Every key, or those carrying ``tag``."""
        try:
            if tag is not None:
                return [k for (k,) in self._conn.execute("SELECT key FROM tags WHERE tag = ?", (tag,))]
            return [k for (k,) in self._conn.execute("SELECT key FROM entries")]
        except apsw.Error as e:
            raise self.failed(e, "read") from e

    def victims(self, n: int) -> list[str]:
        """The ``n`` least valuable keys: tier 4's first, then by priority, then least recently read."""
        return self._keys("SELECT key FROM entries ORDER BY tier DESC, priority, accessed LIMIT ?", (n,))

    def expired(self, now: float, limit: int) -> list[str]:
        """Up to ``limit`` keys whose expiry is past at ``now``."""
        # the limit written into the statement: as a parameter the query took 5.4 us instead of 2.9
        sql = f"SELECT key FROM entries WHERE expires > 0 AND expires <= ? LIMIT {int(limit)}"
        try:    # run by every write: no helper in between
            return [k for (k,) in self._conn.execute(sql, (now,))]
        except apsw.Error as e:
            raise self.failed(e, "read") from e

    def coldest(self, tier: int, nbytes: int) -> list[tuple[str, bytes, float]]:
        """(key, value, expires) of ``tier``'s least valuable entries (lowest priority, then least recently
        read), the fewest whose sizes add up to ``nbytes`` or more (all of the tier's if they do not).

        A list, so that the query has finished before the caller moves or deletes them: rows written
        while a SELECT of the connection is unfinished keep SQLite from restarting the WAL, which then
        grows by every write (89 MiB after 3,000 writes; test_a_full_disk_budget_keeps_the_wal_small)."""
        out = []
        try:
            rows = self._conn.execute(
                "SELECT key, value, expires, size FROM entries WHERE tier = ? ORDER BY priority, accessed", (tier,))
            for key, value, expires, size in rows:
                out.append((key, value, expires))
                nbytes -= size
                if nbytes <= 0:
                    break
        except apsw.Error as e:
            raise self.failed(e, "read") from e
        return out

    def meta(self, name: str) -> bytes | None:
        row = self._one_row("SELECT value FROM meta WHERE name = ?", (name,))
        return None if row is None else bytes(row[0])

    def _keys(self, sql: str, args: tuple[Any, ...]) -> list[str]:
        try:
            return [k for (k,) in self._conn.execute(sql, args)]
        except apsw.Error as e:
            raise self.failed(e, "read") from e

    def _one_row(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        try:
            return self._conn.execute(sql, args).fetchone()
        except apsw.Error as e:
            raise self.failed(e, "read") from e

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        row = self._one_row(sql, args)
        assert row is not None
        return row[0]


class CacheTx:
    """The writes of one transaction on a ``CacheFile`` (``CacheFile.transaction()``; reusable, not nestable).

    ``size``, what the tiers' byte budgets count, is the stored value's length plus the key's.
    """

    __slots__ = ("_file", "_conn")

    def __init__(self, file: CacheFile, conn: Any) -> None:
        self._file = file
        self._conn = conn

    def __enter__(self) -> CacheTx:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except apsw.Error as e:
            raise self._file.failed(e) from e
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            try:
                self._conn.execute("COMMIT")
                return
            except apsw.Error as e:
                exc = e
        try:
            self._conn.execute("ROLLBACK")
        except apsw.Error:
            pass    # a failed COMMIT or a full disk may already have ended the transaction
        if isinstance(exc, apsw.Error):
            raise self._file.failed(exc) from exc
        # anything else (the caller's own exception, a read's translated error) goes on as it is

    def put(self, key: str, tier: int, value: bytes, codec: int, expires: float, priority: int,
            tags: tuple[str, ...], accessed: float) -> None:
        """Insert or replace ``key``'s entry."""
        self._conn.execute(_PUT, (key, tier, value, codec, expires, len(value) + len(key), priority,
                                  _SEP.join(tags), accessed))
        if tags:
            self._conn.executemany(_TAG, ((t, key) for t in tags))

    def move(self, key: str, tier: int, value: bytes, codec: int, expires: float) -> None:
        """Put ``key``'s entry into ``tier`` with a new value (e.g. compressed), codec and expiry."""
        self._conn.execute("UPDATE entries SET tier = ?, value = ?, codec = ?, expires = ?, size = ? WHERE key = ?",
                           (tier, value, codec, expires, len(value) + len(key), key))

    def delete(self, key: str) -> bool:
        """Remove ``key``'s entry (and its tags); True if there was one."""
        self._conn.execute(_DELETE, (key,))
        return bool(self._conn.changes())

    def delete_many(self, keys: Iterable[str]) -> None:
        self._conn.executemany(_DELETE, ((k,) for k in keys))

    def clear(self) -> int:
        """Remove every entry; returns how many there were."""
        n = self._conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        self._conn.execute(_CLEAR)
        return int(n)

    def set_expires(self, key: str, expires: float) -> bool:
        """True if ``key`` has an entry."""
        self._conn.execute("UPDATE entries SET expires = ? WHERE key = ?", (expires, key))
        return bool(self._conn.changes())

    def touch(self, accessed: Iterable[tuple[str, float]]) -> None:
        """Set when (key, time) pairs were last read, for the keys still in tier 3 (tier 4 keeps its order)."""
        self._conn.executemany("UPDATE entries SET accessed = ? WHERE key = ? AND tier = 3",
                               ((t, k) for k, t in accessed))

    def set_meta(self, name: str, value: bytes) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))


def read_saved(directory: str) -> tuple[dict[int, tuple[int, int]], bytes | None] | None:
    """Without opening the cache for writing: ({tier: (items, bytes)}, the ``stats`` meta blob or None),
    or None if ``directory`` holds no cache file. CorruptedData if it cannot be read."""
    path = os.path.join(directory, FILE)
    if not os.path.exists(path):
        return None
    try:
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        try:
            conn.setbusytimeout(5000)
            usage = {t: (n, b) for t, n, b in conn.execute("SELECT tier, items, bytes FROM usage")}
            row = conn.execute("SELECT value FROM meta WHERE name = 'stats'").fetchone()
        finally:
            conn.close()
    except apsw.Error as e:
        raise errors.CorruptedData(f"cannot read the cache database {path!r}: {e}") from e
    return usage, None if row is None else bytes(row[0])
