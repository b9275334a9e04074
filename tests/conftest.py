"""The suite's fixtures: every behaviour test reaches its stores through one parametrised implementation.

A contract test asks for ``store`` (or ``notes``, or ``open_store``) and runs once per
implementation of the store contract, its id showing which (``test_x[sqlite]``).
SQLite in a directory and PostgreSQL (a schema per store at 127.0.0.1:5432) run them all;
the remote client will add itself to ``IMPLEMENTATIONS`` and run the same cases unchanged.
Tests under ``tests/sqlite/`` pin what only the SQLite backend does (files,
WAL, encryption at rest, apsw) and run on it alone, ``tests/postgres/`` what only the
PostgreSQL backend does (URLs, the server, its locks); ``tests/test_suite_layout.py``
keeps the rest of the suite from opening stores any other way.

- ``impl``: the implementation under test (an ``Implementation``), private to the test.
- ``open_store(name="store", **options)``: opens the test's store called ``name``,
  making it if needed. Several calls with one name give several handles onto the same
  store, as two processes would have; different names are different stores.
- ``store``: ``open_store("store")``, closed after the test; ``notes``: its "notes".
- ``impl.location(name)``: what another process (a child, the CLI) passes to
  ``kuradb.open`` to reach the same store.

A test that holds only for some implementations says so:
``@pytest.mark.implementations("sqlite", reason="...")``. ``--impl NAME`` (repeatable)
runs the suite on the named implementations only.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

import kuradb

TESTS = Path(__file__).parent
SQLITE_ONLY = TESTS / "sqlite"

sys.path.insert(0, str(TESTS))  # tests (here and in tests/sqlite/) import their helpers (reference.py) by name

pytest_plugins = ["pytester"]   # tests/test_suite_layout.py runs the fixtures on a suite of its own


class Implementation:
    """One implementation of the store contract, as one test sees it: stores by name, private to the test.

    Subclasses say where a store called ``name`` (a plain word) lives (``location``) and
    how to drop one (``_remove``); opening goes through ``kuradb.open`` like any caller's.
    ``cleanup``, after the test, closes every handle it left open; an implementation whose
    stores live in a server drops them there too.
    """

    name = ""

    def __init__(self) -> None:
        self._handles: list[tuple[str, kuradb.Store]] = []

    def location(self, name: str) -> str:
        """What ``kuradb.open`` is given, in this process or another, to reach the store ``name``."""
        raise NotImplementedError

    def open(self, name: str = "store", **options: Any) -> kuradb.Store:
        """A new handle onto the test's store ``name``, made if it does not exist (unless ``create=False``)."""
        store = kuradb.open(self.location(name), **options)
        self._handles.append((name, store))
        return store

    def remove(self, name: str) -> None:
        """Drop the store ``name`` (every handle onto it closed first): for tests that make many."""
        for of, handle in self._handles:
            if of == name:
                handle.close()
        self._handles = [(of, handle) for of, handle in self._handles if of != name]
        self._remove(name)

    def _remove(self, name: str) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        for _, handle in self._handles:
            handle.close()   # idempotent: most were closed by the test
        self._handles.clear()

    def __repr__(self) -> str:
        return f"<{self.name} implementation>"


class SqliteImplementation(Implementation):
    """Stores are directories (SQLite's kura.db, blob files) in a scratch folder of the test's own."""

    name = "sqlite"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def location(self, name: str) -> str:
        return str(self.root / _plain(name))

    def _remove(self, name: str) -> None:
        shutil.rmtree(self.location(name), ignore_errors=True)

    # the scratch folder is left to pytest, which keeps the last runs' for a look after a failure


def _plain(name: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"\w[\w.-]*", name):
        raise ValueError(f"a store name is a plain word, not {name!r}")
    return name


def _sqlite(request: pytest.FixtureRequest) -> Implementation:
    label = re.sub(r"\W", "_", request.node.name)[:30]
    return SqliteImplementation(request.getfixturevalue("tmp_path_factory").mktemp(f"{label}-stores"))


class PostgresImplementation(Implementation):
    """Stores are schemas of the PostgreSQL database ``test`` at 127.0.0.1:5432, one per store of the
    test, dropped after it."""

    name = "postgres"
    URL = os.environ.get("KURADB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

    def __init__(self) -> None:
        super().__init__()
        import uuid

        self.prefix = f"kt_{uuid.uuid4().hex[:10]}"
        self.made: set[str] = set()

    def location(self, name: str) -> str:
        self.made.add(_plain(name))
        return f"{self.URL}?schema={self.prefix}_{_plain(name)}"

    def _remove(self, name: str) -> None:
        _drop_schemas(self.URL, [f"{self.prefix}_{_plain(name)}"])

    def cleanup(self) -> None:
        super().cleanup()
        _drop_schemas(self.URL, [f"{self.prefix}_{n}" for n in self.made])


def _drop_schemas(url: str, schemas: list[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _postgres(request: pytest.FixtureRequest) -> Implementation:
    try:
        import psycopg
    except ImportError:
        _service_missing("psycopg (the [postgres] extra)", "pip install 'kuradb[postgres]'")
    try:
        psycopg.connect(PostgresImplementation.URL, connect_timeout=2).close()
    except psycopg.Error:
        _service_missing(f"PostgreSQL at {PostgresImplementation.URL}", "service postgresql start")
    return PostgresImplementation()


# name -> maker(request): the implementations the contract tests run on. A maker may ask
# request.getfixturevalue for a session fixture of its own (a database server, say).
IMPLEMENTATIONS = {"sqlite": _sqlite, "postgres": _postgres}
# Run only when named with --impl: implementations still being built (none now; the remote client,
# issue #18, may start here).
OPT_IN: set[str] = set()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--impl", action="append", default=[], choices=sorted(IMPLEMENTATIONS),
                     help="run the contract tests on this implementation only (repeatable; default: all)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "implementations(*names, reason): the implementations a contract test "
                                       "holds for (default: all; tests under tests/sqlite/: sqlite)")


def _implementations_for(metafunc: pytest.Metafunc) -> list[str]:
    chosen = metafunc.config.getoption("--impl") or [n for n in IMPLEMENTATIONS if n not in OPT_IN]
    path = Path(str(metafunc.definition.path))
    supported = list(IMPLEMENTATIONS)
    if SQLITE_ONLY in path.parents:
        supported = ["sqlite"]
    if TESTS / "postgres" in path.parents:
        supported = ["postgres"]
    marker = metafunc.definition.get_closest_marker("implementations")
    if marker is not None:
        unknown = set(marker.args) - set(IMPLEMENTATIONS)
        if unknown or not marker.kwargs.get("reason"):
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: implementations() names known ones and gives"
                                    f" a reason (unknown: {sorted(unknown)})")
        supported = [n for n in supported if n in marker.args]
    return [n for n in chosen if n in supported]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "impl" in metafunc.fixturenames:
        names = _implementations_for(metafunc)
        metafunc.parametrize("impl", names, indirect=True, ids=names)


@pytest.fixture
def impl(request: pytest.FixtureRequest):
    """The implementation under test; its stores are the test's own."""
    implementation = IMPLEMENTATIONS[request.param](request)
    yield implementation
    implementation.cleanup()


@pytest.fixture
def open_store(impl: Implementation):
    """``open_store(name="store", **options)``: a handle onto the test's store ``name`` (see the module doc)."""
    return impl.open


@pytest.fixture
def store(open_store):
    with open_store("store") as s:
        yield s


@pytest.fixture
def notes(store):
    return store.collection("notes")


def _service_missing(what: str, start: str) -> None:
    message = f"{what} is not reachable; start it with: {start}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_url():
    """A namespace of our own on the Redis at 127.0.0.1:6379, deleted after the test."""
    import uuid

    redis = pytest.importorskip("redis") if os.environ.get("CI") != "true" else __import__("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        _service_missing("Redis at 127.0.0.1:6379",
                         "redis-server --daemonize yes --port 6379 --save '' --appendonly no")
    namespace = f"kuradb-test-{uuid.uuid4().hex[:12]}"
    yield "redis://127.0.0.1:6379/0", namespace
    for key in client.scan_iter(match=namespace + ":*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def pg(request: pytest.FixtureRequest):
    """For tests/postgres/: a PostgresImplementation (``pg.location(name)``, ``pg.open(name)``) whose schemas
    are dropped after the test. Skips with a message when the server or psycopg is missing (fails with CI=true)."""
    implementation = _postgres(request)
    yield implementation
    implementation.cleanup()
