"""The PostgreSQL backend: the URL, the store's schema and its migrations, connections, transactions, positions.

``kuradb.open("postgresql://user@host:port/db?schema=NAME")`` keeps a store in
the schema NAME (default ``kuradb``), made on first open. Like the SQLite
backend it has one writer connection behind a lock and one reader connection
per thread; reads outside a transaction are autocommit statements, ``read()``
and ``snapshot()`` are ``REPEATABLE READ READ ONLY`` transactions (one snapshot).

Positions in commit order: every write transaction takes the store's advisory
transaction lock (``pg_advisory_xact_lock``) before its first statement and
keeps it until it commits or rolls back, so writers of every process and host
take turns and the next position, read under the lock, is gapless and in commit
order (the ChangeLog's rule; eventsourcing's ``postgres.py`` takes a table lock
for the same reason). ``timeout`` bounds the wait for it (``lock_timeout``).

Read replicas (``replicas=[url, ...]``, replicas.py): reads outside a write
transaction go to a streaming standby that has replayed this store's last commit,
else to the primary; the read cache, watch()'s LISTEN and describe() stay on the primary.
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ... import errors
from .. import shown
from ..scopes import TransactionScope
from . import notify
from . import replicas as replica_set
from .checks import Checks
from .errors import DRIVER_ERRORS, translate
from .opening import TxCursor, send_start
from .rows import CatalogCache, Rows, Writes
from .schema import LATEST, MIGRATIONS, migration_checksum

DURABILITY = ("full", "normal", "off")
DEFAULT_SCHEMA = "kuradb"
_live_backends: weakref.WeakSet[PostgresBackend] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for backend in list(_live_backends):
        backend._abandon_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def parse_url(url: str) -> tuple[str, str]:
    """``(libpq connection URL, schema)`` of a kuradb PostgreSQL URL (``?schema=`` is kuradb's own)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not schema or len(schema) > 63 or "\x00" in schema:
        raise errors.ValidationError(f"schema {schema!r} in {redact(url)} is not a PostgreSQL schema name"
                                     " (1 to 63 characters)", path="location")
    rest = urlencode([(k, v) for k, v in query if k != "schema"], quote_via=quote)   # libpq: %20, not +
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), schema


redact = shown   # the URL without its password, for messages


class Reader(Rows, Checks):
    """The typed reads (rows.py, checks.py) over one connection's cursor. ``lone``: its reads are
    autocommit statements (not inside one snapshot), so one the server cut off can run again."""

    __slots__ = ("cur", "backend", "lone")

    def __init__(self, cur: Any, backend: PostgresBackend, lone: bool = False) -> None:
        self.cur, self.backend, self.lone = cur, backend, lone


class Transaction(Writes, Checks):
    """The open write transaction of one thread: the typed reads and writes (rows.py) and its state.

    It begins on the server with its first statement (opening.py): ``begun`` says whether it has;
    ``fresh`` that no statement of it has run yet, so that one failing on a broken connection may
    run again on a new one (``PostgresBackend.reconnect``)."""

    __slots__ = ("conn", "cur", "backend", "depth", "after_commit", "wrote", "doomed", "first", "_log_head",
                 "pipeline", "begun", "fresh", "reconnected", "text_indexes")

    def __init__(self, conn: psycopg.Connection[Any], backend: PostgresBackend) -> None:
        self.backend = backend
        self.depth = 0
        self.after_commit: list[Callable[[], Any]] = []
        self.wrote = False
        self.doomed: BaseException | None = None
        self.first: int | None = None
        self._log_head: tuple[int, bytes | None] | None = None
        self.pipeline: psycopg.Pipeline | None = None     # writes queued for the COMMIT (rows.py)
        self.reconnected = False
        self.text_indexes = None         # the collections with a text index, once read (fts.py)
        self.attach(conn)

    def attach(self, conn: psycopg.Connection[Any]) -> None:
        """Run on ``conn``, not begun yet."""
        self.conn = conn
        self.cur = TxCursor(conn)
        self.cur.pending = self
        self.begun = False
        self.fresh = True

    def send_start(self) -> psycopg.Cursor[Any]:
        self.begun = True
        return send_start(self.conn, self.backend.lock_key)

    def started(self, row: Any) -> None:
        """The start's row arrived: the transaction holds the store's lock."""
        self.fresh = False
        self._log_head = (0, None) if row[0] is None else (row[0], row[1])
        self.backend.catalog.check(row[2])

    def ready(self) -> None:
        """Begin now, if not begun yet (for what has no statement to send the start with)."""
        if self.cur.pending is None:
            return
        self.cur.pending = None
        try:
            with self.conn.pipeline():
                start = self.send_start()
            self.started(start.fetchone())
        except DRIVER_ERRORS as e:
            if isinstance(e, psycopg.OperationalError) and self.backend.reconnect(self):
                self.ready()
                return
            raise self.backend.failed(e, "begin") from e

    @property
    def log_head(self) -> tuple[int, bytes | None] | None:
        self.ready()
        return self._log_head

    @log_head.setter
    def log_head(self, value: tuple[int, bytes | None] | None) -> None:
        self._log_head = value


class PostgresBackend:
    """A kuradb store in one schema of a PostgreSQL database (kuradb/backend.py's Backend)."""

    blob_inline_max: int | None = None      # every blob is kept in the database: every host must see it

    def __init__(self, location: str, *, durability: str = "normal", read_only: bool = False,
                 timeout: float = 5.0, key: Any = None, create: bool | None = None,
                 migrate: bool | None = None, progress: Callable[[float], None] | None = None,
                 replicas: Any = None, replica_wait: float = replica_set.WAIT,
                 replica_max_lag: float = replica_set.MAX_LAG, **_: Any) -> None:
        if durability not in DURABILITY:
            raise errors.ValidationError(f"durability must be one of {', '.join(DURABILITY)}, not {durability!r}",
                                         path="durability")
        self.location = location
        self._url, self.schema = parse_url(location)
        try:   # the URL's own libpq options (e.g. -c statement_timeout=5s) go before kuradb's
            self._options = conninfo_to_dict(self._url).get("options") or ""
        except psycopg.ProgrammingError as e:
            raise errors.ValidationError(f"{redact(location)} is not a PostgreSQL URL: {e}", path="location") from e
        self.directory = None
        self.durability = durability
        self.read_only = read_only
        self.timeout = float(timeout)
        self.key = key
        self.damage: dict[str, Any] | None = None
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._conns: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        self.catalog = CatalogCache()      # collection rows for write transactions (rows.py)
        self._closed = False
        self._closed_reason = "the store is closed"
        self._commit_listeners: list[Callable[[], Any]] = []
        from .dialect import PostgresDialect

        self.dialect = PostgresDialect()
        conn = self._connect(search_path=False)
        try:
            self._lock_key = int(conn.execute("SELECT hashtextextended(%s, 0)",
                                              (f"kuradb:{self.schema}",)).fetchone()[0])   # type: ignore[index]
            if not self._is_current(conn):
                self._prepare_schema(conn, create)
        finally:
            conn.close()
        self._replicas: replica_set.ReplicaSet | None = None
        self._lone_on_primary = False      # the read cache fills from lone reads: they follow the primary
        self._commit_statement = "COMMIT"
        if replicas:
            self._replicas = replica_set.ReplicaSet(self, replica_set.check_urls(replicas, location, parse_url),
                                                    wait=replica_wait, max_lag=replica_max_lag,
                                                    reader=lambda cur: Reader(cur, self, lone=True))
            self._commit_statement = replica_set.COMMIT   # and where the WAL ended, in the same round trip
        try:
            self._writer = None if read_only else self._connect()
        except BaseException:
            if self._replicas is not None:
                self._replicas.close()
            raise
        _live_backends.add(self)

    # -- connections ---------------------------------------------------------------------

    def _connect(self, search_path: bool = True, url: str | None = None) -> psycopg.Connection[Any]:
        options = f"{self._options} -c lock_timeout={int(self.timeout * 1000)}".lstrip()
        if search_path:
            options += f" -c search_path={_options_quote(self.schema)}"
        if self.read_only:
            options += " -c default_transaction_read_only=on"
        if self.durability == "off":
            options += " -c synchronous_commit=off"
        try:
            conn = psycopg.connect(url or self._url, autocommit=True, options=options,
                                   connect_timeout=max(1, int(self.timeout)))
        except DRIVER_ERRORS as e:
            raise self._unreachable(e, url) from e
        with self._conns_lock:
            self._conns.add(conn)
        return conn

    def connect(self, url: str | None = None) -> psycopg.Connection[Any]:
        """A new autocommit session on this store's schema (on the primary, or the server at the libpq
        ``url``: a replica), closed with the store (or by ``forget``)."""
        return self._connect(url=url)

    def forget(self, conn: psycopg.Connection[Any]) -> None:
        """Close a session made by ``connect`` before the store closes."""
        with self._conns_lock:
            self._conns.discard(conn)
        try:
            conn.close()
        except DRIVER_ERRORS:
            pass

    def _unreachable(self, e: BaseException, url: str | None = None) -> errors.KuraError:
        out = translate(e, redact(url or self.location))
        said = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        # libpq refusing a parameter's value, or the server one of the URL's options: the URL is wrong
        if isinstance(e, psycopg.ProgrammingError) or any(
                m in said for m in ("invalid connection option", "connection is bad: invalid",
                                    "unrecognized configuration parameter", "invalid value for parameter")):
            return errors.ValidationError(f"{redact(url or self.location)} is not a usable PostgreSQL URL: {said}",
                                          path="location", hint="check the URL's parameters")
        if isinstance(out, errors.Unavailable):
            info = urlsplit(url or self._url)
            return errors.Unavailable(
                f"cannot connect to PostgreSQL at {info.hostname or 'localhost'}:{info.port or 5432}"
                f" ({str(e).strip().splitlines()[-1].strip() if str(e).strip() else type(e).__name__})",
                hint="check that the server is running and accepts connections at that host and port")
        return out

    def _run(self, cur: Any, statement: str, params: Any = None) -> Any:
        try:
            return cur.execute(statement, params)
        except DRIVER_ERRORS as e:
            raise self.failed(e, statement.split()[0].lower()) from e

    def note_damage(self, problem: str) -> None:
        self.damage = {"at": time.time(), "problem": problem}

    def failed(self, e: BaseException, where: str = "") -> errors.KuraError:
        if self._closed:        # its connections were closed under a read still using one
            return errors.Closed(self._closed_reason)
        out = translate(e, where)
        if isinstance(out, errors.CorruptedData):
            self.note_damage(out.message)
        return out

    # -- the schema ----------------------------------------------------------------------

    def _is_current(self, conn: psycopg.Connection[Any]) -> bool:
        """Is the schema a store of this kuradb's version, with this build's migrations? Read without the
        store's lock, so that opening never waits for a writer; anything else goes to _prepare_schema."""
        try:
            with conn.transaction():
                if not conn.execute("SELECT 1 FROM pg_tables WHERE schemaname=%s AND tablename='migrations'",
                                    (self.schema,)).fetchone():
                    return False
                applied = dict(conn.execute(sql.SQL("SELECT version, checksum FROM {}.migrations").format(
                    sql.Identifier(self.schema))).fetchall())
        except DRIVER_ERRORS as e:
            raise self.failed(e, f"schema {self.schema}") from e
        return applied == {n: migration_checksum(statement) for n, statement in MIGRATIONS}

    def _prepare_schema(self, conn: psycopg.Connection[Any], create: bool | None) -> None:
        """Make the store's schema (first open) or bring it to this kuradb's version, under the store's lock."""
        ident = sql.Identifier(self.schema)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname=%s", (self.schema,)).fetchone()
                tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname=%s",
                                      (self.schema,)).fetchone()[0]   # type: ignore[index]
                if not exists or not tables:
                    if self.read_only or create is False:
                        raise errors.NotFound(f"no kuradb store in schema {self.schema!r} at {redact(self.location)}",
                                              hint="open it once without read_only/create=False to make it")
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
                    version = 0
                else:
                    known = conn.execute("SELECT 1 FROM pg_tables WHERE schemaname=%s AND tablename='migrations'",
                                         (self.schema,)).fetchone()
                    if not known:
                        raise errors.CorruptedData(
                            f"schema {self.schema!r} at {redact(self.location)} holds tables but is not a kuradb"
                            " store", hint="kuradb never re-initialises a schema; choose another ?schema=")
                    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(ident))
                    version = int(conn.execute("SELECT coalesce(max(version), 0) FROM migrations")
                                  .fetchone()[0])   # type: ignore[index]
                    if version > LATEST:
                        raise errors.UnsupportedVersion(
                            f"schema {self.schema!r} has kuradb schema version {version}; this kuradb knows up"
                            f" to {LATEST}", hint="upgrade kuradb to open it")
                conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(ident))
                for number, statement in MIGRATIONS:
                    if number <= version:
                        continue
                    if self.read_only:
                        raise errors.ReadOnly(f"schema {self.schema!r} needs migrating to version {LATEST}"
                                              " and the store was opened read-only")
                    conn.execute(statement.encode())
                    conn.execute("INSERT INTO migrations VALUES(%s, %s, %s)",
                                 (number, migration_checksum(statement), time.time_ns() // 1000))
                applied = dict(conn.execute("SELECT version, checksum FROM migrations").fetchall())
                for number, statement in MIGRATIONS:
                    if applied.get(number) != migration_checksum(statement):
                        raise errors.UnsupportedVersion(
                            f"schema {self.schema!r} step {number} differs from this kuradb's",
                            hint="it was made by an incompatible build of kuradb")
        except DRIVER_ERRORS as e:
            raise self.failed(e, f"schema {self.schema}") from e

    def schema_version(self) -> int:
        return int(self.reader().cur.execute("SELECT coalesce(max(version), 0) FROM migrations").fetchone()[0])

    # -- reads ---------------------------------------------------------------------------

    def reader(self) -> Reader | Transaction:
        d = self._local.__dict__
        tx = d.get("tx")
        if tx is not None:
            return tx
        if self._replicas is not None:
            scope = d.get("scope")          # inside read(): its snapshot, wherever it is
            if scope is not None:
                return scope
            if not self._lone_on_primary:
                on_replica = self._replicas.reader()
                if on_replica is not None:
                    return on_replica
        return self._primary_reader()

    def _primary_reader(self) -> Reader:
        d = self._local.__dict__
        reader = d.get("reader")
        if reader is None or reader.cur.closed or reader.cur.connection.broken:   # e.g. the server restarted
            if self._closed:
                raise errors.Closed(self._closed_reason)
            reader = d["reader"] = Reader(self._connect().cursor(), self, lone=True)
        return reader

    def reconnect(self, rows: Any) -> bool:
        """After a statement failed on a connection that broke (the server restarted): give a lone reader,
        or a write transaction whose first statement it was, a new connection and say whether the
        statement may run again (a lone read a replica failed runs again on the primary). A
        transaction or a snapshot is never resumed: what it read or wrote is gone with its connection."""
        if isinstance(rows, Transaction):
            if not rows.fresh or rows.reconnected or not rows.conn.broken or self._closed:
                return False
            with self._conns_lock:
                self._conns.discard(rows.conn)
            self._writer = self._connect()   # the server restarted since the last write: once more, anew
            rows.attach(self._writer)
            rows.reconnected = True
            return True
        if self._replicas is not None and getattr(rows, "lone", False) and not self._closed \
                and self._replicas.release(rows):
            rows.cur = self._primary_reader().cur    # a lone read a replica failed: once more, on the primary
            return True
        if not getattr(rows, "lone", False) or not rows.cur.connection.broken or self._closed:
            return False
        with self._conns_lock:
            self._conns.discard(rows.cur.connection)
        rows.cur = self._connect().cursor()
        return True

    @contextmanager
    def read(self) -> Iterator[Reader | Transaction]:
        """A Reader whose reads all see one snapshot (on a thread in a transaction: its own)."""
        tx = self._local.__dict__.get("tx")
        if tx is not None:
            yield tx
            return
        d = self._local.__dict__
        if self._replicas is not None and d.get("scope") is not None:
            yield d["scope"]                  # read() inside read(): the same snapshot
            return
        reader = None if self._replicas is None else self._replicas.begin(_BEGIN_READ)
        if reader is None:
            reader = self._primary_reader()   # not in a transaction: the thread's own reader
            self._run(reader.cur, _BEGIN_READ)
        reader.lone = False
        if self._replicas is not None:
            d["scope"] = reader
        try:
            yield reader
        finally:
            d.pop("scope", None)
            reader.lone = True
            try:
                reader.cur.execute("ROLLBACK")
            except DRIVER_ERRORS:
                pass

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        """A private connection holding one read transaction: a point-in-time view for long scans."""
        conn = None
        if self._replicas is not None and not self.in_transaction():
            conn = self._replicas.snapshot()
        if conn is None:
            conn = self._connect()
        try:
            cur = conn.cursor()
            self._run(cur, _BEGIN_READ)
            yield Reader(cur, self)
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close()

    def private_reader(self, read_only: bool = True) -> Reader:
        return Reader(self._connect().cursor(), self)

    # -- transactions --------------------------------------------------------------------

    def transaction(self) -> TransactionScope:
        return TransactionScope(self)

    def write(self) -> TransactionScope:
        """One library write operation: a transaction of its own, or inside one a savepoint, so that a
        write refused part-way leaves nothing behind and the transaction goes on (a failed statement
        would otherwise abort the whole PostgreSQL transaction)."""
        return TransactionScope(self)

    def _savepoint(self, tx: Transaction, statement: str) -> None:
        if statement.startswith("ROLLBACK"):
            tx.text_indexes = None   # a text index made or dropped since the savepoint is undone too (fts.py)
        try:
            tx.cur.execute(statement)
        except DRIVER_ERRORS as e:
            if isinstance(e, psycopg.OperationalError) and self.reconnect(tx):
                self._savepoint(tx, statement)
                return
            raise self.failed(e, statement.split()[0].lower()) from e

    def in_transaction(self) -> bool:
        return self._local.__dict__.get("tx") is not None

    def _begin(self) -> Transaction:
        """This thread's write transaction, holding the thread lock; it begins on the server with its
        first statement (opening.py)."""
        if self._closed:
            raise errors.Closed(self._closed_reason)
        if self._writer is None:
            raise errors.ReadOnly(f"the store at {redact(self.location)} was opened read-only")
        if not self._write_lock.acquire(timeout=self.timeout):
            raise errors.Busy(f"another thread held the write lock for over {self.timeout:g}s",
                              hint="raise timeout= in kuradb.open() or shorten write transactions")
        try:
            if self._closed:
                raise errors.Closed(self._closed_reason)
            if self._writer.closed or self._writer.broken:
                self._writer = self._connect()   # the server restarted or the connection broke: a new one
            tx = Transaction(self._writer, self)
        except BaseException:
            self._write_lock.release()
            raise
        self._local.tx = tx
        return tx

    @property
    def lock_key(self) -> int:
        """The key of the store's advisory lock, which every write transaction holds."""
        return self._lock_key

    def _end(self, tx: Transaction, *, commit: bool) -> None:
        committed = False
        ended = None      # what says where the WAL ended at the COMMIT (with replicas)
        try:
            if not tx.begun:        # no statement ran: nothing began on the server (opening.py)
                committed = commit
            elif commit and tx.doomed is not None:
                self._rollback_quietly(tx)
                raise errors.KuraError(
                    f"the transaction was rolled back: a write in it failed part-way ({tx.doomed})",
                    hint="retry the whole transaction") from tx.doomed
            elif commit:
                try:
                    if tx.pipeline is not None:     # the queued writes and the COMMIT: one round trip
                        pipeline, tx.pipeline = tx.pipeline, None
                        tx.cur.execute("COMMIT")
                        ended = self._replicas.send_commit_position(tx.conn) if self._replicas else None
                        pipeline.__exit__(None, None, None)
                    else:
                        tx.cur.execute(self._commit_statement)
                        ended = tx.cur if self._replicas else None
                except DRIVER_ERRORS as e:
                    self._rollback_quietly(tx)
                    raise self.failed(e, "commit") from e
                # A COMMIT of a transaction in which a statement failed (its error caught) is a ROLLBACK,
                # without an error: say so rather than let the caller believe its writes were kept.
                committed = tx.cur.statusmessage == "COMMIT"
                if not committed:
                    raise errors.KuraError("the transaction was rolled back: a statement in it failed",
                                           hint="retry the whole transaction")
            else:
                self._rollback_quietly(tx)
        finally:
            self._local.tx = None
            self._write_lock.release()
        if committed:
            if ended is not None and self._replicas is not None:
                self._replicas.committed(ended)    # before any hook: reads from now on wait for it
            for hook in tx.after_commit:
                hook()
            if tx.wrote:
                for listener in self._commit_listeners:
                    listener()

    def _rollback_quietly(self, tx: Transaction) -> None:
        if not tx.begun:
            return
        try:
            if tx.pipeline is not None:
                pipeline, tx.pipeline = tx.pipeline, None
                try:
                    pipeline.__exit__(None, None, None)
                except DRIVER_ERRORS:
                    pass
            tx.cur.execute("ROLLBACK")
        except DRIVER_ERRORS:
            pass

    def on_commit(self, listener: Callable[[], Any]) -> None:
        self._commit_listeners.append(listener)

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel on which every commit that appends to this store's log is announced."""
        return f"kuradb_{self._lock_key & 0xFFFF_FFFF_FFFF:012x}"

    def listen(self, wake: Callable[[], Any]) -> Callable[[], None] | None:
        """Call ``wake()`` on every commit to this store's log by any process or host (notify.py)."""
        return notify.listen(self, wake)

    def commit_signal(self) -> Any:
        """What the read cache asks whether anyone committed (notify.py). The cache follows the primary's
        log, and what a cache miss reads it keeps: lone reads (its misses) stay on the primary, since a
        replica behind the log the cache covers would fill it with a version already replaced."""
        self._lone_on_primary = True
        return notify.CommitSignal(self)

    # -- the rest of the Backend protocol ---------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def describe(self) -> dict[str, Any]:
        """The engine, the schema's size and, where this role may list it, the server's write-ahead log:
        its size and the limits a healthy server keeps it under (``max_wal_size``; more is WAL held back
        by a replication slot or a failing archiver)."""
        cur = self._primary_reader().cur
        version, size, may_list, max_wal = cur.execute(
            "SELECT current_setting('server_version'), (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"
            " AND c.relkind = 'r'), has_function_privilege('pg_ls_waldir()', 'EXECUTE'),"
            " pg_size_bytes(current_setting('max_wal_size'))", (self.schema,)).fetchone()
        out = {"engine": "postgresql", "server_version": version, "schema": self.schema, "db_bytes": int(size)}
        if may_list:
            wal = cur.execute("SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()").fetchone()[0]
            out |= {"wal_bytes": int(wal), "wal_limits": {"degraded": int(max_wal), "failing": 2 * int(max_wal)}}
        if self._replicas is not None:
            out["replicas"] = self._replicas.describe()
        return out

    def integrity_check(self, limit: int = 100) -> list[str]:
        return []    # PostgreSQL checks its own pages (data checksums, when the cluster has them)

    def vacuum(self) -> None:
        conn = self._connect()
        try:
            self._run(conn.cursor(), "VACUUM (ANALYZE)")
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close()

    def _not_yet(self, what: str) -> errors.KuraError:
        return errors.KuraError(f"{what} is not available on PostgreSQL stores yet (issue #15)")

    # -- backups and copies (copy.py) --------------------------------------------------------

    def copy_database(self, raw: str) -> Any:
        """A full backup's database, a SQLite store's ``kura.db`` of one snapshot, written to ``raw``."""
        from . import copy

        return copy.full(self, raw)

    def copy_changes(self, raw: str, since: int, parent_head: str | None) -> Any:
        """The changes after position ``since`` written into the new changes file ``raw`` (one snapshot)."""
        from . import copy

        return copy.changes(self, raw, since, parent_head)

    def open_copy(self, raw: str) -> Any:
        from . import copy

        return copy.open_copy(self, raw)

    def source(self) -> Any:
        """The store's change log, blobs and catalog in one snapshot as backend-neutral entries (copy.Source)."""
        from . import copy

        return copy.Source(self, redact(self.location))

    # -- lifecycle -----------------------------------------------------------------------

    def drop(self) -> None:
        """Remove the store: its schema and everything in it (tests, ``kuradb`` tools)."""
        conn = self._connect(search_path=False)
        try:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))
        finally:
            conn.close()

    def _abandon_after_fork(self) -> None:
        """In a forked child: refuse all use, never touch the parent's connections."""
        self._closed = True
        self._closed_reason = "the store was opened before fork(); open it again in this process"
        # The parent's connections are dropped, never closed here (psycopg does not finish a connection
        # made by another process, so the parent's sessions live on: tested).
        self._conns = weakref.WeakSet()
        self._writer = None
        self._replicas = None     # its prober thread is the parent's; its connections too
        self._local = threading.local()
        self._write_lock = threading.Lock()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._replicas is not None:
            self._replicas.close()     # its prober first: the connections below include its own
        got = self._write_lock.acquire(timeout=self.timeout)
        try:
            with self._conns_lock:
                conns, self._conns = list(self._conns), weakref.WeakSet()
            for conn in conns:
                try:
                    conn.close()
                except DRIVER_ERRORS:
                    pass
        finally:
            if got:
                self._write_lock.release()


_BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


def _options_quote(name: str) -> str:
    """A schema name as libpq's ``options`` takes it (spaces and backslashes escaped), quoted for SQL."""
    quoted = '"' + name.replace('"', '""') + '"'
    return quoted.replace("\\", "\\\\").replace(" ", "\\ ")
