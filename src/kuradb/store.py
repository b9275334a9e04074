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

from . import audit, backups, errors, health, integrity, options
from .audit import AuditEntry
from .backend import NewEntry
from .backends import REPLICA_MAX_LAG, REPLICA_WAIT, open_backend, shown
from .backups import BackupInfo
from .blobs import BlobStore
from .changelog import ChangeLog
from .collection import Collection, Parts
from .collections import Collections
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


def _check_position(value: Any, name: str) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise errors.ValidationError(f"{name} must be a change-log position (an int >= 0), not {value!r}",
                                     path=name, hint="positions come from store.position or Change.position")
    return value


def open(location: str | os.PathLike[str], *, durability: str = "normal", cache: Any = None,
         encryption_key: Any = None, read_only: bool = False, author: str | None = None,
         timeout: float = 5.0, max_document_size: int = DEFAULT_MAX_DOCUMENT_BYTES,
         create: bool | None = None, migrate: bool | None = None, replicas: list[str] | tuple[str, ...] | None = None,
         replica_wait: float = REPLICA_WAIT, replica_max_lag: float = REPLICA_MAX_LAG) -> Store:
    """Open the store at ``location``, making it if there is none yet.

    ``location`` is a directory, or ``":memory:"`` for a throwaway store that
    lives in a private temporary directory (RAM-backed where the OS offers it)
    and is deleted on close. A store is made in a directory that is missing or
    empty; ``create=True`` also makes one in a directory that holds other files,
    ``create=False`` never makes one (NotFound). An existing database file is
    never re-initialised: one that is empty or not a kuradb store is refused
    (CorruptedData). A store of an older layout is migrated as it opens when it is
    small (``migrate=None``); a large one raises ``MigrationRequired`` unless
    ``migrate=True`` (or ``kuradb.migrate(dir)``, which shows progress);
    ``migrate=False`` never migrates. ``timeout`` bounds how long a writer waits for another
    writer before raising ``Busy``. A ``postgresql://`` store may name streaming standbys of its
    server, ``replicas=[url, ...]``: reads outside a transaction go to one that has replayed this
    store's last commit (waiting for it up to ``replica_wait`` seconds, else reading on the primary),
    skipping one that is down or more than ``replica_max_lag`` seconds behind (``stats()``,
    ``health()`` show each; kuradb/backends/postgres/replicas.py). ``encryption_key`` (32 bytes, or a
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
    if migrate is not None and not isinstance(migrate, bool):
        raise errors.ValidationError(f"migrate must be True, False or None, not {migrate!r}", path="migrate")
    if location.startswith(("http://", "https://")):
        raise errors.KuraError(f"{location.split(':')[0]} stores are not available in this version",
                               hint="open a directory, ':memory:' or a postgresql:// URL")
    cache_config = CacheConfig.of(cache)
    temporary = None
    if location == ":memory:":
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        temporary = location = tempfile.mkdtemp(prefix="kuradb-", dir=base)
    try:
        return Store(location, durability=durability, read_only=read_only, author=author,
                     timeout=timeout, max_document_size=max_document_size, temporary=temporary is not None,
                     cache=cache_config, encryption_key=encryption_key, create=create, migrate=migrate,
                     replicas=replicas, replica_wait=replica_wait, replica_max_lag=replica_max_lag)
    except BaseException:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
        raise


def migrate(directory: str | os.PathLike[str], *, progress: Any = None, encryption_key: Any = None,
            vacuum: bool = False) -> int:
    """Migrate the store in ``directory`` to this kuradb's layout, in one transaction (a crash leaves it as it
    was); returns the schema version it is at. ``progress(fraction)`` is called as it goes (an estimate).
    ``vacuum`` then rewrites the file compactly (what the old layout used is otherwise kept for reuse)."""
    backend = open_backend(os.fspath(directory), key=encryption_key, create=False, migrate=True, progress=progress)
    try:
        if vacuum:
            backend.vacuum()
        return int(backend.schema_version())
    finally:
        backend.close()


def rekey(directory: str | os.PathLike[str], old: Any, new: Any) -> int:
    """Change the encryption key of the store in ``directory`` from ``old`` to ``new`` (``old`` None: encrypt a
    plain store). Offline: no other process may have it open. Returns how many blob files were sealed."""
    from .backends.sqlite import atrest

    return atrest.rekey(os.fspath(directory), old, new)


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
                 cache: CacheConfig | None = None, encryption_key: Any = None, create: bool | None = None,
                 migrate: bool | None = None, replicas: list[str] | tuple[str, ...] | None = None,
                 replica_wait: float = REPLICA_WAIT, replica_max_lag: float = REPLICA_MAX_LAG) -> None:
        self.directory = directory
        self.author = author
        self.max_document_size = max_document_size
        self._temporary = temporary
        self._pid = os.getpid()
        #: The storage seam (kuradb/backend.py): for kuradb's own layers (backups, integrity, health).
        self.backend = open_backend(directory, durability=durability, read_only=read_only, timeout=timeout,
                                    key=encryption_key, create=create, migrate=migrate, replicas=replicas,
                                    replica_wait=replica_wait, replica_max_lag=replica_max_lag)
        self._log = ChangeLog(author)
        self._names = Collections()
        self._ops = OpStats()
        self._parts = Parts(self.backend, self._log, self._names, ArrayCatalog(), self._ops, max_document_size)
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()
        self._schedules: list[BackupSchedule] = []
        self._changed = threading.Condition()
        self._watchers = 0  # commits wake watchers only when there are some
        self._listening: Any = None   # stops the backend's listener for other processes' commits
        self.backend.on_commit(self._notify)
        self.blobs = BlobStore(self.backend, self._log, os.path.join(directory, "blobs"), self._ops)
        if cache is not None:
            self._parts.read_cache = ReadCache(self.backend, cache)

    @property
    def durability(self) -> str:
        return self.backend.durability

    @property
    def read_only(self) -> bool:
        return self.backend.read_only

    @property
    def read_cache(self) -> ReadCache | None:
        """The store's read cache (``cache=``), None without one."""
        return self._parts.read_cache

    def __repr__(self) -> str:
        return f"<kuradb.Store {shown(self.directory)!r} durability={self.durability}>"

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection (after stopping backup schedules); later calls raise Closed. Idempotent."""
        for schedule in self._schedules:
            schedule.stop(timeout=60)
        rc, self._parts.read_cache = self._parts.read_cache, None
        if rc is not None:
            rc.close()
        stop, self._listening = self._listening, None
        if stop is not None:
            stop()
        self.backend.close()
        with self._changed:
            self._changed.notify_all()
        if self._temporary and os.getpid() == self._pid:  # a forked child must not remove it
            shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return self.backend.closed

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
                with self.backend.transaction() as tx:
                    self._names.configure(tx, self._log, name, explicit=False,
                                          keep_history=options.UNSET if keep_history is None else keep_history,
                                          schema=schema if isinstance(schema, dict) else options.UNSET)
            coll = Collection(self._parts, name, model=model)
            self._collections[name] = coll
            return coll

    __getitem__ = collection

    def collections(self) -> list[str]:
        """Names of the collections that exist (written to or given options, and not dropped since)."""
        with self.backend.read() as r:
            return r.collection_names()

    def drop_collection(self, name: str) -> None:
        """Delete a collection, its records and their history; NotFound if it does not exist."""
        check_collection_name(name)
        with self.backend.write() as tx:
            row = tx.collection(name)
            if row is None or not row[2]:
                raise errors.NotFound(f"collection {name!r} does not exist")
            coll = row[0]
            indexes.drop_all(tx, self.backend.dialect, name, coll)
            tx.drop_collection(coll, self._log.next_position(tx))
            self._log.append(tx, [NewEntry("collection", "drop", coll, name, None)])
        with self._lock:
            self._collections.pop(name, None)

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
        return self.backend.transaction()

    @property
    def position(self) -> int:
        """The position of the last committed change (0 for an empty store)."""
        return self.backend.reader().last()[0]

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
            rows = self.backend.reader().changes(since, page)
            for p, kind, coll, id, version, rev, op, at, author in rows:
                yield Change(p, kind, coll, id, version, None if rev is None else f"{version}-{rev.hex()}", op,
                             from_us(at), author)
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
        once; other processes' commits too on PostgreSQL (LISTEN/NOTIFY), and
        on SQLite within ``poll`` seconds.
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
            if self._listening is None:   # other processes' commits wake watchers, where the backend can
                self._listening = self.backend.listen(self._wake) or (lambda: None)
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
            self._wake()

    def _wake(self) -> None:
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
        with self.backend.read() as r:
            return audit.entries(r, after=after, at_least=at_least, actor=actor, limit=-1 if limit is None else limit)

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
        """Counts and sizes: records, versions, blobs, the engine's files; this process's operation counters."""
        with self.backend.read() as r:
            totals = r.totals()
            position = r.last()[0]
            names = r.collection_names()
        rc = self._parts.read_cache
        return {
            "directory": shown(self.directory), "durability": self.durability, "read_only": self.read_only,
            "encrypted": self.backend.key is not None, "position": position, "collections": len(names),
            **totals, **self.backend.describe(),
            "operations": self._ops.snapshot(),
            "cache": None if rc is None else rc.stats(),
        }
