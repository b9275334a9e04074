"""Opening PostgreSQL stores: the URL, the schema, a server that is not there, a schema that is not a store."""
from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

import kuradb
from kuradb import errors
from kuradb.backends.postgres.backend import parse_url, redact


def test_the_schema_comes_from_the_url_and_the_rest_goes_to_libpq():
    assert parse_url("postgresql://u@h:5/db?schema=s1&sslmode=disable") == (
        "postgresql://u@h:5/db?sslmode=disable", "s1")
    assert parse_url("postgresql://u@h/db") == ("postgresql://u@h/db", "kuradb")
    assert redact("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    with pytest.raises(errors.ValidationError, match="schema"):
        parse_url("postgresql://u@h/db?schema=" + "x" * 64)


def test_a_server_that_is_not_there_is_unavailable_naming_host_and_port():
    with pytest.raises(errors.Unavailable, match="127.0.0.1:1") as e:
        kuradb.open("postgresql://postgres@127.0.0.1:1/test?schema=x", timeout=1)
    assert e.value.code == "unavailable"


def test_a_store_is_made_on_first_open_and_found_again(pg):
    with pg.open("s") as s:
        s.collection("notes").put({"a": 1}, id="x")
    with pg.open("s", create=False) as s:
        assert s.collection("notes").get("x").content == {"a": 1}
        assert s.backend.describe()["engine"] == "postgresql"


def test_create_false_and_read_only_never_make_a_store(pg):
    for options in ({"create": False}, {"read_only": True}):
        with pytest.raises(errors.NotFound, match="no kuradb store in schema"):
            pg.open("missing", **options)


def test_a_schema_holding_other_tables_is_refused_and_left_alone(pg):
    location = pg.location("foreign")
    url, schema = parse_url(location)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {}.theirs(a int)").format(sql.Identifier(schema)))
    with pytest.raises(errors.CorruptedData, match="not a kuradb store"):
        kuradb.open(location)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname=%s", (schema,)).fetchone() == (1,)


def test_a_store_of_a_newer_kuradb_is_refused(pg):
    with pg.open("s"):
        pass
    url, schema = parse_url(pg.location("s"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("INSERT INTO {}.migrations VALUES (999, 'x', 0)").format(sql.Identifier(schema)))
    with pytest.raises(errors.UnsupportedVersion, match="999"):
        pg.open("s")


def test_a_read_only_store_refuses_writes(pg):
    with pg.open("s") as s:
        s.collection("notes").put({}, id="a")
    with pg.open("s", read_only=True) as s:
        assert s.collection("notes").get("a").version == 1
        with pytest.raises(errors.ReadOnly):
            s.collection("notes").put({}, id="b")


def test_history_transactions_and_the_change_log(pg):
    with pg.open("s") as s:
        n = s.collection("notes")
        n.put({"v": 1}, id="a")
        n.update("a", {"w": 2})
        with pytest.raises(RuntimeError), s.transaction():
            n.put({"v": 9}, id="rolled-back")
            raise RuntimeError
        with s.transaction():
            n.put({"v": 3}, id="b")
            with pytest.raises(RuntimeError), s.transaction():
                n.put({"v": 4}, id="savepoint-undone")
                raise RuntimeError
        assert [r.content for r in n.history("a")] == [{"v": 1}, {"v": 1, "w": 2}]
        assert n.get("rolled-back", None) is None and n.get("savepoint-undone", None) is None
        assert [(c.position, c.id, c.version) for c in s.changes(0)] == [(1, "a", 1), (2, "a", 2), (3, "b", 1)]
        assert [(e.position, e.action) for e in s.audit()] == [
            (1, "record.put"), (2, "record.update"), (3, "record.put")]
        report = s.verify()
        assert report.ok, report.problems


def test_a_refused_write_inside_a_transaction_leaves_the_transaction_usable(pg):
    with pg.open("s") as s:
        n = s.collection("notes")
        n.put({}, id="a")
        with s.transaction():
            n.put({"x": 1}, id="b")
            with pytest.raises(errors.ConflictError):
                n.put({"x": 2}, id="a", if_version=7)
            with pytest.raises(errors.AlreadyExists):
                n.insert({}, id="a")
            n.put({"x": 3}, id="c")
        assert [n.get(i).version for i in "abc"] == [1, 1, 1]


def test_big_blobs_are_kept_in_the_database(pg):
    data = bytes(range(256)) * 1000        # 256,000 bytes: a file on SQLite
    with pg.open("s") as s:
        ref = s.blobs.put(data, content_type="application/octet-stream")
        assert s.blobs.get(ref) == data and s.blobs.stat(ref).size == len(data)
        with s.blobs.open(ref) as f:
            f.seek(1000)
            assert f.read(10) == data[1000:1010]


def test_a_store_used_after_fork_fails_clearly(pg):
    import os

    s = pg.open("s")
    s.collection("notes").put({}, id="a")
    s.collection("notes").put({}, id="b")      # the writer's connection is open too
    pid = os.fork()
    if pid == 0:
        try:
            s.collection("notes").get("a")
            code = 1
        except errors.Closed as e:
            code = 0 if "fork" in str(e) else 2
        except BaseException:
            code = 3
        del s
        import gc

        gc.collect()      # what the child dropped must not end the parent's sessions
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert s.collection("notes").get("a").version == 1     # the parent's reader still works
    s.collection("notes").put({"v": 2}, id="a")            # and its writer
    s.close()


def test_watch_wakes_on_another_process_commit_without_polling(pg):
    """poll=30: only LISTEN/NOTIFY can deliver the other process's change within the test's seconds."""
    import subprocess
    import sys
    import time

    s = pg.open("s")
    s.collection("notes").put({}, id="a")
    child = subprocess.Popen([sys.executable, "-c", WRITE_LATER, pg.location("s")])
    started = time.monotonic()
    try:
        got = next(iter(s.watch(poll=30, timeout=20)))
    finally:
        child.wait(timeout=30)
    waited = time.monotonic() - started
    assert (got.id, got.version) == ("from-child", 1)
    assert waited < 10, waited
    s.close()


WRITE_LATER = """
import sys, time, kuradb
with kuradb.open(sys.argv[1]) as s:
    time.sleep(1.0)
    s.collection("notes").put({"by": "child"}, id="from-child")
"""


def test_a_transaction_whose_statement_failed_is_never_reported_committed(pg):
    """PostgreSQL answers COMMIT of an aborted transaction with ROLLBACK, not an error."""
    with pg.open("s") as s:
        n = s.collection("notes")
        n.put({"v": 0}, id="kept")
        with pytest.raises(errors.KuraError, match="rolled back"):
            with s.transaction():
                n.put({"v": 1}, id="lost")
                with pytest.raises(errors.KuraError):
                    s.backend.reader().rows("SELECT 1/0")      # a statement fails; the caller goes on
        assert n.get("lost", None) is None and n.get("kept").version == 1


def test_writes_see_collection_changes_made_by_another_store_handle(pg):
    """Each handle caches collection rows for its writes (rows.py CatalogCache); a change by another
    handle (another process or host) moves the catalog stamp, so the next write reads the row again."""
    a, b = pg.open("s"), pg.open("s")
    a["n"].put({"v": 1}, id="x")
    a["n"].put({"v": 2}, id="y")                   # the row is cached by now
    b["n"].configure(schema={"type": "object", "required": ["v"]})
    with pytest.raises(errors.ValidationError):
        a["n"].put({"w": 1}, id="z")              # the schema b set holds for a's writes at once
    b.drop_collection("n")
    a["n"].put({"v": 3}, id="x")                   # a new collection of that name, not the dropped one
    assert b.collections() == ["n"] and b["n"].count() == 1 and b["n"].get("x").version == 1
    with pytest.raises(errors.NotFound):
        b["n"].get("y")
    a.close()
    b.close()


def test_a_unique_index_made_by_another_handle_refuses_this_handles_next_write(pg):
    """Writes to a collection without a unique index are queued with the COMMIT (one round trip); the
    cache of which collections have one follows the catalog stamp, so a refusal is still DuplicateKey."""
    a, b = pg.open("s"), pg.open("s")
    a["n"].put({"email": "x@example.org"}, id="1")
    a["n"].put({"email": "y@example.org"}, id="2")     # cached: no unique index
    b["n"].create_index("email", unique=True)
    with pytest.raises(errors.DuplicateKey):
        a["n"].put({"email": "x@example.org"}, id="3")
    assert a["n"].count() == 2 and a["n"].put({"email": "z@example.org"}, id="3").version == 1
    a.close()
    b.close()


def test_the_urls_libpq_options_hold_and_a_statement_timeout_is_busy(pg):
    """kuradb adds its own session options (lock_timeout, search_path) after the URL's, never instead."""
    s = pg.open("s")
    s["n"].put_many([(f"k{i}", {"i": i, "s": f"v{i}"}) for i in range(50_000)])   # a sort of it: >100 ms
    s.close()
    from urllib.parse import quote

    slow = pg.location("s") + "&options=" + quote("-c statement_timeout=10")
    with kuradb.open(slow) as s:
        assert s.backend.reader().cur.execute("SHOW statement_timeout").fetchone()[0] == "10ms"
        with pytest.raises(errors.Busy, match="statement_timeout"):
            list(s["n"].find({"s": {"$gt": "v1"}}, sort=[("s", -1)]))
        assert s["n"].get("k1").content == {"i": 1, "s": "v1"}   # the store stays usable


def test_a_url_that_libpq_cannot_read_is_a_validation_error():
    with pytest.raises(errors.ValidationError, match="not a usable PostgreSQL URL"):
        kuradb.open("postgresql://postgres@127.0.0.1:5432/test?schema=s&sslmode=")
