"""Bad input: a typed error naming what and where, and nothing already stored lost or half-written."""
from __future__ import annotations

import datetime
import decimal
import enum
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kuradb import errors


@pytest.mark.parametrize("content, path, fragment", [
    ({"a": float("nan")}, "a", "not a finite number"),
    ({"a": {"b": [1, float("inf")]}}, "a.b[1]", "not a finite number"),
    ({"a": -math.inf}, "a", "not a finite number"),
    ({"when": datetime.datetime(2020, 1, 1)}, "when", "datetime is not a JSON value"),
    ({"n": decimal.Decimal("1.5")}, "n", "Decimal is not a JSON value"),
    ({"t": (1, 2)}, "t", "tuple is not a JSON value"),
    ({"s": {1, 2}}, "s", "set is not a JSON value"),
    ({"b": b"bytes"}, "b", "bytes is not a JSON value"),
    ({"deep": {"x": [{"y": object()}]}}, "deep.x[0].y", "object is not a JSON value"),
    ({"k": {1: "int key"}}, "k", "not a string"),
    ({"big": 2**64}, "big", "64-bit range"),
    ({"_id": "x"}, "_id", "reserved for envelope"),
    ({"$blob": 5}, "", "$blob reference"),
    ({"x": {"$blob": None}}, "x", "$blob reference"),
])
def test_non_json_content_is_rejected_with_path(notes, content, path, fragment):
    with pytest.raises(errors.ValidationError) as info:
        notes.put(content, id="x")
    assert fragment in str(info.value)
    assert info.value.path == path
    assert info.value.code == "invalid_data"
    assert "x" not in notes


@pytest.mark.parametrize("content", [[1, 2], "text", None, 42])
def test_document_must_be_a_dict(notes, content):
    with pytest.raises(errors.ValidationError, match="must be a dict"):
        notes.put(content)


def test_subclasses_of_json_types_are_accepted(notes):
    class Color(enum.StrEnum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    rec = notes.put({"c": Color.RED, "l": Level.HIGH, "nested_underscore": {"_ok": 1}}, id="a")
    assert notes.get("a").content == {"c": "red", "l": 3, "nested_underscore": {"_ok": 1}}
    assert rec.version == 1


def test_oversized_document_is_rejected(open_store):
    with open_store("s", max_document_size=1000) as s:
        s["c"].put({"x": "a" * 900}, id="ok")
        with pytest.raises(errors.ValidationError, match="over the limit of 1,000") as info:
            s["c"].put({"x": "a" * 1000}, id="ok")
        assert "blob" in info.value.hint
        assert s["c"].get("ok")["x"] == "a" * 900


def test_default_size_limit_is_16_mib(notes):
    with pytest.raises(errors.ValidationError, match="16,777,216"):
        notes.put({"x": "a" * (16 * 1024 * 1024)})


@pytest.mark.parametrize("bad_id, fragment", [
    ("", "1 to 512"), ("x" * 513, "1 to 512"), ("a\nb", "control character"),
    ("tab\there", "control character"), (5, "must be a string"),
])
def test_bad_ids_are_rejected(notes, bad_id, fragment):
    with pytest.raises(errors.ValidationError, match=fragment):
        notes.put({"a": 1}, id=bad_id)


def test_ids_may_contain_slashes_and_unicode(notes):
    for id in ("a/b/c", "蔵", "x" * 512, "with space"):
        assert notes.put({"a": 1}, id=id).id == id
        assert notes.get(id)["a"] == 1


@pytest.mark.parametrize("name", ["", "a" * 65, "has space", "slash/no", "ünï", None, 3])
def test_bad_collection_names_are_rejected(store, name):
    with pytest.raises(errors.ValidationError, match="collection name"):
        store.collection(name)


def test_error_codes_are_stable_and_distinct():
    codes = [cls.code for cls in errors.ALL]
    assert len(set(codes)) == len(codes)
    assert errors.NotFound.code == "not_found" and errors.DuplicateKey.code == "duplicate_key"
    assert issubclass(errors.DuplicateKey, errors.ConflictError)
    assert all(issubclass(cls, errors.KuraError) for cls in errors.ALL)
    assert len(set(errors.EXIT_CODES.values())) == len(codes)


json_scalar = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=20)
# A dict whose only key is "$blob" is a blob reference, so generated keys avoid it.
keys = st.text(max_size=8).filter(lambda k: k != "$blob")
json_value = st.recursive(json_scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(
    keys, c, max_size=4), max_leaves=15)
json_doc = st.dictionaries(keys.filter(lambda k: not k.startswith("_")), json_value, max_size=5)
junk = st.sampled_from([float("nan"), float("inf"), object(), (1,), b"x", {1: 2}, 2**70,
                        datetime.date(2020, 1, 1), {"$blob": 3}])


def _plant(doc, bad):
    """Put ``bad`` somewhere inside a copy of ``doc``."""
    if not doc:
        return {"k": bad}
    key = sorted(doc)[0]
    return {**doc, key: [doc[key], {"inner": bad}]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=json_doc)
def test_any_json_document_round_trips_exactly(notes, doc):
    rec = notes.put(doc, id="rt")
    assert notes.get("rt").content == doc
    assert rec.checksum == notes.get("rt").checksum


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=json_doc, bad=junk)
def test_random_bad_input_never_changes_what_is_stored(store, notes, doc, bad):
    notes.put({"stable": True}, id="keep")
    before = notes.get("keep")
    position = store.position
    with pytest.raises(errors.ValidationError):
        notes.put(_plant(doc, bad), id="keep")
    with pytest.raises(errors.ValidationError):
        notes.put_many([("other", {"fine": 1}), ("keep", _plant(doc, bad))])
    with pytest.raises(errors.ValidationError):
        notes.update("keep", _plant(doc, bad))
    assert notes.get("keep") == before and notes.get("keep").content == {"stable": True}
    assert store.position == position
    assert "other" not in notes


# -- text that is not Unicode, and nesting depth (issue #13 item 10) ------------------------------


def _nested(depth, make):
    value = 1
    for _ in range(depth):
        value = make(value)
    return value


@pytest.mark.parametrize("content, path", [
    ({"x": "\ud800"}, "x"), ({"a": ["ok", "\udfff tail"]}, "a[1]"), ({"a": {"\ud83d": 1}}, "a"),
])
def test_lone_surrogates_are_rejected_with_path(notes, content, path):
    with pytest.raises(errors.ValidationError, match="surrogate") as info:
        notes.put(content, id="x")
    assert info.value.path == path and "x" not in notes


@pytest.mark.parametrize("depth", [101, 254, 255, 1_000, 50_000])
@pytest.mark.parametrize("make", [lambda v: {"a": v}, lambda v: [v]], ids=["objects", "arrays"])
def test_documents_nested_past_the_limit_are_rejected(notes, depth, make):
    with pytest.raises(errors.ValidationError, match="deeper than 100"):
        notes.put({"top": _nested(depth - 1, make)}, id="x")
    with pytest.raises(errors.ValidationError, match="deeper than 100"):
        notes.put_many([("y", {"top": _nested(depth - 1, make)})])
    notes.put({"v": 1}, id="z")
    with pytest.raises(errors.ValidationError, match="deeper than 100"):
        notes.update("z", {"top": _nested(depth - 1, make)})
    assert "x" not in notes and "y" not in notes and notes.get("z")["v"] == 1


def test_documents_at_the_depth_limit_round_trip(notes):
    doc = {"top": _nested(99, lambda v: {"a": v})}
    assert notes.put(doc, id="x").content == doc and notes.get("x").content == doc


@settings(max_examples=300, deadline=None)
@given(doc=json_doc)
def test_the_write_path_finds_the_same_array_paths_as_the_catalog(doc):
    """encode_content collects array paths in its validation pass; repair and verify use catalog.array_paths:
    both must agree on every document."""
    from kuradb.encoding import encode_content
    from kuradb.query.catalog import array_paths

    assert encode_content(doc)[2] == array_paths(doc)
