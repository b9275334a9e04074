"""Random hostile input to every public API: only kuradb.errors come out, and a refused call changes nothing.

Each API gets arguments drawn from values a careless or malicious caller might
pass: wrong types, huge and negative numbers, NaN, lone surrogates and control
characters, deep nesting, big strings, sets, bytes, objects. A call may succeed
(the input happened to be valid) or raise a typed ``KuraError`` other than the
unclassified base; if it raised, the store must be exactly as it was.
"""
from __future__ import annotations

from typing import Any

import pytest
from hostile import HOSTILE, ID, check, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kuradb
from kuradb import errors


def _first(iterator: Any) -> Any:
    for x in iterator:
        return x
    return None


# name -> call(store, coll, args); each call draws its arguments from HOSTILE.
CALLS: dict[str, Any] = {
    "collection": lambda s, c, a: s.collection(a[0], schema=a[1], keep_history=a[2]),
    "getitem": lambda s, c, a: s[a[0]],
    "drop_collection": lambda s, c, a: s.drop_collection(a[0]),
    "changes": lambda s, c, a: _first(s.changes(a[0], limit=a[1])),
    "watch": lambda s, c, a: s.watch(a[0], timeout=a[1]),
    "audit": lambda s, c, a: s.audit(since=a[0], actor=a[1], limit=a[2]),
    "health": lambda s, c, a: s.health(thresholds=a[0]),
    "backup_kind": lambda s, c, a: s.backup("backups", kind=a[0], encryption_key=a[1]),
    "put": lambda s, c, a: c.put(a[0], id=a[1], type=a[2], author=a[3], if_version=a[4]),
    "insert": lambda s, c, a: c.insert(a[0], id=a[1], type=a[2]),
    "update": lambda s, c, a: c.update(a[0], a[1], if_version=a[2], author=a[3]),
    "delete": lambda s, c, a: c.delete(a[0], if_version=a[1], author=a[2]),
    "get": lambda s, c, a: c.get(a[0], version=a[1]),
    "get_default": lambda s, c, a: c.get(a[0], a[1]),
    "get_many": lambda s, c, a: c.get_many(a[0]),
    "history": lambda s, c, a: c.history(a[0]),
    "revert": lambda s, c, a: c.revert(a[0], a[1]),
    "purge": lambda s, c, a: c.purge(a[0]),
    "put_many": lambda s, c, a: c.put_many(a[0], type=a[1], author=a[2]),
    "contains": lambda s, c, a: a[0] in c,
    "find": lambda s, c, a: c.find(a[0], sort=a[1], limit=a[2], skip=a[3], fields=a[4]),
    "find_one": lambda s, c, a: c.find_one(a[0], sort=a[1]),
    "scan": lambda s, c, a: _first(c.scan(a[0], sort=a[1], batch_size=a[2])),
    "count": lambda s, c, a: c.count(a[0]),
    "exists": lambda s, c, a: c.exists(a[0]),
    "aggregate": lambda s, c, a: c.aggregate(a[0]),
    "builder": lambda s, c, a: c.query().where(a[0], a[1], a[2]).order_by(a[3]).limit(a[4]).all(),
    "search_text": lambda s, c, a: c.search_text(a[0], filter=a[1], limit=a[2]),
    "create_index": lambda s, c, a: c.create_index(a[0], unique=a[1], name=a[2]),
    "create_text_index": lambda s, c, a: c.create_text_index(a[0], name=a[1], tokenize=a[2]),
    "drop_index": lambda s, c, a: c.drop_index(a[0]),
    "configure": lambda s, c, a: c.configure(keep_history=a[0], schema=a[1]),
    "blobs_put": lambda s, c, a: s.blobs.put(a[0], content_type=a[1]),
    "blobs_get": lambda s, c, a: s.blobs.get(a[0]),
    "blobs_open": lambda s, c, a: s.blobs.open(a[0]).close(),
    "blobs_stat": lambda s, c, a: s.blobs.stat(a[0]),
    "blobs_exists": lambda s, c, a: s.blobs.exists(a[0]),
    "blobs_gc": lambda s, c, a: s.blobs.gc(grace=a[0]),
    "repository": lambda s, c, a: s.repository(a[0], collection=a[1]),
}
# name -> call(open_store, args): opening the test's stores with hostile options. Hostile locations (paths) are
# the SQLite backend's: tests/sqlite/test_hostile_locations.py.
OPEN_CALLS: dict[str, Any] = {
    "open_options": lambda open_store, a: open_store("opened", timeout=a[0], author=a[1], cache=a[2]).close(),
}
CACHE_CALLS: dict[str, Any] = {
    "cache_set": lambda k, a: k.set(a[0], a[1], ttl=a[2], priority=a[3], tags=a[4]),
    "cache_get": lambda k, a: k.get(a[0], a[1]),
    "cache_delete": lambda k, a: k.delete(a[0]),
    "cache_clear": lambda k, a: k.clear(pattern=a[0], tag=a[1]),
    "cache_set_ttl": lambda k, a: k.set_ttl(a[0], a[1]),
    "cache_incr": lambda k, a: k.incr(a[0], a[1]),
    "cache_get_or_set": lambda k, a: k.get_or_set(a[0], lambda: a[1], ttl=a[2]),
    "cache_new": lambda k, a: kuradb.Cache(None, l1_max_items=a[0], ttl=a[1]).close(),
}


@pytest.fixture
def world(open_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # backup() given relative junk stays in here
    store = open_store("store")
    coll = store.collection("c")
    coll.put({"title": "a", "n": 1, "tags": ["x"]}, id="a")
    coll.put({"title": "b", "n": 2, "nested": {"k": [1, 2]}}, id="b")
    coll.update("a", {"n": 3})
    coll.put({"gone": True}, id="gone")
    coll.delete("gone")
    coll.create_index("n")
    coll.create_text_index(["title"])
    store.blobs.put(b"blob bytes", content_type="text/plain")
    yield store, coll
    store.close()


@pytest.mark.parametrize("name", sorted([*CALLS, *OPEN_CALLS]))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_arguments_give_typed_errors_and_change_nothing(world, open_store, name, data):
    store, coll = world
    args = [data.draw(ID if i == 0 else HOSTILE, label=f"arg{i}") for i in range(5)]
    before = snapshot(store)
    call = (lambda: OPEN_CALLS[name](open_store, args)) if name in OPEN_CALLS else (
        lambda: CALLS[name](store, coll, args))
    try:
        check(call, store, before)
    finally:
        # a call that succeeded may have changed things: put the store back to a known state
        if snapshot(store) != before:
            _reset(store)


def _reset(store: kuradb.Store) -> None:
    for name in store.collections():
        if name != "c":
            store.drop_collection(name)
    c = store.collection("c")
    c.configure(keep_history=None, schema=None)


@pytest.mark.parametrize("name", sorted(CACHE_CALLS))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_arguments_to_the_cache_give_typed_errors(name, data):
    args = [data.draw(HOSTILE, label=f"arg{i}") for i in range(5)]
    with kuradb.Cache(None, l1_max_items=100) as cache:
        cache.set("kept", {"v": 1})
        try:
            CACHE_CALLS[name](cache, args)
        except errors.KuraError as e:
            assert type(e) is not errors.KuraError, f"an unclassified error: {e!r}"
            if name != "cache_clear":
                assert cache.get("kept") == {"v": 1} or args[0] == "kept"
