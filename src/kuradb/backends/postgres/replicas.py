"""A PostgreSQL store's streaming read replicas: which one a read goes to, read-your-writes, health and lag.

``kuradb.open(primary_url, replicas=[url, ...])`` names hot standbys of the
primary (streaming replication; ``pg_basebackup -R`` makes one). Reads outside
a write transaction (the lone reads of ``get``, ``len``..., and ``read()`` /
``snapshot()`` scopes: find, aggregate, search, history) go to a replica; reads
inside one stay on the primary, as do the read cache, watch()'s LISTEN session
(a standby delivers no NOTIFY) and ``describe()``.

Read-your-writes: every commit of this store reads, in the COMMIT's own round
trip (one simple-query message, no extra round trip), the primary's WAL insert
position: ``pg_current_wal_insert_lsn()`` after the COMMIT statement is at or
past the end of the commit record, whatever ``synchronous_commit`` is (read
inside the transaction it would be before the commit record, whose replay is
what makes the writes visible; ``pg_current_wal_lsn()`` would be short of it
under asynchronous commit). Until a replica has replayed that far
(``pg_last_wal_replay_lsn()``, polled on the reading connection), a read waits
for it, at most ``replica_wait`` seconds, then goes to the primary. What a
replica was seen to have replayed is remembered, so later reads pay nothing
until this store commits again. When the store opens, its reads wait likewise
for what the primary had then (a store made just now: its schema).

Health: a prober thread asks every replica, each PROBE_EVERY seconds (and at
open; ``describe()`` asks those it has a session with), whether it is in
recovery, whose standby it is (the primary's system identifier and database)
and how far it has replayed; the primary, where its WAL ends. A replica that
cannot be reached, is not a standby of this primary (any more: promoted), or
lags past ``replica_max_lag`` seconds is skipped until a later probe finds it
well, and ``describe()`` (stats, health) says which and why. A read whose
replica session breaks runs again on the primary and marks the replica down.

Lag: ``lag_bytes`` is the WAL the primary had flushed at the probe that the
replica has not replayed. ``lag_seconds`` is 0 when the replica has replayed
all the WAL the primary had at the positions sampled (by probes, and by this
store's commits), so it is 0 at idle however long ago the last transaction was
(``now() - pg_last_xact_replay_timestamp()`` grows at idle, and is what
monitoring dashboards often misread). When it is behind: at most the age of the
last sample it has replayed and of the last commit it replayed (the oldest
commit it lacks is newer), at least the age of the first sample it lacks, so
accurate to the sampling (a store that commits samples every replica_max_lag/256
seconds; one that does not, once a probe).

A replica that is the primary itself, or not a standby of it, is refused when
the store opens (ValidationError naming ``replicas[i]``); one that cannot be
reached then is accepted and reported down.
"""
from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ... import errors
from .. import REPLICA_MAX_LAG as MAX_LAG
from .. import REPLICA_WAIT as WAIT
from .. import check_replica_options, shown
from .errors import DRIVER_ERRORS

PROBE_EVERY = 1.0    # seconds between probes of every replica
_COMMIT_POSITION = "SELECT (pg_current_wal_insert_lsn() - '0/0')::int8"
COMMIT = "COMMIT; " + _COMMIT_POSITION

_REPLAYED = "SELECT (pg_last_wal_replay_lsn() - '0/0')::int8"
_MET = "SELECT (pg_last_wal_replay_lsn() - '0/0')::int8, pg_postmaster_start_time()"
_PROBE = ("SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0')::int8,"
          " CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END,"
          " (SELECT system_identifier FROM pg_control_system()), current_database(), pg_postmaster_start_time(),"
          " extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8")
_PRIMARY = ("SELECT (pg_current_wal_flush_lsn() - '0/0')::int8, (pg_current_wal_insert_lsn() - '0/0')::int8,"
            " (SELECT system_identifier FROM pg_control_system()),"
            " current_database(), pg_postmaster_start_time(), current_setting('wal_block_size')::int,"
            " pg_size_bytes(current_setting('wal_segment_size'))")
_POLL, _POLL_FAST_FOR = 0.0001, 0.003    # seconds between polls for the replay of a commit, for the first 3 ms
_SHORT_PAGE_HEADER, _LONG_PAGE_HEADER = 24, 40    # a WAL page's header, MAXALIGNed (the first page of a segment: long)


def check_urls(replicas: Any, primary: str, parse: Callable[[str], tuple[str, str]]) -> list[tuple[str, str]]:
    """``(libpq URL, URL as shown)`` of each replica: postgresql:// URLs, none twice, none the primary's own,
    naming no other schema than the primary's (a physical standby holds the same schemas)."""
    check_replica_options(replicas, WAIT, MAX_LAG)
    url, schema = parse(primary)
    out: list[tuple[str, str]] = []
    for i, location in enumerate(replicas):
        where = f"replicas[{i}]"
        if not isinstance(location, str) or not location.startswith(("postgresql://", "postgres://")):
            raise errors.ValidationError(f"{where} must be a postgresql:// URL, not {shown(str(location))!r}",
                                         path=where)
        libpq, given = parse(location)
        if any(k == "schema" for k, _ in parse_qsl(urlsplit(location).query)) and given != schema:
            raise errors.ValidationError(f"{where} names schema {given!r}; the store is in {schema!r}",
                                         path=where, hint="a standby holds the primary's schemas: leave ?schema= out")
        if libpq == url:
            raise errors.ValidationError(f"{where} is the primary's own URL ({shown(location)})", path=where,
                                         hint="name the standbys' URLs")
        if any(libpq == other for other, _ in out):
            raise errors.ValidationError(f"{where} is named twice ({shown(location)})", path=where)
        out.append((libpq, shown(location)))
    return out


def lsn_text(lsn: int | None) -> str | None:
    return None if lsn is None else f"{lsn >> 32:X}/{lsn & 0xFFFF_FFFF:X}"


class Replica:
    """One standby: where it is, what the last probe found, and what reads it served."""

    def __init__(self, index: int, url: str, shown_url: str) -> None:
        self.index, self.url, self.shown = index, url, shown_url
        self.state = "down"              # ok | lagging | down | not a standby
        self.detail = "not probed yet"
        self.replayed = 0                # the furthest WAL position it was seen to have replayed
        self.lag_bytes: int | None = None
        self.lag_seconds: float | None = None
        self.started: Any = None         # when its server started (pg_postmaster_start_time())
        self.probe: Any = None           # its prober's session
        self.reads = self.waits = self.fallbacks = 0

    def saw(self, replayed: int) -> None:
        if replayed > self.replayed:
            self.replayed = replayed

    def met(self, replayed: int | None, started: Any) -> None:
        """A session's first answer. A server that restarted may be back at a consistent point before
        what it had replayed: what it was seen to have replayed is forgotten then."""
        if started != self.started:
            self.started, self.replayed = started, 0
        if replayed is not None:
            self.saw(int(replayed))

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.shown, "state": self.state, "detail": self.detail, "lag_bytes": self.lag_bytes,
                "lag_seconds": self.lag_seconds, "replayed": lsn_text(self.replayed or None), "reads": self.reads,
                "waits": self.waits, "fallbacks": self.fallbacks}


class ReplicaSet:
    """The replicas of one store (one PostgresBackend): readers on them, the waits, the prober."""

    def __init__(self, backend: Any, urls: list[tuple[str, str]], *, wait: float, max_lag: float,
                 reader: Callable[[Any], Any]) -> None:
        check_replica_options(urls, wait, max_lag)
        self.backend = backend
        self.wait, self.max_lag = float(wait), float(max_lag)
        self.replicas = [Replica(i, url, shown_url) for i, (url, shown_url) in enumerate(urls)]
        self._make_reader = reader
        self._usable: tuple[Replica, ...] = ()
        self._needed = 0                           # this store's last commit's WAL position
        self._local = threading.local()            # per thread: its slot, and {replica index: (conn, Reader)}
        self._slots = itertools.count()
        self._owners: weakref.WeakKeyDictionary[Any, Replica] = weakref.WeakKeyDictionary()
        self._samples: deque[tuple[float, int]] = deque(maxlen=1024)   # (monotonic time, primary WAL position)
        self._sample_every = max(0.001, self.max_lag / 256)   # the deque covers 4 x max_lag at any commit rate
        self._probe_lock = threading.Lock()
        self._stop = threading.Event()
        self.closed = False
        self._primary: Any = None
        self._identity: tuple[Any, ...] = ()
        self._page, self._segment = 8192, 16 << 20
        try:
            self.probe()
            for r in self.replicas:
                if r.state == "not a standby":
                    raise errors.ValidationError(f"replicas[{r.index}] ({r.shown}) {r.detail}",
                                                 path=f"replicas[{r.index}]",
                                                 hint="name hot standbys of this primary (pg_basebackup -R)")
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._run, name=f"kuradb-replicas-{backend.schema}", daemon=True)
        self._thread.start()

    # -- commits -------------------------------------------------------------------------

    def send_commit_position(self, conn: Any) -> Any:
        """Queue, after a ``COMMIT`` in the connection's pipeline, the read of where the WAL ended; the
        cursor to hand to ``committed`` once the pipeline is through."""
        cur = conn.cursor()
        cur.execute(_COMMIT_POSITION, prepare=False)
        return cur

    def committed(self, cur: Any) -> None:
        """After a COMMIT run as ``COMMIT`` (or a COMMIT followed by ``send_commit_position``'s cursor):
        remember where the WAL ended, which reads must see replayed."""
        try:
            if cur.statusmessage == "COMMIT" and not cur.nextset():
                return
            row = cur.fetchone()
        except DRIVER_ERRORS:
            return
        if row is None or row[0] is None:
            return
        lsn = self._record_end(int(row[0]))
        if lsn > self._needed:
            self._needed = lsn
        self._sample(time.monotonic(), lsn)

    def _record_end(self, inserted: int) -> int:
        """Where the last record written ends, from the WAL insert position: right after a page header that
        is the page's start (where a replica's replay ends), else the position itself. Waiting for the
        position past the header would wait for the next record, which an idle primary may not write."""
        offset = inserted % self._page
        if offset == _SHORT_PAGE_HEADER or (offset == _LONG_PAGE_HEADER and inserted % self._segment == offset):
            return inserted - offset
        return inserted

    # -- reads -------------------------------------------------------------------------

    def reader(self) -> Any:
        """This thread's Reader on a replica that has replayed this store's last commit (waiting for it,
        within ``wait``), or None: read on the primary."""
        usable = self._usable
        if not usable or self.closed:
            return None
        local = self._local.__dict__
        pairs = local.get("pairs")
        if pairs is None:
            pairs = local["pairs"] = {}
            local["slot"] = next(self._slots)   # threads spread over the replicas, each keeping to one
        needed = self._needed
        replica = usable[local["slot"] % len(usable)]
        if replica.replayed < needed:
            replica = next((r for r in usable if r.replayed >= needed), replica)
        pair = pairs.get(replica.index)
        if pair is None or pair[1].cur.connection is not pair[0] or pair[0].broken:
            if pair is not None:        # its read failed and ran on the primary: a session anew
                self.backend.forget(pair[0])
            conn = self._connect(replica)
            if conn is None:
                return None
            pair = pairs[replica.index] = (conn, self._make_reader(conn.cursor()))
        reader = pair[1]
        if replica.replayed < needed and not self._wait(replica, reader.cur, needed):
            return None
        replica.reads += 1
        return reader

    def begin(self, statement: str) -> Any:
        """This thread's replica Reader with ``statement`` (a BEGIN) run on it, or None: read on the primary."""
        reader = self.reader()
        if reader is None:
            return None
        try:
            reader.cur.execute(statement)
        except DRIVER_ERRORS as e:
            self._failed(self._owners.get(reader.cur.connection), reader.cur.connection, e)
            return None
        return reader

    def snapshot(self) -> Any:
        """A private session on a replica that has replayed this store's last commit, or None."""
        usable = self._usable
        if not usable or self.closed:
            return None
        needed = self._needed
        replica = max(usable, key=lambda r: r.replayed)
        conn = self._connect(replica, private=True)
        if conn is None:
            return None
        if replica.replayed < needed and not self._wait(replica, conn.cursor(), needed):
            self.backend.forget(conn)
            return None
        replica.reads += 1
        return conn

    def release(self, rows: Any) -> bool:
        """A lone read failed on ``rows``' connection: if it is a replica's, say so (the read runs again on
        the primary); a broken connection also marks its replica down until a probe finds it again."""
        replica = self._owners.get(rows.cur.connection)
        if replica is None:
            return False
        replica.fallbacks += 1
        if rows.cur.connection.broken:
            self._mark(replica, "down", "its connection broke during a read")
        return True

    def _connect(self, replica: Replica, private: bool = False) -> Any:
        """A new session on ``replica`` (None: it is down now), having noted how far it has replayed."""
        try:
            conn = self.backend.connect(replica.url)
        except errors.KuraError as e:
            self._mark(replica, "down", e.message)
            return None
        try:
            replica.met(*conn.execute(_MET).fetchone())
        except DRIVER_ERRORS as e:
            self.backend.forget(conn)
            self._mark(replica, "down", _first_line(e))
            return None
        if not private:
            self._owners[conn] = replica
        return conn

    def _wait(self, replica: Replica, cur: Any, needed: int) -> bool:
        """Poll ``replica`` (on ``cur``) until it has replayed ``needed``, for at most ``wait`` seconds."""
        if self.wait <= 0 or (replica.lag_seconds or 0.0) > self.wait:   # it would not be in time
            replica.fallbacks += 1
            return False
        replica.waits += 1
        start = time.monotonic()
        deadline = start + self.wait
        while True:
            try:
                replayed = cur.execute(_REPLAYED).fetchone()[0]
            except DRIVER_ERRORS as e:
                self._failed(replica, cur.connection, e)
                return False
            if replayed is None:
                self._mark(replica, "not a standby", "it is no longer in recovery (promoted?)")
                return False
            replica.saw(int(replayed))
            if replayed >= needed:
                return True
            now = time.monotonic()
            if now >= deadline:
                replica.fallbacks += 1
                return False
            # A standby replays a commit once its WAL receiver has written and flushed it: typically
            # within a millisecond or two, so ask often then (a poll is one short round trip), then less.
            time.sleep(min(_POLL if now - start < _POLL_FAST_FOR else 10 * _POLL, deadline - now))

    def _failed(self, replica: Replica | None, conn: Any, e: BaseException) -> None:
        """A statement failed on a replica: the read goes to the primary; a broken session means it is down
        (a statement cancelled by a recovery conflict does not)."""
        if replica is None:
            return
        replica.fallbacks += 1
        if conn.broken or conn.closed:
            self._mark(replica, "down", _first_line(e))

    def _mark(self, replica: Replica, state: str, detail: str) -> None:
        replica.state, replica.detail = state, detail
        self._usable = tuple(r for r in self.replicas if r.state == "ok")

    # -- probes --------------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """Every replica's state, lag and counts, as a probe finds them now (stats, health), or as the
        prober last found them while it is busy (connecting to a replica that does not answer)."""
        if not self.closed:
            self.probe(reconnect=False)
        return [r.as_dict() for r in self.replicas]

    def probe(self, reconnect: bool = True) -> None:
        """Ask the primary where its WAL ends and every replica how far it has replayed; set their states.
        ``reconnect=False``: a replica without a session is left as it was, and if the prober is busy
        nothing is asked (a caller must not wait for a connection attempt; the prober makes them)."""
        if not self._probe_lock.acquire(timeout=-1 if reconnect else 0.05):
            return
        try:
            if self.closed:
                return
            now = time.monotonic()
            primary = self._primary_position()
            if primary is not None:
                self._sample(now, primary, force=True)
            for r in self.replicas:
                if reconnect or (r.probe is not None and not r.probe.broken):
                    self._probe(r, primary, now)
            self._usable = tuple(r for r in self.replicas if r.state == "ok")
        finally:
            self._probe_lock.release()

    def _primary_position(self) -> int | None:
        try:
            if self._primary is None or self._primary.broken:
                self._primary = self.backend.connect()
            lsn, inserted, system, database, started, page, segment = self._primary.execute(_PRIMARY).fetchone()
        except errors.KuraError:
            return None        # the primary cannot be reached: the replicas' lag is not known meanwhile
        except DRIVER_ERRORS:
            self.backend.forget(self._primary)
            self._primary = None
            return None
        self._identity = (system, database, started)
        self._page, self._segment = int(page), int(segment)
        if not self._needed:       # at open: reads see at least what the primary had (its schema, made just now)
            self._needed = self._record_end(int(inserted))
        return int(lsn)

    def _probe(self, r: Replica, primary: int | None, now: float) -> None:
        try:
            if r.probe is None or r.probe.broken:
                r.probe = None
                r.probe = self.backend.connect(r.url)
            recovery, replayed, paused, system, database, started, since_xact = r.probe.execute(_PROBE).fetchone()
        except errors.KuraError as e:
            self._mark(r, "down", e.message)
            return
        except DRIVER_ERRORS as e:
            self.backend.forget(r.probe)
            r.probe = None
            self._mark(r, "down", _first_line(e))
            return
        if not self._identity:
            r.state, r.detail = "down", "the primary could not be asked who its standbys are"
            return
        own_system, own_database, own_start = self._identity
        if system != own_system:
            r.state, r.detail = "not a standby", f"is a server of another cluster (system identifier {system})"
        elif database != own_database:
            r.state, r.detail = "not a standby", f"is database {database!r}; the store is in {own_database!r}"
        elif not recovery:
            r.state = "not a standby"
            r.detail = ("is the primary itself" if started == own_start
                        else "is not in recovery (a promoted standby: another primary)")
        else:
            r.met(replayed, started)
            r.lag_bytes = None if primary is None else max(0, primary - int(replayed))
            r.lag_seconds = round(self._behind(int(replayed), now, since_xact), 3)
            lagging = r.lag_seconds > self.max_lag
            r.state = "lagging" if lagging else "ok"
            r.detail = ("replay is paused" if paused else "") + \
                (f"{'; ' if paused else ''}{r.lag_seconds:g} s behind, past replica_max_lag" if lagging else "")

    def _sample(self, now: float, lsn: int, force: bool = False) -> None:
        samples = self._samples
        if force or not samples or now - samples[-1][0] >= self._sample_every:
            samples.append((now, lsn))

    def _behind(self, replayed: int, now: float, since_xact: float | None) -> float:
        """How many seconds a replica that has replayed the WAL up to ``replayed`` is behind the primary:
        0 if it has replayed all the primary had at the samples. Else it is at least the age of the first
        sample past ``replayed``, and at most the age of the last one it has replayed and the age of the
        last commit it replayed (``since_xact``: the oldest commit it lacks is newer); the tighter upper
        bound is the answer, the lower one where no sample it has replayed is known yet."""
        lower, upper = None, float("inf")
        for at, lsn in list(self._samples):
            if lsn <= replayed:
                upper = now - at
            elif lower is None:
                lower = now - at
        if lower is None:
            return 0.0
        if upper == float("inf"):
            return max(0.0, lower)
        if since_xact is not None:
            upper = min(upper, float(since_xact))
        return max(0.0, lower, upper)

    def _run(self) -> None:
        while not self._stop.wait(PROBE_EVERY):
            try:
                self.probe()
            except Exception:    # noqa: BLE001 - the prober outlives any one probe's surprise
                pass

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        self.closed = True
        self._stop.set()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 * PROBE_EVERY + self.backend.timeout)
        with self._probe_lock:
            self._usable = ()
            for conn in [self._primary, *(r.probe for r in self.replicas)]:
                if conn is not None:
                    self.backend.forget(conn)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


__all__: Sequence[str] = ("COMMIT", "MAX_LAG", "WAIT", "ReplicaSet", "check_urls")
