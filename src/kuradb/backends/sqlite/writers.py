"""The fair queue of writers across processes: whose turn it is to ``BEGIN IMMEDIATE`` on one store.

SQLite's busy handler sleeps and retries, so under contention the process that
just committed usually wins again, and another can lose the race until its
timeout (measured: waits over 1 s while others committed 20k/s, and Busy with
a 1 s timeout). So a writer that finds others queued, or the database busy,
takes a ticket in ``kura.db-writers``, a small file beside the database mapped
by every process that writes the store::

    header: magic, layout, next ticket, now serving, when the turn began, when its holder went idle, counters
    ring:   one slot per outstanding ticket: ticket, pid, process start time, state

and runs ``BEGIN IMMEDIATE`` when ``now serving`` reaches its ticket. Taking,
passing on and giving up a ticket happen under a short ``flock`` of the file;
waiting reads the mapping without it: the writer next in line sleeps ~0.1 ms
at a time, those behind it half a turn per writer ahead of them. When nobody
is queued a writer skips the ticket and tries ``BEGIN IMMEDIATE`` once without
waiting (the fast path: two reads of the mapping, no lock, no system call of
its own); if that is busy, it queues.

A turn lasts up to ``QUANTUM`` (1 ms) of consecutive transactions: a holder
that commits and comes back at once keeps it, so processes alternate in
slices rather than per commit. Handing the turn to another process costs
~0.1-0.2 ms here (waking it, and SQLite re-reading pages the other connection
changed), so strict per-commit alternation ran at 0.23x the unfair
throughput; 1 ms slices ran at ~0.69x, with the longest wait about
(writers - 1) x QUANTUM plus the scheduler's noise (docs/PERFORMANCE.md,
"Writers across processes"). A holder idle for ``IDLE`` between its
transactions loses the turn.

What keeps the queue moving when a writer misbehaves:

- A writer killed at any point (holding its turn, or queued): the writers
  behind see ``now serving`` not move for ``STALL``, find the slot's process
  gone (no such pid, a zombie, or the pid now belongs to a process that
  started at another time) and pass its turn on. The kernel has already
  released its SQLite lock. Where there is no ``/proc``, only the pid is
  checked: a pid reused within the milliseconds before the check keeps the
  dead writer's turn until the others time out (Busy, never a hang or lost data).
- A writer that times out (``timeout`` of kuradb.open) marks its ticket
  abandoned and raises Busy; whoever passes the turn on skips it.
- A writer whose turn came but that does not claim it within ``LATE``
  (stopped, or starved of CPU) is passed over, and queues again when it runs.
- ``now serving`` past one's ticket (passed over, or a damaged queue reset)
  means: queue again.

Anything the file cannot do (it cannot be created, mapped or locked, holds a
layout this version does not know, or its ring is full) makes this store
handle fall back to plain ``BEGIN IMMEDIATE`` under SQLite's busy timeout,
which also stays the arbiter against writers that do not queue (older
kuradb, other programs) and is why the queue never decides correctness, only
order. The file holds no data, only counters and pids; deleted while stores
are open, it is made again by the next writer that queues. After ``fork()`` a
child drops the inherited mapping and descriptor, so it can neither pass on a
parent's turn nor keep a ``flock`` of the parent's alive.
"""
from __future__ import annotations

import fcntl
import mmap
import os
import stat
import time
import weakref
from dataclasses import dataclass
from typing import Any

import apsw

from ... import errors

SUFFIX = "-writers"
MAGIC = int.from_bytes(b"kurawq\x00\x01", "little")  # read with the other byte order, it does not match
LAYOUT = 1
RING = 256            # outstanding tickets; writers beyond this many wait in SQLite's busy handler instead
SIZE = 16384          # header + ring (8,320 bytes), in whole pages

QUANTUM = 1e-3        # longest turn, in consecutive transactions of one holder
IDLE = 200e-6         # a holder idle this long between its transactions loses the turn
NAP = 100e-6          # the sleep of the writer next in line (the kernel makes it ~0.15 ms here)
FAR = 2e-3            # the longest sleep of a writer further back: half a QUANTUM per writer between it and
                      # the next in line, who cannot all be done sooner (measured: as fast, and less CPU, as ~0.1 ms)
STALL = 2e-3          # no progress for this long: check that the turn's process is alive, then every CHECK
CHECK = 10e-3
LATE = 0.25           # a turn not claimed within this is passed over
LOCK_NAP = 20e-6      # retrying the flock (another process is inside the few-µs critical section)

# Header words (native 64-bit: the file is shared by processes of one machine only).
_MAGIC, _LAYOUT, _NEXT, _SERVING, _SINCE, _IDLE, _TAKEN, _DEAD, _LATE, _ABANDONED, _RESETS = range(11)
_SLOTS = 16
# Slot words, and states.
_TICKET, _PID, _START, _STATE = range(4)
FREE, WAITING, HOLDING, KEEPING, ABANDONED = range(5)     # KEEPING: between the holder's transactions
_STATES = {WAITING: "waiting", HOLDING: "holding", KEEPING: "keeping", ABANDONED: "abandoned"}


def path_for(db_path: str) -> str:
    return db_path + SUFFIX


# -- processes -------------------------------------------------------------------

def _proc_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot); None if it is gone or a zombie;
    0 if this system cannot tell (no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None if os.path.isdir("/proc/self") else 0
    except OSError:
        return 0
    fields = data[data.rindex(b")") + 2:].split()   # the command name may hold spaces and parentheses
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])                           # field 22 of proc(5)


def alive(pid: int, start: int) -> bool:
    """Whether the process that took a ticket as (``pid``, ``start``) still runs."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                 # another user's process: it exists
    now = _proc_start(pid)
    return now is not None and not (start and now and now != start)


_me: tuple[int, int] | None = None      # (pid, start) of this process; forgotten in a forked child


def _identity() -> tuple[int, int]:
    global _me
    if _me is None:
        pid = os.getpid()
        _me = (pid, _proc_start(pid) or 0)
    return _me


# -- the file --------------------------------------------------------------------

class _Unusable(Exception):
    """The writers file cannot be used here: this handle falls back to SQLite's busy wait."""


class _File:
    """One open, mapped writers file. A deleted one stays mapped until its last user lets go."""

    def __init__(self, path: str, mode: int) -> None:
        self.fd = -1
        self.mm: mmap.mmap | None = None
        self.w: Any = None
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
            st = os.fstat(self.fd)
            if not stat.S_ISREG(st.st_mode):
                raise _Unusable(f"{path!r} is not a regular file")
            self.lock(time.monotonic() + 1.0)
            try:
                if st.st_size < SIZE:
                    os.ftruncate(self.fd, SIZE)       # zeros: an empty queue
                    if st.st_size == 0:
                        os.fchmod(self.fd, mode)      # like SQLite's -wal and -shm: the database's mode
                self.mm = mmap.mmap(self.fd, SIZE)
                self.w = w = memoryview(self.mm).cast("Q")
                if w[_MAGIC] == 0 and w[_LAYOUT] == 0:
                    w[_LAYOUT] = LAYOUT
                    w[_MAGIC] = MAGIC
                elif w[_MAGIC] != MAGIC or w[_LAYOUT] != LAYOUT:
                    raise _Unusable(f"{path!r} has a layout this kuradb does not know")
            finally:
                self.unlock()
        except BaseException as e:
            self.close()
            if isinstance(e, (OSError, ValueError, BufferError)):
                raise _Unusable(f"cannot use {path!r}: {e}") from e
            raise

    def lock(self, deadline: float) -> None:
        tries = 0
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            except OSError as e:          # e.g. ENOLCK or EOPNOTSUPP on some network filesystems
                raise _Unusable(f"cannot lock the writers file: {e.strerror}") from e
            tries += 1                    # another process is in the critical section, or was preempted there
            if tries < 10:
                os.sched_yield()
            elif time.monotonic() > deadline:
                raise _Unusable("the writers file stayed locked (a process stopped inside it?)")
            else:
                time.sleep(LOCK_NAP)

    def unlock(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        except OSError as e:
            raise _Unusable(f"cannot unlock the writers file: {e.strerror}") from e

    def deleted(self) -> bool:
        try:
            return os.fstat(self.fd).st_nlink == 0
        except OSError as e:
            raise _Unusable(f"cannot stat the writers file: {e.strerror}") from e

    @staticmethod
    def slot(ticket: int) -> int:
        return _SLOTS + (ticket % RING) * 4

    def close(self) -> None:
        if self.w is not None:
            self.w.release()
            self.w = None
        if self.mm is not None:
            self.mm.close()
            self.mm = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- under the lock ------------------------------------------------------------

    def take(self, pid: int, start: int, now_ns: int) -> int | None:
        """A new ticket, or None when the ring is full."""
        w = self.w
        n, s = w[_NEXT], w[_SERVING]
        if s > n or n - s > RING:        # cannot happen through this code: a damaged file; start afresh
            w[_SERVING] = s = n
            w[_RESETS] += 1
        if n - s >= RING:
            return None
        i = self.slot(n)
        w[i + _TICKET], w[i + _PID], w[i + _START], w[i + _STATE] = n, pid, start, WAITING
        if s == n:
            w[_SINCE] = now_ns
        w[_TAKEN] += 1
        w[_NEXT] = n + 1                 # last: a process killed before this leaves no ticket behind
        return n

    def advance(self, now_ns: int) -> None:
        """Pass the turn from ``now serving`` to the next ticket that has not been given up."""
        w = self.w
        s, n = w[_SERVING], w[_NEXT]
        w[self.slot(s) + _STATE] = FREE
        s += 1
        while s < n:
            i = self.slot(s)
            if w[i + _TICKET] == s and w[i + _STATE] == WAITING:
                break
            w[i + _STATE] = FREE
            s += 1
        w[_SINCE] = now_ns
        w[_SERVING] = s

    def give_up(self, ticket: int, now_ns: int) -> None:
        """Pass on a turn held, or abandon a ticket still waiting."""
        w = self.w
        s = w[_SERVING]
        if s == ticket:
            self.advance(now_ns)
        elif s < ticket:
            i = self.slot(ticket)
            if w[i + _TICKET] == ticket and w[i + _STATE] != ABANDONED:
                w[i + _STATE] = ABANDONED
                w[_ABANDONED] += 1


@dataclass(frozen=True)
class Ticket:
    number: int
    pid: int
    state: str          # "waiting", "holding", "keeping" (between its transactions) or "abandoned"


@dataclass(frozen=True)
class QueueState:
    """A snapshot of a store's writers file (``state(db_path)``), for diagnostics and tests."""

    next_ticket: int
    now_serving: int
    tickets: list[Ticket]       # outstanding, in order: the first has (or is being given) the turn
    taken: int                  # tickets ever taken (writes that found others queued, or the database busy)
    skipped_dead: int           # turns passed on because their process had gone
    skipped_late: int           # turns passed over because their writer did not claim them in time
    abandoned: int              # tickets given up by writers that timed out
    resets: int                 # damaged queue states started afresh


def state(db_path: str) -> QueueState | None:
    """The writers queue of the store whose database is ``db_path``; None without a usable writers file."""
    try:
        fd = os.open(path_for(db_path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.pread(fd, SIZE, 0) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        data = b""
    finally:
        os.close(fd)
    if len(data) < SIZE:
        return None
    w = memoryview(data).cast("Q")
    if w[_MAGIC] != MAGIC or w[_LAYOUT] != LAYOUT:
        return None
    tickets = []
    for t in range(w[_SERVING], min(w[_NEXT], w[_SERVING] + RING)):
        i = _File.slot(t)
        if w[i + _TICKET] == t and w[i + _STATE] in _STATES:
            tickets.append(Ticket(t, w[i + _PID], _STATES[w[i + _STATE]]))
    return QueueState(w[_NEXT], w[_SERVING], tickets, w[_TAKEN], w[_DEAD], w[_LATE], w[_ABANDONED], w[_RESETS])


# -- the queue of one store handle ---------------------------------------------------

_queues: weakref.WeakSet[WriteQueue] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _me
    _me = None
    for q in list(_queues):
        q._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class WriteQueue:
    """The writers queue as one store handle takes part in it. The handle serialises its own threads
    first (one ``begin`` .. ``end`` at a time); ``begin`` raises Busy after ``timeout`` seconds."""

    def __init__(self, db_path: str, timeout: float) -> None:
        self.path = path_for(db_path)
        self._db_path = db_path
        self.timeout = timeout
        self._busy_ms = int(timeout * 1000)
        self._file: _File | None = None    # opened by the first write
        self._off = False                  # no queue: plain BEGIN IMMEDIATE under SQLite's busy timeout
        self.why_off = ""
        self._held: tuple[_File, int] | None = None    # the turn this handle has (in a transaction or keeping it)
        self._keeping = False
        _queues.add(self)

    # -- the hook points -------------------------------------------------------------

    def begin(self, conn: apsw.Connection) -> None:
        """Wait for this handle's turn, then ``BEGIN IMMEDIATE`` on ``conn``. On any error no turn is held."""
        if self._keeping and self._resume():
            try:
                self._begin_immediate(conn, time.monotonic() + self.timeout)
            except BaseException:
                self._release()
                raise
            return
        f = self._file
        if f is None:
            f = None if self._off else self._open()
            if f is None:
                conn.execute("BEGIN IMMEDIATE")
                return
        w = f.w
        if w[_NEXT] == w[_SERVING]:             # nobody queued: try once, without waiting
            conn.setbusytimeout(0)
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except apsw.BusyError:
                pass
            finally:
                conn.setbusytimeout(self._busy_ms)
        self._queued_begin(conn, f)

    def end(self) -> None:
        """After COMMIT or ROLLBACK: keep the turn for the rest of its quantum, or pass it on. Never raises."""
        held = self._held
        if held is None:
            return
        f, ticket = held
        w = f.w
        now = time.monotonic_ns()
        if w is not None and w[_SERVING] == ticket and w[_NEXT] > ticket + 1 \
                and now - w[_SINCE] < QUANTUM * 1e9 and not self._off:
            w[_IDLE] = now                      # before the state: whoever reads KEEPING reads this
            w[f.slot(ticket) + _STATE] = KEEPING
            self._keeping = True
            return
        self._release()

    def close(self) -> None:
        """Let go of the file, and of a turn kept between transactions."""
        if self._keeping:
            self._release()
        self._off, self.why_off, self._file = True, "closed", None

    # -- internals -------------------------------------------------------------------

    def _open(self) -> _File | None:
        try:
            mode = os.stat(self._db_path).st_mode & 0o666
        except OSError:
            mode = 0o644
        try:
            f = _File(self.path, mode)
        except _Unusable as e:
            self._fall_back(str(e))
            return None
        self._file = f
        return f

    def _fall_back(self, why: str) -> None:
        self._off, self.why_off, self._file = True, why, None

    def _release(self) -> None:
        held, self._held, self._keeping = self._held, None, False
        if held is not None:
            try:
                self._give_up(*held)
            except (_Unusable, OSError, ValueError, TypeError) as e:
                self._fall_back(f"cannot pass the turn on: {e}")

    def _resume(self) -> bool:
        """Take up the kept turn again, unless a waiter has passed it on meanwhile."""
        self._keeping = False
        assert self._held is not None
        f, ticket = self._held
        try:
            f.lock(time.monotonic() + self.timeout)
            try:
                i = f.slot(ticket)
                if f.w[_SERVING] == ticket and f.w[i + _STATE] == KEEPING:
                    f.w[i + _STATE] = HOLDING
                    return True
            finally:
                f.unlock()
        except _Unusable as e:
            self._fall_back(str(e))
        self._held = None
        return False

    def _queued_begin(self, conn: apsw.Connection, f: _File) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                taken = self._take(f, deadline)
                if taken is None:                       # no usable queue: plain busy wait for what is left
                    conn.setbusytimeout(max(1, int((deadline - time.monotonic()) * 1000)))
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                    finally:
                        conn.setbusytimeout(self._busy_ms)
                    return
                f, ticket = taken
                if self._wait(f, ticket, deadline):     # False: passed over, queue again
                    break
                if time.monotonic() >= deadline:
                    raise errors.Busy(f"the store's writers queue passed this writer over for {self.timeout:g}s",
                                      hint="raise timeout= in kuradb.open(); if it persists, delete "
                                      f"{self.path!r} (it holds no data)")
        except _Unusable as e:
            self._fall_back(str(e))
            conn.execute("BEGIN IMMEDIATE")
            return
        self._held = (f, ticket)
        try:
            self._begin_immediate(conn, deadline)
        except BaseException:
            self._release()
            raise

    def _take(self, f: _File, deadline: float) -> tuple[_File, int] | None:
        """A ticket (in a new file if this one was deleted); None: wait through SQLite instead."""
        pid, start = _identity()
        while True:
            f.lock(deadline)
            try:
                gone = f.deleted()
                ticket = None if gone else f.take(pid, start, time.monotonic_ns())
            finally:
                f.unlock()
            if not gone:
                return None if ticket is None else (f, ticket)
            self._file = None          # deleted while open: make it again, or map the one another process made
            g = self._open()
            if g is None:
                return None
            f = g

    def _wait(self, f: _File, ticket: int, deadline: float) -> bool:
        """Until ``now serving`` is ``ticket`` (True) or has passed it (False); Busy at the deadline."""
        w = f.w
        seen, moved, check = -1, 0.0, 0.0
        try:
            while True:
                s = w[_SERVING]
                if s == ticket:
                    w[f.slot(ticket) + _STATE] = HOLDING   # the claim (see LATE; a race with it only costs order)
                    if w[_SERVING] == ticket:
                        return True
                    continue
                if s > ticket:
                    return False
                now = time.monotonic()
                if s != seen:
                    seen, moved, check = s, now, now + STALL
                elif w[f.slot(s) + _STATE] == KEEPING and time.monotonic_ns() - w[_IDLE] > IDLE * 1e9:
                    self._pass_on(f, s, KEEPING, 0)
                    continue
                elif now >= check:
                    check = now + CHECK
                    self._unstick(f, s, now - moved)
                if now >= deadline:
                    raise self._busy(f, s, ticket)
                time.sleep(NAP if ticket - s == 1 else min((ticket - s - 1) * QUANTUM / 2, FAR))
        except BaseException:
            try:
                self._give_up(f, ticket)
            except (_Unusable, OSError, ValueError):
                pass
            raise

    def _unstick(self, f: _File, s: int, stalled: float) -> None:
        """``now serving`` has stood at ``s`` for ``stalled`` s: pass the turn on if its writer is gone or late."""
        w = f.w
        i = f.slot(s)
        st = w[i + _STATE]
        if w[i + _TICKET] != s:
            self._pass_on(f, s, st, _RESETS)
        elif st == ABANDONED or not alive(w[i + _PID], w[i + _START]):
            self._pass_on(f, s, st, _DEAD)
        elif st == WAITING and stalled > LATE:
            self._pass_on(f, s, st, _LATE)

    def _pass_on(self, f: _File, s: int, st: int, counter: int) -> None:
        """Pass on turn ``s`` for its holder, if it is still ``s`` and its slot still in state ``st``."""
        f.lock(time.monotonic() + 1.0)
        try:
            w = f.w
            if w[_SERVING] == s and w[f.slot(s) + _STATE] == st:
                if counter:
                    w[counter] += 1
                f.advance(time.monotonic_ns())
        finally:
            f.unlock()

    def _give_up(self, f: _File, ticket: int) -> None:
        if f.w is None:
            return                     # dropped after fork
        f.lock(time.monotonic() + max(self.timeout, 1.0))
        try:
            f.give_up(ticket, time.monotonic_ns())
        finally:
            f.unlock()

    def _begin_immediate(self, conn: apsw.Connection, deadline: float) -> None:
        """Our turn: BEGIN IMMEDIATE, retrying briefly while a writer outside the queue has SQLite's lock."""
        conn.setbusytimeout(0)
        try:
            nap = 50e-6
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except apsw.BusyError:
                    if time.monotonic() >= deadline:
                        raise errors.Busy(
                            f"the store is locked by a writer outside kuradb's queue (another program, or an"
                            f" older kuradb) for over {self.timeout:g}s",
                            hint="raise timeout= in kuradb.open() or shorten write transactions") from None
                    time.sleep(nap)
                    nap = min(nap * 2, 1e-3)
        finally:
            conn.setbusytimeout(self._busy_ms)

    def _busy(self, f: _File, s: int, ticket: int) -> errors.Busy:
        pid = f.w[f.slot(s) + _PID]
        held = max(0, time.monotonic_ns() - f.w[_SINCE]) / 1e9
        return errors.Busy(
            f"the store is locked by another writer: process {pid} has had the write turn for {held:.1f}s,"
            f" {ticket - s - 1} more were queued ahead (waited {self.timeout:g}s)",
            hint="raise timeout= in kuradb.open() or shorten write transactions")

    def _forget_after_fork(self) -> None:
        files = {id(f): f for f in (self._file, self._held and self._held[0]) if f}
        self._file, self._held, self._keeping = None, None, False
        self._off, self.why_off = True, "inherited across fork()"
        for f in files.values():
            f.close()   # the child's reference to the open file goes: it cannot keep a parent's flock alive
