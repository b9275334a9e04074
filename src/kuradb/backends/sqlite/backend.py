"""The SQLite backend: connections, durability pragmas, store creation, migrations, transactions, errors.

One writer connection guarded by a lock (SQLite allows one writer at a time
anyway); one reader connection per thread, so readers run in parallel and,
in WAL mode, are never blocked by a writer in this or another process.
A transaction belongs to the thread that opened it; reads on that thread go
through the writer connection and so see the transaction's own writes.
Nested transactions are SAVEPOINTs.
"""
from __future__ import annotations

import builtins
import errno
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import apsw

from ... import errors
from ...query import regex
from ..scopes import TransactionScope
from . import atrest
from .checks import Checks
from .errors import READ_ERRORS, translate
from .rows import Rows, Writes
from .schema import AFTER_MIGRATION, APPLICATION_ID, LATEST, MIGRATIONS, migration_checksum
from .writers import WriteQueue

DURABILITY = ("full", "normal", "off")
DB_FILE = "kura.db"
_CREATING = "kura.db.creating-"   # a store being made (see SQLiteBackend._create)
# A store of an older layout with at most this many change-log entries is migrated when it is opened
# (about 2 s here: migration 5 rewrites ~100k entries/s); a larger one is migrated on purpose
# (kuradb migrate DIR, or kuradb.open(dir, migrate=True)), with progress.
AUTO_MIGRATE_MAX = 200_000
_STEPS_PER_ENTRY = 112   # SQLite VM steps per change-log entry that migration 5's SQL takes (measured)
_STEPS_PER_INDEX = 20    # and per entry for each index it rebuilds


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

# SQLite connections must not be used across fork(). In a child, every backend
# opened by the parent is marked unusable; its connections are kept, not closed,
# so nothing the parent holds is touched from the child.
_live_backends: weakref.WeakSet[SQLiteBackend] = weakref.WeakSet()
_inherited: list[Any] = []


def _after_fork_in_child() -> None:
    for backend in list(_live_backends):
        backend._abandon_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _regexp(*args: Any) -> int:
    """``kura_regexp(pattern, flags, value)``: the query language's $regex (query/regex.py)."""
    return 1 if regex.search(*args) else 0


def scalar(cur: apsw.Cursor | apsw.Connection, sql: str, args: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row (statements that always return a row)."""
    row: Any = cur.execute(sql, args).fetchone()
    return row[0]


class Reader(Rows, Checks):
    """The typed reads (rows.py) over one connection's cursor."""

    __slots__ = ("cur", "backend")

    def __init__(self, cur: apsw.Cursor, backend: SQLiteBackend) -> None:
        self.cur, self.backend = cur, backend


class Transaction(Writes, Checks):
    """The open write transaction of one thread: the typed reads and writes (rows.py) and its state."""

    __slots__ = ("conn", "cur", "backend", "depth", "after_commit", "wrote", "doomed", "first", "log_head", "settled")

    def __init__(self, conn: apsw.Connection, cur: apsw.Cursor, backend: SQLiteBackend) -> None:
        self.conn, self.backend = conn, backend
        self.cur = cur  # reused: a fresh cursor per statement costs twice as much
        self.depth = 0
        self.after_commit: list[Callable[[], Any]] = []
        self.wrote = False
        self.doomed: BaseException | None = None
        # The position of this transaction's first change-log entry (the log's txn). A savepoint
        # rolled back and written again reuses the same positions, so it stays right.
        self.first: int | None = None
        # The log's newest (position, hash) as this transaction wrote it (kuradb/changelog.py);
        # None: read it from the log (at the start, and after a savepoint rolled back).
        self.log_head: tuple[int, bytes | None] | None = None
        # total_changes() after a write was refused and undone by hand (rows.Writes.append): a write
        # scope that ends there left nothing behind, so it does not doom the transaction.
        self.settled = -1


class _WriteScope:
    """The scope of one library write operation (put, delete...).

    Outside a transaction it is a transaction of its own. Inside one it adds no
    savepoint (an operation checks everything before its first write, so a
    check failure leaves nothing behind); if it fails after SQLite counted a
    changed row (``total_changes``), the enclosing transaction is doomed: its
    commit raises and rolls back.
    """

    __slots__ = ("backend", "tx", "own", "writes")

    def __init__(self, backend: SQLiteBackend) -> None:
        self.backend = backend

    def __enter__(self) -> Transaction:
        b = self.backend
        tx = b._local.__dict__.get("tx")
        self.own = tx is None
        if tx is None:
            tx = b._begin()
        self.tx = tx
        self.writes = tx.conn.total_changes()
        return tx

    def __exit__(self, et: Any, e: Any, tb: Any) -> None:
        if self.own:
            self.backend._end(self.tx, commit=et is None)
        elif et is not None and self.tx.conn.total_changes() not in (self.writes, self.tx.settled):
            self.tx.doomed = e


class SQLiteBackend:
    """A kuradb store in a directory: ``kura.db`` (kuradb/backend.py's Backend)."""

    blob_inline_max: int | None = 64 * 1024   # larger blobs are files under blobs/ (kuradb/blobs.py)

    def __init__(self, directory: str, *, durability: str = "normal", read_only: bool = False,
                 timeout: float = 5.0, cache_mb: int = 128, key: Any = None, create: bool | None = None,
                 migrate: bool | None = None, progress: Callable[[float], None] | None = None) -> None:
        if durability not in DURABILITY:
            raise errors.ValidationError(
                f"durability must be one of {', '.join(DURABILITY)}, not {durability!r}",
                path="durability")
        self.directory = self.location = directory
        self.path = os.path.join(directory, DB_FILE)
        self.durability = durability
        self.read_only = read_only
        self.timeout = float(timeout)
        self._cache_kb = cache_mb * 1024
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writers = WriteQueue(self.path, self.timeout)  # the turn among processes, after the lock
        # Weak: a reader connection goes away with the thread that made it.
        self._conns: weakref.WeakSet[apsw.Connection] = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        self._closed = False
        self._closed_reason = "the store is closed"
        self._commit_listeners: list[Callable[[], Any]] = []
        # The latest damage a read of this process met ({"at": epoch seconds, "problem": ...}), for health().
        self.damage: dict[str, Any] | None = None
        from .dialect import SQLiteDialect

        self.dialect = SQLiteDialect()
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise errors.PermissionDenied(f"{directory!r} is a file, not a store directory",
                                          hint="give the directory that holds kura.db")
        atrest.before_open(self.path, key)
        self.key = key
        if not os.path.exists(self.path):
            if read_only or create is False:
                raise errors.NotFound(f"no kuradb store at {directory!r}", hint="create it with kuradb init DIR")
            self._create(bool(create))
        elif os.path.getsize(self.path) == 0:
            raise errors.CorruptedData(
                f"{self.path!r} is empty: it is not a kuradb store (it was truncated, or made by something else)",
                hint="kuradb never re-initialises an existing file; restore the store from a backup")
        try:
            self._writer: apsw.Connection | None = None if read_only else self._connect()
            self._writer_cur: Any = None if self._writer is None else self._writer.cursor()
            self._migrate(self._writer or self._connect(), migrate, progress)
        except errors.CorruptedData as e:
            self.close()
            if not isinstance(e.__cause__, READ_ERRORS):
                raise   # not damage: a SQLite file that is not a store
            raise errors.CorruptedData(
                f"the store at {directory!r} cannot be opened: {e.message}",
                hint="restore it from a backup (kuradb restore DEST TARGET); the damaged kura.db may still give"
                     " up some of its data to sqlite3's .recover") from e
        _live_backends.add(self)

    def note_damage(self, problem: str) -> None:
        """Remember that a read or a check met damage (the latest, with when), so health() reports it."""
        self.damage = {"at": time.time(), "problem": problem}

    def failed(self, e: BaseException, where: str = "") -> errors.KuraError:
        """``translate(e)`` for an operation on this store, noting damage (for health())."""
        out = translate(e, where)
        if isinstance(out, errors.CorruptedData):
            self.note_damage(out.message)
        return out

    def _create(self, anywhere: bool) -> None:
        """Make the store's database, atomically: built and migrated under a temporary name, then linked
        into place, so a ``kura.db`` that exists is always a whole store (a crash leaves only the
        temporary file). Refuses a directory that holds other files unless ``anywhere``."""
        directory = self.directory
        try:
            os.makedirs(directory, exist_ok=True)
            # What may be left of a store that is not there: a store being made, and the writers' queue file
            # (it holds no data). A stray -wal is not: SQLite would apply it to a new database of that name.
            entries = [e for e in os.listdir(directory) if not e.startswith(_CREATING) and e != DB_FILE + "-writers"]
        except OSError as e:
            raise errors.PermissionDenied(f"cannot create the store directory {directory!r}: {e.strerror}",
                                          hint="choose a writable location") from e
        if entries and not anywhere:
            shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
            raise errors.NotFound(f"{directory!r} holds files ({shown}) but no kuradb store",
                                  hint="open the store's own directory; to make a store here on purpose:"
                                  " kuradb init DIR, or kuradb.open(DIR, create=True)")
        tmp = os.path.join(directory, f"{_CREATING}{os.getpid()}-{os.urandom(4).hex()}")
        try:
            conn = atrest.connect(tmp, self.key, apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
            try:
                scalar(conn, "PRAGMA journal_mode=WAL")
                self._apply_migrations(conn)
            finally:
                conn.close()    # the last connection: SQLite checkpoints the WAL into the file and removes it
            if self.durability != "off":
                with builtins.open(tmp, "rb") as f:
                    os.fsync(f.fileno())
            try:
                os.link(tmp, self.path)        # fails if another process made the store first: use theirs
            except FileExistsError:
                pass
            _fsync_dir(directory)
        except apsw.Error as e:
            raise translate(e, self.path) from e
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise errors.StorageFull(f"the disk is full: cannot create a store in {directory!r}") from e
            raise errors.PermissionDenied(f"cannot create a store in {directory!r}: {e.strerror}",
                                          hint="choose a writable location") from e
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.unlink(tmp + suffix)
                except OSError:
                    pass

    # -- connections ---------------------------------------------------------------

    def _connect(self) -> apsw.Connection:
        flags = apsw.SQLITE_OPEN_READONLY if self.read_only else (
            apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
        try:
            conn = atrest.connect(self.path, self.key, flags)
            conn.setbusytimeout(int(self.timeout * 1000))
            if scalar(conn, "PRAGMA application_id") != APPLICATION_ID:   # before anything could change it
                conn.close()
                raise errors.CorruptedData(f"{self.path!r} is a SQLite file but not a kuradb store",
                                           hint="kuradb never re-initialises an existing file; open a store's"
                                           " own directory, or restore it from a backup")
            if not self.read_only:
                mode = scalar(conn, "PRAGMA journal_mode=WAL")
                if mode.lower() != "wal":
                    raise errors.PermissionDenied(f"cannot use WAL mode on {self.path!r} (got {mode})")
            sync = {"full": "FULL", "normal": "NORMAL", "off": "NORMAL"}[self.durability]
            conn.execute(f"PRAGMA synchronous={sync}; PRAGMA cache_size=-{self._cache_kb};"
                         " PRAGMA temp_store=MEMORY; PRAGMA foreign_keys=OFF")
            if self.durability == "off":
                # Bulk loads: checkpoint (and so fsync) less often. Still WAL, still consistent.
                conn.execute("PRAGMA wal_autocheckpoint=16384")
            conn.create_scalar_function("kura_regexp", _regexp, 3, deterministic=True)
        except apsw.Error as e:
            raise translate(e, self.path) from e
        with self._conns_lock:
            self._conns.add(conn)
        return conn

    def reader(self) -> Reader | Transaction:
        """The Reader this thread should use (its transaction, when it is in one); fetch each
        result before the next read."""
        d = self._local.__dict__
        tx = d.get("tx")
        if tx is not None:
            return tx
        reader = d.get("reader")
        if reader is None:
            if self._closed:
                raise errors.Closed(self._closed_reason)
            reader = d["reader"] = Reader(self._connect().cursor(), self)
        return reader

    @contextmanager
    def read(self) -> Iterator[Reader | Transaction]:
        """A Reader whose reads all see one snapshot (on a thread in a transaction: its own)."""
        tx = self._local.__dict__.get("tx")
        if tx is not None:
            yield tx
            return
        reader = self.reader()
        try:
            reader.cur.execute("BEGIN")
        except apsw.Error as e:
            raise translate(e, "read") from e
        try:
            yield reader
        finally:
            try:
                reader.cur.execute("COMMIT")
            except apsw.Error:
                pass   # the read itself failed (e.g. a damaged page) and SQLite ended it

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        """A private connection holding one read transaction: a point-in-time view for long scans.

        Sorts that do not fit the page cache spill to temporary files, so a
        streaming scan stays within bounded memory whatever its order.
        """
        conn = self._connect()
        try:
            cur = conn.cursor()
            cur.execute("PRAGMA temp_store=FILE")
            cur.execute("BEGIN")
            cur.execute("SELECT 1 FROM log LIMIT 1").fetchall()  # start the snapshot now
            yield Reader(cur, self)
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close(True)

    def private_reader(self, read_only: bool = True) -> Reader:
        """A Reader on a connection of its own (read-only, unless a backup must write files it attaches),
        for a Follower that reads from any thread under its own lock; it lives as long as the Reader."""
        flags = (apsw.SQLITE_OPEN_READONLY if read_only or self.read_only
                 else apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)   # CREATE: for files a backup attaches
        try:
            conn = atrest.connect(self.path, self.key, flags)
            conn.setbusytimeout(int(self.timeout * 1000))
        except apsw.Error as e:
            raise self.failed(e, self.path) from e
        return Reader(conn.cursor(), self)

    # -- backups (copy.py) ----------------------------------------------------------------

    def copy_database(self, raw: str) -> Any:
        """The whole database copied into the new file ``raw`` from one snapshot (copy.Copied)."""
        from . import copy

        return copy.full(self, raw)

    def copy_changes(self, raw: str, since: int, parent_head: str | None) -> Any:
        """The changes after position ``since`` written into the new file ``raw`` (copy.Copied)."""
        from . import copy

        return copy.changes(self, raw, since, parent_head)

    def open_copy(self, raw: str) -> Any:
        from . import copy

        return copy.Opened(raw, self.key)

    def source(self) -> Any:
        """The store's change log, blobs and catalog in one read snapshot, as backend-neutral entries
        (copy.Source; kuradb.copy reads a store through it). Close it when done."""
        from . import copy

        try:
            return copy.Source(self.path, self.directory, self.key, snapshot=True)
        except apsw.Error as e:
            raise self.failed(e, self.path) from e

    def listen(self, wake: Callable[[], Any]) -> Callable[[], None] | None:
        """SQLite cannot push other processes' commits: None, and watchers poll (kuradb/store.py)."""
        return None

    def commit_signal(self) -> Any:
        """What the read cache watches for commits (walindex.py)."""
        from .walindex import CommitSignal

        return CommitSignal(self)

    def in_transaction(self) -> bool:
        return self._local.__dict__.get("tx") is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def schema_version(self) -> int:
        return int(scalar(self.reader().cur, "PRAGMA user_version"))

    def vacuum(self) -> None:
        """Rewrite the database compactly (offline use: it needs every other connection closed)."""
        with self._write_lock:
            try:
                self._writer.execute("VACUUM")   # type: ignore[union-attr]
            except apsw.Error as e:
                raise self.failed(e, "vacuum") from e

    def describe(self) -> dict[str, Any]:
        """The engine and the sizes of its files (for ``store.stats()``)."""
        sizes = {}
        for suffix, key in (("", "db_bytes"), ("-wal", "wal_bytes")):
            try:
                sizes[key] = os.path.getsize(self.path + suffix)
            except OSError:
                sizes[key] = 0
        return {"engine": "sqlite", "sqlite_version": apsw.sqlite_lib_version(), **sizes}

    def integrity_check(self, limit: int = 100) -> list[str]:
        """SQLite's own check of every page and index: empty when all is well."""
        with self.snapshot() as r:
            rows = [str(row[0]) for row in r.cur.execute(f"PRAGMA integrity_check({int(limit)})")]
        return [] if rows == ["ok"] else rows

    # -- transactions --------------------------------------------------------------

    def transaction(self) -> TransactionScope:
        return TransactionScope(self)

    def _savepoint(self, tx: Transaction, statement: str) -> None:
        try:
            tx.conn.execute(statement)
        except apsw.Error as e:
            raise translate(e, "savepoint") from e

    def write(self) -> _WriteScope:
        return _WriteScope(self)

    def _begin(self) -> Transaction:
        if self._closed:
            raise errors.Closed(self._closed_reason)
        if self._writer is None:
            raise errors.ReadOnly(f"the store at {self.directory!r} was opened read-only")
        if not self._write_lock.acquire(timeout=self.timeout):
            raise errors.Busy(f"another thread held the write lock for over {self.timeout:g}s",
                              hint="raise timeout= in kuradb.open() or shorten write transactions")
        try:
            if self._closed:
                raise errors.Closed(self._closed_reason)
            self._writers.begin(self._writer)
        except BaseException as e:
            self._write_lock.release()
            raise translate(e, "begin") from e
        tx = Transaction(self._writer, self._writer_cur, self)
        self._local.tx = tx
        return tx

    def _end(self, tx: Transaction, *, commit: bool) -> None:
        committed = False
        try:
            # COMMIT and ROLLBACK go through the transaction's own cursor, which resets the
            # statement it last ran: a half-read SELECT (a fetchone) would otherwise keep a read
            # snapshot open on the writer connection, and the next BEGIN IMMEDIATE would fail at
            # once with SQLITE_BUSY_SNAPSHOT (no busy wait) after another process committed.
            if commit and tx.doomed is not None:
                self._rollback_quietly(tx.cur)
                raise errors.KuraError(
                    f"the transaction was rolled back: a write in it failed part-way ({tx.doomed})",
                    hint="retry the whole transaction") from tx.doomed
            if commit:
                try:
                    tx.cur.execute("COMMIT")
                    committed = True
                except apsw.Error as e:
                    self._rollback_quietly(tx.cur)
                    raise translate(e, "commit") from e
            else:
                self._rollback_quietly(tx.cur)
        finally:
            self._local.tx = None
            self._writers.end()
            self._write_lock.release()
        if committed:
            for hook in tx.after_commit:
                hook()
            if tx.wrote:
                for listener in self._commit_listeners:
                    listener()

    @staticmethod
    def _rollback_quietly(conn: apsw.Connection | apsw.Cursor) -> None:
        try:
            if not (conn.connection if isinstance(conn, apsw.Cursor) else conn).get_autocommit():
                conn.execute("ROLLBACK")
        except apsw.Error:
            pass  # the connection already rolled back (e.g. after SQLITE_FULL)

    def on_commit(self, listener: Callable[[], Any]) -> None:
        """Call ``listener`` after every commit of this backend that wrote something."""
        self._commit_listeners.append(listener)

    # -- schema --------------------------------------------------------------------

    def _migrate(self, conn: apsw.Connection, migrate: bool | None = None,
                 progress: Callable[[float], None] | None = None) -> None:
        try:
            version = scalar(conn, "PRAGMA user_version")
            if version > LATEST:
                raise errors.UnsupportedVersion(
                    f"{self.path!r} has schema version {version}; this kuradb knows up to {LATEST}",
                    hint="upgrade kuradb to open it")
            if version < LATEST:
                entries = int(scalar(conn, "SELECT coalesce(max(position), 0) FROM log"))
                if self.read_only:
                    raise errors.ReadOnly(f"{self.path!r} needs migrating to schema version {LATEST}"
                                          " and the store was opened read-only",
                                          hint=f"kuradb migrate {self.directory}")
                if migrate is False or (migrate is None and entries > AUTO_MIGRATE_MAX):
                    raise errors.MigrationRequired(
                        f"the store at {self.directory!r} has schema version {version} and this kuradb writes"
                        f" version {LATEST}: its {entries:,} change-log entries must be rewritten first",
                        hint=f"kuradb migrate {self.directory} (one transaction: the store stays as it is until it"
                             " finishes; close other processes first), or kuradb.open(dir, migrate=True)")
                self._apply_migrations(conn, progress, entries)
            self._check_migrations(conn)
        except apsw.Error as e:
            raise translate(e, self.path) from e

    def _apply_migrations(self, conn: apsw.Connection, progress: Callable[[float], None] | None = None,
                          entries: int = 0) -> None:
        """Every migration past the file's version, in one transaction: a crash leaves the old layout or
        the new one, never a mix. ``progress(fraction)`` is called while they run (an estimate)."""
        steps, expected = [0], 1.0
        if progress is not None:
            declared = scalar(conn, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'kura:%' OR"
                                    " name LIKE 'kura_fts:%' AND type = 'table'")
            expected = max(1.0, entries * (_STEPS_PER_ENTRY + _STEPS_PER_INDEX * (2 + declared)) / 1000)

            def tick() -> bool:
                steps[0] += 1
                progress(min(steps[0] / expected, 0.99))
                return False

            conn.set_progress_handler(tick, 1000)
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = scalar(conn, "PRAGMA user_version")  # another process may have won
            for number, sql in MIGRATIONS:
                if number <= version:
                    continue
                conn.execute(sql)
                if number in AFTER_MIGRATION:
                    AFTER_MIGRATION[number](conn)
                conn.execute("INSERT INTO migrations VALUES(?, ?, ?)",
                             (number, migration_checksum(sql), time.time_ns() // 1000))
                conn.execute(f"PRAGMA user_version={number}")
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute("COMMIT")
            if progress is not None:
                conn.set_progress_handler(None)
                progress(1.0)
        except BaseException:
            conn.set_progress_handler(None)
            self._rollback_quietly(conn)
            raise

    def _check_migrations(self, conn: apsw.Connection) -> None:
        applied: dict[Any, Any] = dict(conn.execute("SELECT version, checksum FROM migrations").fetchall())  # type: ignore
        for number, sql in MIGRATIONS:
            if applied.get(number) != migration_checksum(sql):
                raise errors.UnsupportedVersion(
                    f"{self.path!r} schema step {number} differs from this kuradb's",
                    hint="it was made by an incompatible build of kuradb")

    # -- lifecycle -----------------------------------------------------------------

    def _abandon_after_fork(self) -> None:
        """In a forked child: refuse all use, and keep (never close) the inherited connections."""
        self._closed = True
        self._closed_reason = "the store was opened before fork(); open it again in this process"
        _inherited.extend([self._writer, *self._conns])
        self._conns = weakref.WeakSet()
        self._writer = None
        self._local = threading.local()
        self._write_lock = threading.Lock()  # the parent's lock may have been held at fork

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        got = self._write_lock.acquire(timeout=self.timeout)  # let a running commit finish
        try:
            self._writers.close()
            with self._conns_lock:
                conns, self._conns = list(self._conns), weakref.WeakSet()
            for conn in conns:
                try:
                    conn.close(True)
                except apsw.Error:
                    pass
        finally:
            if got:
                self._write_lock.release()
