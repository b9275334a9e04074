"""A SQLite store's connections: one reader per thread, none outliving its thread; none usable after fork();
plans that never depend on bound values."""
from __future__ import annotations

import os
import threading

import kuradb
from kuradb import errors


def test_reader_connections_do_not_outlive_their_threads(store):
    import gc

    store["c"].put({"a": 1}, id="x")
    for _ in range(30):
        t = threading.Thread(target=lambda: store["c"].get("x"))
        t.start()
        t.join()
    gc.collect()
    assert len(store.backend._conns) <= 3  # the writer, this thread's reader, maybe one more (SQLite)


def test_store_used_in_a_forked_child_raises_closed_and_parent_is_unaffected(tmp_path):
    with kuradb.open(tmp_path) as store, kuradb.open(":memory:") as scratch:
        store["c"].put({"a": 1}, id="x")
        store["c"].get("x")  # this thread now has a reader connection the child inherits
        pid = os.fork()
        if pid == 0:  # the child: every use must be refused, nothing of the parent's touched
            code = 0
            for use in (lambda: store["c"].get("x"), lambda: store["c"].put({"a": 9}, id="x"),
                        lambda: store.position):
                try:
                    use()
                    code |= 1
                except errors.Closed as e:
                    code |= 0 if "fork" in str(e) else 2
                except BaseException:  # noqa: BLE001
                    code |= 4
            scratch.close()
            store.close()
            os._exit(10 + code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 10
        assert os.path.isdir(scratch.directory)  # the child's close did not remove it
        store["c"].put({"a": 2}, id="x")
        assert store["c"].get("x")["a"] == 2
        assert [c.position for c in store.changes()] == [1, 2]


def test_every_connection_plans_without_looking_at_bound_values(tmp_path):
    """SQLITE_DBCONFIG_ENABLE_QPSG: else a statement planned against a parameter (an ORDER BY an index
    serves, a partial index's WHERE) is prepared again at every execution (docs/PERFORMANCE.md)."""
    import apsw

    with kuradb.open(tmp_path / "s") as store:
        store["c"].put({"a": 1}, id="x")
        store["c"].find({"a": 1}, sort="a")
        mine = [c for c in apsw.connections() if c.filename.endswith("kura.db")]
        assert mine
        assert all(c.config(apsw.SQLITE_DBCONFIG_ENABLE_QPSG, -1) == 1 for c in mine)
