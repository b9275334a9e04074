"""Non-finite floats: a JSON cache refuses NaN and ±inf anywhere in a value, in every tier, on every write path.

JSON has no NaN or infinity (orjson writes them as null), so before this was decided
a NaN came back as nan from memory and as None from Redis, the disk or the archive.
"""
from __future__ import annotations

import math

import pytest

import kuradb
from kuradb import errors

BAD = [
    float("nan"),
    math.inf,
    -math.inf,
    {"a": {"b": [1, 2, float("nan")]}},
    [0.5, (1, -math.inf)],
    ({"x": 1.0}, {"y": [math.inf]}),
]
GOOD = {"x": [1.5, -2.25, None, "nan", {"deep": [1e308]}]}


def _configs(tmp_path, redis_url):
    url, ns = redis_url
    return {
        "memory": dict(path=None),
        "memory-l1-only": dict(path=None, l2_max_items=0),
        "disk": dict(path=tmp_path / "disk"),
        # values leave L3 at once for the compressed archive (L4)
        "archive": dict(path=tmp_path / "archive", l1_max_items=1, l2_max_items=1, disk_max_bytes=1,
                        archive_max_bytes=1 << 20),
        "redis": dict(path=None, redis_url=url, namespace=ns),
        "redis+disk": dict(path=tmp_path / "redis-disk", redis_url=url, namespace=ns + "-d"),
    }


@pytest.fixture(params=["memory", "memory-l1-only", "disk", "archive", "redis", "redis+disk"])
def config(request, tmp_path, redis_url):
    return request.param, _configs(tmp_path, redis_url)[request.param]


def _lower_tiers_only(c: kuradb.Cache) -> None:
    """Forget the memory tiers, so that the next read comes from Redis, disk or archive."""
    for key in list(c.l1.data):
        c.l1.pop(key)
    if c.l2 is not None:
        for key in list(c.l2.data):
            c.l2.pop(key)


@pytest.mark.parametrize("bad", BAD, ids=["nan", "inf", "-inf", "nested-dict", "in-tuple", "tuple-of-dicts"])
def test_every_tier_refuses_non_finite_floats_and_keeps_the_old_value(config, bad):
    name, kwargs = config
    with kuradb.Cache(**kwargs) as c:
        c.set("k", GOOD)
        with pytest.raises(errors.ValidationError, match="JSON cannot hold") as info:
            c.set("k", bad)
        assert info.value.path.startswith("k")
        with pytest.raises(errors.ValidationError):
            c.set_many({"other": 1, "k": bad})
        with pytest.raises(errors.ValidationError):
            c.add("fresh", bad)
        assert c.get("k") == GOOD and c.get("fresh") is None
        if name != "memory" and name != "memory-l1-only":
            _lower_tiers_only(c)
            assert c.get("k") == GOOD                       # what the lower tier holds was not touched
        if name == "archive":
            assert c.stats().tiers["l4"].hits == 1
    if kwargs.get("path") is not None:
        with kuradb.Cache(**kwargs) as c:                   # and after reopening the directory
            assert c.get("k") == GOOD and c.get("fresh") is None


def test_the_path_to_the_bad_float_is_named():
    c = kuradb.Cache(None)
    with pytest.raises(errors.ValidationError) as info:
        c.set("doc", {"items": [{"price": 1.0}, {"price": float("nan")}]})
    assert info.value.path == "doc['items'][1]['price']"
    assert "nan" in str(info.value)


def test_loaders_and_memoize_refuse_them_and_store_nothing(config):
    _, kwargs = config
    with kuradb.Cache(**kwargs) as c:
        with pytest.raises(errors.ValidationError):
            c.get_or_set("loaded", lambda: {"ratio": float("nan")})
        assert c.get("loaded", "absent") == "absent"

        calls = []

        @c.memoize()
        def ratio(a, b):
            calls.append((a, b))
            return a / b if b else math.inf

        assert ratio(1, 2) == 0.5
        with pytest.raises(errors.ValidationError):
            ratio(1, 0)
        with pytest.raises(errors.ValidationError):   # nothing was cached: the function runs again
            ratio(1, 0)
        assert calls == [(1, 2), (1, 0), (1, 0)]
        with pytest.raises(errors.ValidationError, match="delta"):
            c.incr("loaded", float("nan"))  # type: ignore[arg-type]


def test_a_cycle_held_in_memory_is_walked_once():
    c = kuradb.Cache(None)
    loop: list = [1.0]
    loop.append(loop)
    c.set("loop", loop)                     # a memory-only cache holds the object itself, cycles and all
    assert c.get("loop") is loop
    loop.append(float("nan"))
    with pytest.raises(errors.ValidationError):
        c.set("loop", loop)


def test_the_pickle_serializer_keeps_them(tmp_path):
    with kuradb.Cache(tmp_path, serializer="pickle") as c:
        c.set("k", {"v": float("nan"), "i": math.inf})
        _lower_tiers_only(c)
        got = c.get("k")
        assert math.isnan(got["v"]) and got["i"] == math.inf   # pickle holds NaN faithfully


def test_a_value_pickle_refuses_is_a_validation_error(tmp_path):
    import pickle

    class Unpicklable:
        def __reduce__(self):
            raise pickle.PicklingError("not today")

    with kuradb.Cache(tmp_path, serializer="pickle") as c:
        with pytest.raises(errors.ValidationError, match="cannot be pickled") as info:
            c.set("k", Unpicklable())
        assert info.value.path == "k" and c.get("k") is None
