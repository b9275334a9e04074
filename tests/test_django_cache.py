"""kuradb.contrib.django.KuraCache against the behaviour Django's cache API documents."""
from __future__ import annotations

import time
import warnings

import pytest

django = pytest.importorskip("django", reason="pip install 'kuradb[django]' to test the Django backend")
import django_settings  # noqa: E402

django_settings.configure()

from django.core.cache import CacheKeyWarning  # noqa: E402

import kuradb  # noqa: E402
from kuradb.contrib.django import KuraCache  # noqa: E402


@pytest.fixture
def cache(tmp_path):
    c = KuraCache(str(tmp_path), {"TIMEOUT": 300, "OPTIONS": {"l1_max_items": 100}})
    yield c
    c.cache.close()


def test_get_set_add_delete(cache):
    assert cache.get("k") is None and cache.get("k", "dflt") == "dflt"
    cache.set("k", {"a": 1})
    assert cache.get("k") == {"a": 1}
    assert cache.add("k", "other") is False and cache.get("k") == {"a": 1}
    assert cache.add("new", 1) is True and cache.get("new") == 1
    assert cache.delete("k") is True and cache.delete("k") is False
    assert cache.has_key("new") and not cache.has_key("k")
    cache.set("none", None)
    assert cache.has_key("none") and cache.get("none", "dflt") is None


def test_many(cache):
    assert cache.set_many({"a": 1, "b": 2}) == []
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    cache.delete_many(["a", "c"])
    assert cache.get_many(["a", "b"]) == {"b": 2}


def test_incr_decr(cache):
    cache.set("n", 1)
    assert cache.incr("n") == 2 and cache.incr("n", 10) == 12 and cache.decr("n", 2) == 10
    assert cache.get("n") == 10
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    with pytest.raises(ValueError):
        cache.decr("missing")


def test_timeouts(cache):
    cache.set("forever", 1, timeout=None)
    cache.set("zero", 1, timeout=0)          # documented: expire immediately
    cache.set("neg", 1, timeout=-1)
    cache.set("short", 1, timeout=0.2)
    assert cache.get("zero") is None and cache.get("neg") is None
    assert cache.add("zero", 2, timeout=0) is True and cache.get("zero") is None
    time.sleep(0.25)
    assert cache.get("short") is None and cache.get("forever") == 1
    cache.set("t", 1, timeout=0.2)
    assert cache.touch("t", None) is True and cache.touch("missing") is False
    time.sleep(0.25)
    assert cache.get("t") == 1
    assert cache.touch("t", 0) is True and cache.get("t") is None


def test_default_timeout_applies(tmp_path):
    c = KuraCache(str(tmp_path), {"TIMEOUT": 0.2})
    c.set("k", 1)
    time.sleep(0.25)
    assert c.get("k") is None
    c.cache.close()


def test_key_versioning(cache):
    cache.set("k", "v1")
    cache.set("k", "v2", version=2)
    assert cache.get("k") == "v1" and cache.get("k", version=2) == "v2"
    assert cache.incr_version("k") == 2
    assert cache.get("k") is None and cache.get("k", version=2) == "v1"


def test_key_validation_warns(cache):
    with pytest.warns(CacheKeyWarning):
        cache.set("a key with spaces", 1)
    with pytest.warns(CacheKeyWarning):
        cache.set("k" * 300, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.set("fine:key", 1)


def test_clear_and_memory_location():
    c = KuraCache("", {})
    c.set("a", 1)
    c.clear()
    assert c.get("a") is None and c.cache.disk is None
    c.close()
    c.set("b", 2)
    assert c.get("b") == 2           # close() at request end keeps the cache usable


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def test_values_are_pickled_as_django_stores_them(cache):
    value = {"p": Point(1, 2), "t": (1, 2), "s": {3, 4}, "f": float("nan")}
    cache.set("k", value)
    value["p"].x = 99                        # the cache holds a copy, as every Django backend does
    got = cache.get("k")
    assert got["p"] == Point(1, 2) and got["t"] == (1, 2) and got["s"] == {3, 4} and got["f"] != got["f"]
    assert cache.get("k") is not got         # and gives a fresh one each time
    cache.set("n", 5)
    assert cache.incr("n", 2) == 7 and cache.decr("n") == 6
    cache.set("p", Point(0, 0))
    with pytest.raises(TypeError, match="not an integer"):
        cache.incr("p")


def test_backends_of_one_location_share_one_cache_across_threads(tmp_path):
    import threading

    a = KuraCache(str(tmp_path), {})
    made = []
    t = threading.Thread(target=lambda: made.append(KuraCache(str(tmp_path), {})))   # Django: one per thread
    t.start()
    t.join()
    b = made[0]
    assert a.cache is b.cache
    b.set("k", "old")
    assert a.get("k") == "old"               # now in the memory tier
    b.set("k", "new")
    assert a.get("k") == "new"               # not the stale copy another kuradb.Cache would hold
    a.cache.close()
    c = KuraCache(str(tmp_path), {})          # a closed one is opened again
    assert c.cache is not a.cache and c.get("k") == "new"
    c.cache.close()


def test_bad_options_are_named(tmp_path):
    with pytest.raises(kuradb.errors.ValidationError, match="l1_max_itemz") as info:
        KuraCache(str(tmp_path), {"OPTIONS": {"l1_max_itemz": 5}})
    assert info.value.path == "OPTIONS.l1_max_itemz"
    first = KuraCache(str(tmp_path), {"OPTIONS": {"l1_max_items": 5, "MAX_ENTRIES": 10}})
    KuraCache(str(tmp_path), {"OPTIONS": {"l1_max_items": 5}})      # Django's own options may differ
    with pytest.raises(kuradb.errors.ValidationError, match="already open"):
        KuraCache(str(tmp_path), {"OPTIONS": {"l1_max_items": 6}})
    first.cache.close()


def test_max_entries_culls_a_directory_but_is_left_to_redis_without_one(tmp_path, redis_url):
    url, ns = redis_url
    c = KuraCache(str(tmp_path), {"OPTIONS": {"MAX_ENTRIES": 10, "CULL_FREQUENCY": 2}})
    for i in range(30):
        c.set(f"k{i}", i)
    assert 5 <= c.cache.count() <= 10 and c.get("k29") == 29
    c.cache.close()
    r = KuraCache("", {"OPTIONS": {"MAX_ENTRIES": 10, "redis_url": url, "namespace": ns}})
    for i in range(30):
        r.set(f"k{i}", i)
    assert all(r.get(f"k{i}") == i for i in range(30))   # as Django's Redis backend: Redis bounds itself
    r.cache.close()
