"""Store and open(): the entry point that ties collections, blobs and the change log to a backend."""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import apsw
import orjson

from . import audit, backups, errors, health, integrity, options
from .audit import AuditEntry
from .backups import BackupInfo
from .blobs import BlobStore
from .collection import Collection, now_us
from .encoding import DEFAULT_MAX_DOCUMENT_BYTES
from .health import Health
from .ids import check_author, check_collection_name
from .integrity import Report
from .opstats import OpStats
from .query import indexes
from .query.catalog import ArrayCatalog
from .readcache import CacheConfig, ReadCache
from .records import Change, from_us, to_us
from .schedule import BackupSchedule
from .schemas import compile_schema
from .sqlite import READ_ERRORS, SQLiteBackend, Transaction, all_rows, scalar, translate

_CHANGE_COLS = "position, kind, collection, id, version, rev, op, at, author"


def _check_position(value: Any, name: str) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise errors.ValidationError(f"{name} must be a change-log position (an int >= 0), not {value!r}",
                                     path=name, hint="positions come from store.position or Change.position")
    return value


def open(location: str | os.PathLike[str], *, durability: str = "normal", cache: Any = None,
         encryption_key: Any = None, read_only: bool = False, author: str | None = None,
         timeout: float = 5.0, max_document_size: int = DEFAULT_MAX_DOCUMENT_BYTES,
         create: bool | None = None) -> Store:
    """Open the store at ``location``, making it if there is none yet.

    ``location`` is a directory, or ``":memory:"`` for a throwaway store that
    lives in a private temporary directory (RAM-backed where the OS offers it)
    and is deleted on close. A store is made in a directory that is missing or
    empty; ``create=True`` also makes one in a directory that holds other files,
    ``create=False`` never makes one (NotFound). An existing database file is
    never re-initialised: one that is empty or not a kuradb store is refused
    (CorruptedData). ``timeout`` bounds how long a writer waits for another
    writer before raising ``Busy``. ``encryption_key`` (32 bytes, or a
    passphrase str) encrypts the database, its WAL and the blob files
    (kuradb/atrest.py); a wrong or missing key raises ``PermissionDenied``.
    """
    if not isinstance(location, (str, os.PathLike)):
        raise errors.ValidationError(f"location must be a directory path or ':memory:', not"
                                     f" {type(location).__name__}", path="location")
    location = os.fspath(location)
    if not isinstance(location, str):
        location = os.fsdecode(location)
    if not location or "\x00" in location:
        raise errors.ValidationError(f"location {location!r} is not a path", path="location")
    _check_open_options(durability=durability, read_only=read_only, author=author, timeout=timeout,
                        max_document_size=max_document_size, create=create)
    if location.startswith(("postgresql://", "postgres://", "http://", "https://")):
        raise errors.KuraError(f"{location.split(':')[0]} stores are not available in this version",
                               hint="open a directory or ':memory:'")
    cache_config = CacheConfig.of(cache)
    temporary = None
    if location == ":memory:":
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        temporary = location = tempfile.mkdtemp(prefix="kuradb-", dir=base)
    try:
        return Store(location, durability=durability, read_only=read_only, author=author,
                     timeout=timeout, max_document_size=max_document_size, temporary=temporary is not None,
                     cache=cache_config, encryption_key=encryption_key, create=create)
    except BaseException:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
        raise


def _check_open_options(*, durability: Any, read_only: Any, author: Any, timeout: Any, max_document_size: Any,
                        create: Any) -> None:
    if durability not in ("full", "normal", "off"):
        raise errors.ValidationError(f"durability must be one of full, normal, off, not {durability!r}",
                                     path="durability")
    for name, value in (("read_only", read_only), ("create", create)):
        if not isinstance(value, bool) and not (name == "create" and value is None):
            raise errors.ValidationError(f"{name} must be True or False, not {value!r}", path=name)
    check_author(author)
    if type(timeout) not in (int, float) or not 0 <= timeout <= 86_400:
        raise errors.ValidationError(f"timeout must be a number of seconds from 0 to 86400, not {timeout!r}",
                                     path="timeout")
    if type(max_document_size) is not int or not 1 <= max_document_size <= 1 << 30:
        raise errors.ValidationError(f"max_document_size must be an int from 1 to 2**30 bytes, not"
                                     f" {max_document_size!r}", path="max_document_size")


class Store:
    """A kuradb store: collections of versioned records, blobs and one change log.

    Safe to share between threads; several processes may open the same directory.
    Use as a context manager, or call ``close()``.
    """

    def __init__(self, directory: str, *, durability: str = "normal", read_only: bool = False,
                 author: str | None = None, timeout: float = 5.0,
                 max_document_size: int = DEFAULT_MAX_DOCUMENT_BYTES, temporary: bool = False,
                 cache: CacheConfig | None = None, encryption_key: Any = None, create: bool | None = None) -> None:
        self.directory = directory
        self.author = author
        self.max_document_size = max_document_size
        self._temporary = temporary
        self._pid = os.getpid()
        self._backend = SQLiteBackend(directory, durability=durability, read_only=read_only,
                                      timeout=timeout, key=encryption_key, create=create)
        self._collections: dict[str, Collection] = {}
        self._ensured: set[str] = set()  # collections known to have their row
        self._arrays = ArrayCatalog()
        self._lock = threading.Lock()
        self._ops = OpStats()
        self._schedules: list[BackupSchedule] = []
        self._changed = threading.Condition()
        self._watchers = 0  # commits wake watchers only when there are some
        self._backend.on_commit(self._notify)
        self.blobs = BlobStore(self, os.path.join(directory, "blobs"))
        self._read_cache: ReadCache | None = None
        if cache is not None:
            self._read_cache = ReadCache(self._backend.path, cache, encryption_key)
            if cache.max_staleness:
                self._backend.on_commit(self._read_cache.catch_up)   # own commits: seen at once

    @property
    def durability(self) -> str:
        return self._backend.durability

    @property
    def read_only(self) -> bool:
        return self._backend.read_only

    def __repr__(self) -> str:
        return f"<kuradb.Store {self.directory!r} durability={self.durability}>"

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection (after stopping backup schedules); later calls raise Closed. Idempotent."""
        for schedule in self._schedules:
            schedule.stop(timeout=60)
        rc, self._read_cache = self._read_cache, None
        if rc is not None:
            rc.close()
        self._backend.close()
        with self._changed:
            self._changed.notify_all()
        if self._temporary and os.getpid() == self._pid:  # a forked child must not remove it
            shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return self._backend._closed

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- collections -------------------------------------------------------------------

    def collection(self, name: str, *, schema: Any = None, keep_history: int | None = None,
                   vector: Any = None) -> Collection:
        """The collection ``name`` (created on first write), with its options.

        Options are saved in the database and every handle, in every process,
        honours the saved ones at write time (kuradb/options.py). Given here, a
        JSON Schema dict replaces the saved one and ``keep_history`` may set or
        raise the limit; lowering it is ``configure(keep_history=N)``. A pydantic
        model is kept by this Store's handles only.
        """
        check_collection_name(name)
        if vector is not None:
            raise errors.KuraError("vector collections are not available in this version")
        options.check_keep_history(keep_history)
        model = None
        if schema is not None and not isinstance(schema, dict):
            compile_schema(schema, name)      # a pydantic model class, or a clear error
            model = schema
        with self._lock:
            existing = self._collections.get(name)
            if existing is not None and schema is None and keep_history is None:
                return existing
            if keep_history is not None or isinstance(schema, dict):
                self._configure(name, keep_history=options.UNSET if keep_history is None else keep_history,
                                schema=schema if isinstance(schema, dict) else options.UNSET, explicit=False)
            coll = Collection(self, name, model=model)
            self._collections[name] = coll
            return coll

    __getitem__ = collection

    def _configure(self, name: str, *, keep_history: Any, schema: Any, explicit: bool) -> options.Options:
        """Change a collection's saved options in one write transaction (see kuradb/options.py)."""
        with self._backend.transaction() as tx:
            row: Any = tx.cur.execute("SELECT options FROM collections WHERE name=?", (name,)).fetchone()
            saved = options.parse(name, row[0] if row else None)
            new = options.merge(name, saved, row is not None, keep_history=keep_history, schema=schema,
                                explicit=explicit)
            if new is not saved:
                body = new.to_json()
                self._ensure_collection(tx, name)
                tx.cur.execute("UPDATE collections SET options=? WHERE name=?", (orjson.dumps(body).decode(), name))
                self._append_log(tx, "collection", name, None, None, None, "options", None, body)
            return new

    def _options(self, cur: Any, name: str) -> options.Options:
        """The collection's saved options as ``cur``'s transaction or snapshot sees them."""
        try:
            row: Any = cur.execute("SELECT options FROM collections WHERE name=?", (name,)).fetchone()
        except READ_ERRORS as e:
            raise translate(e, f"collection {name}") from e
        return options.parse(name, row[0] if row else None)

    def _ensure_collection(self, tx: Transaction, name: str) -> None:
        tx.cur.execute("INSERT OR IGNORE INTO collections(name, created) VALUES(?, ?)", (name, now_us()))
        tx.ensured.add(name)
        tx.after_commit.append(lambda: self._ensured.add(name))

    def collections(self) -> list[str]:
        """Names of the collections that exist (that were written to or given options)."""
        # Records are the truth: a collection whose row another process dropped while
        # this one still had it cached is listed as long as it has records.
        try:
            rows = all_rows(
                self._backend.reader(), "WITH RECURSIVE c(n) AS (SELECT min(collection) FROM docs UNION ALL"
                " SELECT (SELECT min(collection) FROM docs WHERE collection > n) FROM c WHERE n IS NOT NULL)"
                " SELECT n FROM c WHERE n IS NOT NULL UNION SELECT name FROM collections ORDER BY 1")
        except READ_ERRORS as e:
            raise translate(e, "collections") from e
        return [r[0] for r in rows]

    def drop_collection(self, name: str) -> None:
        """Delete a collection, its records and their history; NotFound if it does not exist."""
        check_collection_name(name)
        with self._backend.write() as tx:
            conn = tx.cur
            if conn.execute("DELETE FROM collections WHERE name=? RETURNING name", (name,)).fetchone() is None:
                raise errors.NotFound(f"collection {name!r} does not exist")
            indexes.drop_all(tx, name)
            positions = conn.execute(
                "WITH RECURSIVE chain(p) AS (SELECT position FROM docs WHERE collection=?"
                " UNION ALL SELECT log.prev FROM log JOIN chain ON log.position = chain.p"
                " WHERE log.prev IS NOT NULL)"
                " UPDATE log SET body=NULL, erased=? WHERE position IN (SELECT p FROM chain)"
                " RETURNING position", (name, audit.head(conn)[0] + 1)).fetchall()
            conn.executemany("DELETE FROM blob_refs WHERE position=?", positions)
            conn.execute("DELETE FROM docs WHERE collection=?", (name,))
            self._append_log(tx, "collection", name, None, None, None, "drop", None)
        with self._lock:
            self._collections.pop(name, None)
            self._ensured.discard(name)

    def repository(self, model: type, *, collection: str | None = None) -> Any:
        """Typed access to a collection through a pydantic model or dataclass."""
        from .repository import Repository

        return Repository(self, model, collection=collection)

    # -- transactions and the change log -----------------------------------------------

    def transaction(self) -> Any:
        """``with store.transaction():`` commit everything inside together, or nothing.

        Nested blocks are savepoints: an exception leaving an inner block undoes
        only that block. Reads inside see the writes inside.
        """
        return self._backend.transaction()

    def _append_log(self, tx: Transaction, kind: str, collection: str | None, id: str | None,
                    version: int | None, rev: str | None, op: str, author: str | None,
                    body: Any = None) -> int:
        """A change-log entry that is not a record version. ``body``: what a replay needs to redo
        it (collection options, an index definition); it is not part of the audit hash."""
        last, prev_hash = audit.head(tx.cur)
        position, at, author = last + 1, now_us(), author or self.author
        actor = audit.actor_digest(author)
        tx.cur.execute(
            "INSERT INTO log(position, kind, collection, id, version, rev, op, at, author, actor_hash, hash, txn,"
            " body) VALUES(?,?,?,?,?,?,?,?,?,?,?,?, jsonb(?))",
            (position, kind, collection, id, version, rev, op, at, author, actor,
             audit.entry_hash(prev_hash, position, at, kind, op, collection, id, version, rev, actor),
             tx.txn(position), None if body is None else orjson.dumps(body)))
        tx.wrote = True
        return position

    @property
    def position(self) -> int:
        """The position of the last committed change (0 for an empty store)."""
        try:
            return int(scalar(self._backend.reader(), "SELECT max(position) FROM log") or 0)
        except READ_ERRORS as e:
            raise translate(e, "position") from e

    def changes(self, since: int = 0, *, limit: int | None = None) -> Iterator[Change]:
        """Changes after position ``since``, oldest first, read in pages."""
        _check_position(since, "since")
        if limit is not None and (type(limit) is not int or limit < 0):
            raise errors.ValidationError(f"limit must be None or an int >= 0, not {limit!r}", path="limit")
        return self._changes(since, limit)

    def _changes(self, since: int, limit: int | None) -> Iterator[Change]:
        left = limit
        while left is None or left > 0:
            page = 1000 if left is None else min(left, 1000)
            try:
                rows = all_rows(self._backend.reader(),
                                f"SELECT {_CHANGE_COLS} FROM log WHERE position > ? ORDER BY position LIMIT ?",
                                (since, page))
            except READ_ERRORS as e:
                raise translate(e, "changes") from e
            for row in rows:
                yield Change(row[0], row[1], row[2], row[3], row[4], row[5], row[6], from_us(row[7]), row[8])
            if len(rows) < page:
                return
            since = rows[-1][0]
            if left is not None:
                left -= len(rows)

    def watch(self, since: int | None = None, *, timeout: float | None = None,
              poll: float = 0.05) -> Iterator[Change]:
        """Tail the change log, across processes: block for the next change.

        Starts after ``since`` (default: now). Ends after ``timeout`` seconds
        without a change (None: never). Commits in this process wake it at
        once; other processes' commits are seen within ``poll`` seconds.
        """
        if since is not None:
            _check_position(since, "since")
        for name, value in (("timeout", timeout), ("poll", poll)):
            if value is not None and (type(value) not in (int, float) or not value >= 0 or value == float("inf")):
                raise errors.ValidationError(f"{name} must be a number of seconds >= 0, not {value!r}", path=name)
        if not poll:
            raise errors.ValidationError("poll must be more than 0 seconds", path="poll")
        return self._watch(self.position if since is None else since, timeout, poll)

    def _watch(self, position: int, timeout: float | None, poll: float) -> Iterator[Change]:
        quiet_since = time.monotonic()
        with self._changed:
            self._watchers += 1
        try:
            yield from self._tail(position, quiet_since, timeout, poll)
        finally:
            with self._changed:
                self._watchers -= 1

    def _tail(self, position: int, quiet_since: float, timeout: float | None, poll: float) -> Iterator[Change]:
        while not self.closed:
            seen = False
            for change in self._changes(position, 1000):
                seen = True
                position = change.position
                yield change
            if seen:
                quiet_since = time.monotonic()
                continue
            wait = poll
            if timeout is not None:
                left = timeout - (time.monotonic() - quiet_since)
                if left <= 0:
                    return
                wait = min(wait, left)
            with self._changed:
                self._changed.wait(wait)

    def _notify(self) -> None:
        if self._watchers:
            with self._changed:
                self._changed.notify_all()

    # -- backups and integrity -------------------------------------------------------

    def backup(self, dest: str | os.PathLike[str], *, kind: str = "full", encryption_key: Any = None,
               progress: Any = None, allow_damaged: bool = False) -> BackupInfo:
        """A backup into the directory ``dest``, taken while writers keep writing (see kuradb.backups).

        A damaged store gives BackupError, unless ``allow_damaged=True`` (the backup is marked damaged)."""
        info = backups.backup(self, dest, kind=kind, encryption_key=encryption_key, progress=progress,
                              allow_damaged=allow_damaged)
        health.record(self, "last_backup", {"at": info.created.timestamp(), "id": info.id,
                                            "dest": os.path.abspath(os.fspath(dest)), "position": info.position})
        return info

    def backup_every(self, dest: str | os.PathLike[str], *, every: Any, keep_last: int | None = None,
                     keep_daily: int | None = None, keep_weekly: int | None = None,
                     on_backup: Any = None, kind: str = "full", full_every: Any = None,
                     encryption_key: Any = None) -> BackupSchedule:
        """Back up into ``dest`` now and then every ``every`` ("1h", 3600, a timedelta) in a background
        thread, pruning by the keep rules after each; ``.stop()`` or closing the store ends it.

        ``kind="incremental"`` with ``full_every="1d"`` takes a full backup once a day and
        incremental ones in between."""
        for name, value in (("keep_last", keep_last), ("keep_daily", keep_daily), ("keep_weekly", keep_weekly)):
            if value is not None and (type(value) is not int or value < 1):
                raise errors.ValidationError(f"{name} must be a positive integer, not {value!r}", path=name)
        schedule = BackupSchedule(self, os.fspath(dest), every, keep_last=keep_last, keep_daily=keep_daily,
                                  keep_weekly=keep_weekly, on_backup=on_backup, kind=kind, full_every=full_every,
                                  encryption_key=encryption_key)
        self._schedules.append(schedule)
        return schedule.start()

    def verify(self, *, progress: Any = None) -> Report:
        """Check the whole store against its sources; a Report naming every problem.

        SQLite's integrity check, every version's checksum, rev and history
        chain, the change log's continuity, every current record against its
        log entry, every blob's hash, and the derived state (array catalog,
        blob references, secondary and text indexes). Reads one snapshot;
        writers are not blocked. ``progress(fraction)`` is called as it goes.
        """
        report = integrity.verify(self, progress)
        health.record(self, "last_verify", {"at": time.time(), "problems": len(report.problems) + report.truncated})
        return report

    def audit(self, *, since: int | datetime | None = None, actor: str | None = None,
              limit: int | None = None) -> list[AuditEntry]:
        """The audit trail, oldest first: entries after position ``since`` (or at/after a datetime),
        by ``actor`` only if given. Each carries its hash and the previous one's (see kuradb.audit)."""
        after, at_least = 0, -(2**63)
        if isinstance(since, datetime):
            if since.tzinfo is None:
                raise errors.ValidationError("since must be an aware datetime", path="since",
                                             hint="e.g. datetime.now(timezone.utc) - timedelta(days=1)")
            at_least = to_us(since)
        elif since is not None:
            if type(since) is not int or not 0 <= since < 2**63:
                raise errors.ValidationError(f"since must be a position (int >= 0) or a datetime, not {since!r}",
                                             path="since")
            after = since
        if limit is not None and (type(limit) is not int or not 0 <= limit < 2**63):
            raise errors.ValidationError(f"limit must be a non-negative integer, not {limit!r}", path="limit")
        if actor is not None and not isinstance(actor, str):
            raise errors.ValidationError(f"actor must be a string, not {type(actor).__name__}", path="actor")
        try:
            with self._backend.read() as cur:
                return audit.entries(cur, after=after, at_least=at_least, actor=actor,
                                     limit=-1 if limit is None else limit)
        except apsw.Error as e:
            raise translate(e, "audit") from e

    def health(self, *, thresholds: dict[str, Any] | None = None) -> Health:
        """Named checks (disk_free, wal_size, last_backup, last_verify), each ok / degraded / failing;
        ``status`` is the worst. See kuradb.health for the default thresholds."""
        return health.health(self, thresholds)

    def repair(self, *, progress: Any = None) -> Report:
        """Rebuild derived state (array catalog, blob references, indexes); never changes user data.

        ``progress(fraction)`` is called as it goes."""
        return integrity.repair(self, progress)

    # -- introspection ---------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        conn = self._backend.reader()
        def q(sql: str) -> Any:
            try:
                return conn.execute(sql).fetchone()
            except READ_ERRORS as e:
                raise translate(e, "stats") from e

        live, deleted = q("SELECT count(*) - total(deleted), total(deleted) FROM docs")
        blobs, blob_bytes = q("SELECT count(*), coalesce(sum(size), 0) FROM blobs")
        files = {}
        for suffix in ("", "-wal"):
            p = self._backend.path + suffix
            files["db_bytes" if not suffix else "wal_bytes"] = os.path.getsize(p) if os.path.exists(p) else 0
        return {
            "directory": self.directory, "durability": self.durability, "read_only": self.read_only,
            "encrypted": self._backend.key is not None, "position": self.position,
            "collections": len(self.collections()),
            "records": int(live), "deleted": int(deleted),
            "versions": q("SELECT count(*) FROM log WHERE kind='record' AND erased=0")[0],
            "blobs": blobs, "blob_bytes": blob_bytes, **files,
            "sqlite_version": apsw.sqlite_lib_version(),
            "operations": self._ops.snapshot(),
            "cache": None if self._read_cache is None else self._read_cache.stats(),
        }
