"""Writers across processes take turns in order; killed, stopped and timed-out writers never stall the others.

Real processes throughout: a child holds a transaction or queues behind one,
and the test kills, stops or times it out, then checks that the next write
gets through (a generous timeout, never a tight timing) and reads the queue's
own counters (``writers.state``) to see which mechanism moved it.
"""
from __future__ import annotations

import gc
import os
import select
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

import kuradb
from kuradb import errors
from kuradb.backends.sqlite import writers

KEY = bytes(range(32))

# A writer in a child process, driven line by line on stdin:
#   "go"     -> begin a transaction (queueing if it must), put a record, print "in"
#   "commit" -> commit, print "out"
# Run with "loop SECONDS" instead: put as fast as it can, then print how many and how many were Busy.
CHILD = r"""
import os, sys, time, kuradb
directory, mode = sys.argv[1], sys.argv[2]
key = bytes(range(32)) if "key" in sys.argv[3:] else None
with kuradb.open(directory, timeout=float(os.environ.get("T", "30")), encryption_key=key) as s:
    c = s["c"]
    if mode == "loop":
        n = busy = 0
        end = time.time() + float(sys.argv[3])
        while time.time() < end:
            try:
                c.put({"i": n}, id=f"{os.getpid()}-{n}")
                n += 1
            except kuradb.errors.Busy:
                busy += 1
        print(n, busy, flush=True)
        sys.exit(0)
    print("open", flush=True)
    sys.stdin.readline()
    with s.transaction():
        c.put({"by": os.getpid()}, id=f"p{os.getpid()}")
        print("in", flush=True)
        sys.stdin.readline()
    print("out", flush=True)
    sys.stdin.readline()
"""


class Child:
    """A writer process (see CHILD). Killed and reaped at the end of the test if still there."""

    def __init__(self, directory, *args, env=None):
        self.p = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, **(env or {})})
        self.pid = self.p.pid

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def expect(self, word, timeout=60):
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        assert ready, f"child {self.pid} did not say {word!r} within {timeout}s: {self.p.stderr.read()}"
        line = self.p.stdout.readline().strip()
        assert line == word, (line, self.p.stderr.read() if not line else "")

    def kill(self):
        self.p.kill()          # SIGKILL; not reaped yet, so the process stays a zombie until done()

    def done(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=60)
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            f.close()


@pytest.fixture
def children():
    made = []

    def start(directory, *args, **kw):
        c = Child(directory, *args, **kw)
        made.append(c)
        return c
    yield start
    for c in made:
        try:
            os.kill(c.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        c.done()


def db(path):
    return os.path.join(path, "kura.db")


def wait_until(what, timeout=60.0):
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.005)


def tickets(path):
    st = writers.state(db(path))
    return st.tickets if st else []


def ticket_of(path, pid):
    return next((t for t in tickets(path) if t.pid == pid), None)


def holder_and_queued(path, children, queued=1):
    """A child in a transaction (it took the fast path: no ticket) and ``queued`` more behind it,
    each with a ticket; the first of those has the turn and waits for SQLite's lock."""
    a = children(path, "hold")
    a.expect("open")
    a.send("go")
    a.expect("in")
    behind = []
    for _ in range(queued):
        b = children(path, "hold")
        b.expect("open")
        b.send("go")
        wait_until(lambda b=b: ticket_of(path, b.pid) is not None)
        behind.append(b)
    return a, behind


@pytest.fixture
def path(tmp_path):
    kuradb.open(tmp_path / "s").close()
    return tmp_path / "s"


# -- fairness --------------------------------------------------------------------------

OVERTAKES = """
import os, sys, time, kuradb
directory, seconds = sys.argv[1], float(sys.argv[2])
starts, busy = [], 0
with kuradb.open(directory, timeout=2) as s:
    c = s["w"]
    while time.time() < float(sys.argv[3]):
        time.sleep(0.001)
    end = time.time() + seconds
    i = 0
    while time.time() < end:
        before = s.position
        try:
            c.put({"i": i}, id=f"{os.getpid()}-{i}")
            starts.append(before)
            i += 1
        except kuradb.errors.Busy:
            busy += 1
print(busy, *starts, flush=True)
"""


def test_four_processes_in_tight_loops_all_commit_and_none_is_overtaken_for_long(path):
    """Four processes put as fast as they can for 3 s. None gets Busy with a 2 s timeout, each keeps
    committing, and no put is overtaken by more than 1,000 commits of the others between its call and its commit.

    With SQLite's busy handler alone (the code of 03dae12) the worst put was overtaken by 3,930-11,472
    commits in five runs of this test (it sleeps while the others commit ~15-25k/s); through the queue
    the most was 28-45 in scratch runs: the others' turns ahead of it, up to 1 ms of commits each."""
    start = time.time() + 2
    procs = [subprocess.Popen([sys.executable, "-c", OVERTAKES, str(path), "3", str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = {}
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        busy, *starts = map(int, out.split())
        outs[p.pid] = starts
        assert busy == 0
    with kuradb.open(path) as s:
        at = {ch.id: ch.position for ch in s.changes() if ch.collection == "w"}
    worst = 0
    for pid, starts in outs.items():
        # Progress, not speed: with other work on the 2 vCPUs a process managed 93 in 3 s.
        assert len(starts) >= 10, f"process {pid} committed only {len(starts)} times in 3 s"
        for i, before in enumerate(starts):
            worst = max(worst, at[f"{pid}-{i}"] - before - 1)
    assert worst <= 1000, f"a put was overtaken by {worst} commits of other processes"


# -- writers that die, stop or give up ----------------------------------------------------

def test_a_writer_killed_while_holding_its_turn_is_passed_over(path, children):
    a, (b,) = holder_and_queued(path, children)
    a.send("commit")
    a.expect("out")
    b.expect("in")                              # b has the turn and is inside its transaction
    assert ticket_of(path, b.pid).state == "holding"
    b.kill()                                    # left a zombie: its pid still exists
    with kuradb.open(path, timeout=5) as s:
        s["c"].put({"v": 1}, id="after")
        assert s["c"].get(f"p{b.pid}", None) is None  # its transaction was rolled back
        assert s["c"].get(f"p{a.pid}")["by"] == a.pid
    st = writers.state(db(path))
    assert st.skipped_dead == 1 and st.skipped_late == 0
    assert st.tickets == []


def test_a_writer_killed_while_queued_is_skipped_when_its_turn_comes(path, children):
    a, (b, c) = holder_and_queued(path, children, queued=2)
    assert ticket_of(path, c.pid).state == "waiting"
    c.kill()
    a.send("commit")
    a.expect("out")
    b.expect("in")
    b.send("commit")
    b.expect("out")                             # the turn moves to c's ticket, and nobody takes it
    with kuradb.open(path, timeout=5) as s:
        s["c"].put({"v": 1}, id="after")
    st = writers.state(db(path))
    assert st.skipped_dead == 1 and st.skipped_late == 0   # found dead, not merely late
    assert st.tickets == []


def test_a_writer_that_times_out_raises_busy_naming_the_holder_and_its_ticket_is_skipped(path, children):
    a, (b,) = holder_and_queued(path, children)
    with kuradb.open(path, timeout=0.5) as s:
        t = time.monotonic()
        with pytest.raises(errors.Busy) as e:
            s["c"].put({"v": 1}, id="impatient")
        assert time.monotonic() - t >= 0.5
        assert f"process {b.pid} has had the write turn" in str(e.value) and "timeout=" in str(e.value)
    assert [t.state for t in writers.state(db(path)).tickets] == ["holding", "abandoned"]
    assert writers.state(db(path)).abandoned == 1
    with kuradb.open(path, timeout=30) as s:
        done = []
        th = threading.Thread(target=lambda: done.append(s["c"].put({"v": 2}, id="patient")))
        th.start()
        wait_until(lambda: len(writers.state(db(path)).tickets) == 3)
        a.send("commit")
        b.expect("in")
        b.send("commit")
        b.expect("out")
        th.join(60)
        assert done and s["c"].get("patient")["v"] == 2
        assert s["c"].get("impatient", None) is None
    st = writers.state(db(path))
    assert st.skipped_late == 0 and st.skipped_dead == 0   # the abandoned ticket was skipped, not waited out


def test_a_stopped_writer_whose_turn_comes_is_passed_over_and_queues_again_when_it_runs(path, children):
    a, (b, c) = holder_and_queued(path, children, queued=2)
    os.kill(c.pid, signal.SIGSTOP)
    a.send("commit")
    b.expect("in")
    b.send("commit")
    b.expect("out")
    with kuradb.open(path, timeout=10) as s:
        s["c"].put({"v": 1}, id="after")        # c is alive but cannot claim its turn
        assert writers.state(db(path)).skipped_late == 1
        os.kill(c.pid, signal.SIGCONT)
        c.expect("in")                          # it found its turn gone and queued again
        c.send("commit")
        c.expect("out")
        assert s["c"].get(f"p{c.pid}")["by"] == c.pid


def test_a_turn_kept_between_transactions_goes_to_the_next_writer_when_its_holder_idles(path, children):
    c = children(path, "loop", "3")
    me = os.getpid()
    with kuradb.open(path, timeout=30) as s:
        end = time.monotonic() + 30
        while True:                  # until a put returns keeping the turn: the child was queued, 1 ms not over
            assert time.monotonic() < end, "the turn was never kept"
            s["c"].put({"v": 1}, id="mine")
            first = tickets(path)[:1]
            if first and first[0].pid == me and first[0].state == "keeping":
                break
        wait_until(lambda: all(t.pid != me for t in tickets(path)))   # this handle idles: the child takes over
        c.p.wait(60)
    theirs, busy = map(int, c.p.stdout.read().split())
    assert busy == 0 and theirs > 0
    st = writers.state(db(path))
    assert st.skipped_late == 0 and st.skipped_dead == 0


def test_a_process_is_alive_only_with_the_start_time_it_had(tmp_path):
    me = os.getpid()
    start = writers._proc_start(me)
    assert start and writers.alive(me, start)
    assert not writers.alive(me, start + 1)       # the same pid, another process: a reused pid
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    while p.poll() is None:
        time.sleep(0.01)
    assert not writers.alive(p.pid, 0)            # gone
    z = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_until(lambda: open(f"/proc/{z.pid}/stat").read().split(")")[1].split()[0] == "Z")
    assert not writers.alive(z.pid, 0)            # exited but not yet reaped
    z.wait()


# -- where there is no queue ----------------------------------------------------------------

def test_a_read_only_store_makes_no_writers_file(path):
    assert not os.path.exists(writers.path_for(db(path)))     # made by the first write, not by open
    with kuradb.open(path, read_only=True) as s:
        assert s["c"].get("x", None) is None
        with pytest.raises(errors.ReadOnly):
            s["c"].put({"v": 1}, id="x")
    assert not os.path.exists(writers.path_for(db(path)))
    with kuradb.open(path) as s:
        s["c"].put({"v": 1}, id="x")
    assert writers.state(db(path)) is not None


def test_a_writers_file_deleted_while_stores_are_open_is_made_again(path):
    with kuradb.open(path, timeout=30) as x, kuradb.open(path, timeout=30) as y:
        x["c"].put({"v": 1}, id="x")                      # x has mapped the file
        os.unlink(writers.path_for(db(path)))
        with y.transaction():
            y["c"].put({"v": 1}, id="y")                  # y holds SQLite's lock
            th = threading.Thread(target=lambda: x["c"].put({"v": 2}, id="x"))
            th.start()                                    # x finds it busy and queues: in a new file
            wait_until(lambda: tickets(path) != [])
        th.join(60)
        assert x["c"].get("x")["v"] == 2
    st = writers.state(db(path))
    assert st.taken == 1 and st.tickets == []


def _contend(path, children, env=None):
    """A child commits in a loop for 1.5 s while this process does too; neither may get Busy."""
    c = children(path, "loop", "1.5", env=env)
    n = 0
    with kuradb.open(path, timeout=10) as s:
        end = time.time() + 1.5
        while time.time() < end:
            s["c"].put({"i": n}, id=f"me-{n}")
            n += 1
    c.p.wait(60)
    theirs, busy = map(int, c.p.stdout.read().split())
    assert c.p.returncode == 0 and busy == 0 and theirs > 0 and n > 0
    with kuradb.open(path) as s:
        assert s["c"].get(f"me-{n - 1}")["i"] == n - 1
        assert s["c"].get(f"{c.pid}-{theirs - 1}")["i"] == theirs - 1


@pytest.mark.parametrize("obstacle", ["directory", "fifo", "symlink", "other layout"])
def test_an_unusable_writers_file_falls_back_to_sqlites_busy_wait(path, children, obstacle):
    w = writers.path_for(db(path))
    if obstacle == "directory":
        os.mkdir(w)
    elif obstacle == "fifo":
        os.mkfifo(w)
    elif obstacle == "symlink":
        victim = path.parent / "victim"
        victim.touch()
        os.symlink(victim, w)                  # never followed: nothing else is ever truncated or written
    else:
        with open(w, "wb") as f:
            f.write(b"kurawq\x00\x09" + bytes(writers.SIZE - 8))
    before = os.lstat(w)
    _contend(path, children)
    after = os.lstat(w)
    assert (stat.S_IFMT(after.st_mode), after.st_size, after.st_mtime_ns) == \
        (stat.S_IFMT(before.st_mode), before.st_size, before.st_mtime_ns)
    assert writers.state(db(path)) is None
    if obstacle == "symlink":
        assert os.path.getsize(path.parent / "victim") == 0


@pytest.fixture
def hugetlbfs_file(tmp_path):
    """A 2 MiB file on hugetlbfs with no huge pages reserved: open, ftruncate and flock work, mmap fails."""
    if os.geteuid() != 0:
        pytest.skip("mounting hugetlbfs needs root")
    with open("/proc/sys/vm/nr_hugepages") as f:
        if int(f.read()) != 0:
            pytest.skip("huge pages are reserved here: mmap would succeed")
    mnt = tmp_path / "huge"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "hugetlbfs", "none", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount hugetlbfs here ({done.stderr.strip()})")
    try:
        f = mnt / "writers"
        fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(fd, 2 << 20)
        os.close(fd)
        yield f
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_writers_file_that_cannot_be_mapped_falls_back(path, children, hugetlbfs_file):
    w = writers.path_for(db(path))
    open(w, "wb").close()
    subprocess.run(["mount", "--bind", str(hugetlbfs_file), w], check=True)
    try:
        _contend(path, children)
    finally:
        subprocess.run(["umount", "-l", w], check=False)


def test_a_damaged_queue_is_started_afresh(path):
    with kuradb.open(path) as s:
        s["c"].put({"v": 1}, id="x")
    with open(writers.path_for(db(path)), "r+b") as f:      # now serving far past next ticket
        f.seek(writers._SERVING * 8)
        f.write((10**9).to_bytes(8, sys.byteorder))
    with kuradb.open(path, timeout=10) as x, kuradb.open(path, timeout=10) as y:
        with y.transaction():
            y["c"].put({"v": 2}, id="y")
            th = threading.Thread(target=lambda: x["c"].put({"v": 3}, id="x"))
            th.start()
            wait_until(lambda: writers.state(db(path)).resets == 1)
        th.join(60)
        assert x["c"].get("x")["v"] == 3
    assert writers.state(db(path)).tickets == []


# -- fork, threads, encryption ----------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_cannot_pass_on_its_parents_turn(path, children):
    a = children(path, "hold")
    a.expect("open")
    a.send("go")
    a.expect("in")
    with kuradb.open(path, timeout=30) as s:
        entered, release = threading.Event(), threading.Event()

        def parent_write():
            with s.transaction():
                s["c"].put({"v": 1}, id="parent")
                entered.set()
                release.wait(60)
        th = threading.Thread(target=parent_write)
        th.start()
        wait_until(lambda: ticket_of(path, os.getpid()) is not None)
        a.send("commit")
        entered.wait(60)                                   # this process has the turn, in a transaction
        b = children(path, "hold")
        b.expect("open")
        b.send("go")
        wait_until(lambda: ticket_of(path, b.pid) is not None)
        pid = os.fork()
        if pid == 0:                                       # the child: try everything that could release it
            code = 1
            try:
                try:
                    s["c"].put({"v": 2}, id="child")
                except errors.Closed:
                    code = 0
                s.close()
                gc.collect()
                fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                       if os.path.islink(f"/proc/self/fd/{fd}")]
                if any(f.endswith("kura.db-writers") for f in fds):
                    code = 3                               # it could keep a flock of the parent's alive
            except BaseException:
                code = 2
            os._exit(code)
        assert os.waitpid(pid, 0)[1] == 0
        st = writers.state(db(path))
        assert [(t.pid, t.state) for t in st.tickets] == [(os.getpid(), "holding"), (b.pid, "waiting")]
        release.set()
        th.join(60)
        b.expect("in")                                     # the turn passes on when the parent commits
        b.send("commit")
        b.expect("out")
        assert s["c"].get("child", None) is None


def test_threads_of_one_process_queue_as_one_writer(path, children):
    c = children(path, "loop", "2")
    counts = [0] * 6
    seen_twice = []

    def work(k):
        with_deadline = time.time() + 2
        while time.time() < with_deadline:
            s["c"].put({"k": k}, id=f"t{k}-{counts[k]}")
            counts[k] += 1

    def watch():
        while any(t.is_alive() for t in threads):
            st = writers.state(db(path))
            pids = [t.pid for t in st.tickets if t.state != "abandoned"] if st else []
            if len(pids) != len(set(pids)):
                seen_twice.append(pids)
            time.sleep(0.001)

    with kuradb.open(path, timeout=10) as s:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        w = threading.Thread(target=watch)
        w.start()
        for t in threads:
            t.join(60)
        w.join(60)
    c.p.wait(60)
    theirs, busy = map(int, c.p.stdout.read().split())
    assert busy == 0 and theirs > 0 and all(counts)
    assert seen_twice == []          # only the holder of the in-process lock ever holds a ticket


def test_an_encrypted_store_queues_and_its_writers_file_holds_no_data(tmp_path, children):
    path = tmp_path / "enc"
    kuradb.open(path, encryption_key=KEY).close()
    c = children(path, "loop", "1.5", "key")
    n = 0
    with kuradb.open(path, encryption_key=KEY, timeout=10) as s:
        end = time.time() + 1.5
        while time.time() < end:
            s["c"].put({"secret": "PLAINTEXT-7c1e", "i": n}, id=f"me-{n}")
            n += 1
    c.p.wait(60)
    theirs, busy = map(int, c.p.stdout.read().split())
    assert busy == 0 and theirs > 0
    data = open(writers.path_for(db(path)), "rb").read()
    assert b"PLAINTEXT" not in data and b"me-" not in data and KEY not in data
    assert writers.state(db(path)).taken > 0
    with kuradb.open(path, encryption_key=KEY, read_only=True) as s:
        assert s["c"].get(f"me-{n - 1}")["i"] == n - 1
