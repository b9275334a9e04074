"""Blobs: content-addressed, deduplicated, streamed, verified, collected only after commit."""
from __future__ import annotations

import hashlib
import io
import os
from datetime import timedelta

import pytest
from shared import check_seeks

from kuradb import errors
from kuradb.blobs import INLINE_MAX


def test_put_bytes_returns_ref_and_get_returns_bytes(store):
    ref = store.blobs.put(b"hello", content_type="text/plain")
    assert ref.hash == hashlib.sha256(b"hello").hexdigest()
    assert (ref.size, ref.content_type) == (5, "text/plain")
    assert store.blobs.get(ref) == b"hello"
    assert store.blobs.get(ref.hash) == b"hello"
    assert store.blobs.get({"$blob": ref.hash}) == b"hello"
    assert store.blobs.stat(ref.hash) == ref and store.blobs.stat(ref).size == 5
    assert store.blobs.exists(ref) and not store.blobs.exists("0" * 64)


def test_same_content_is_stored_once(store):
    a = store.blobs.put(b"same")
    b = store.blobs.put(io.BytesIO(b"same"))
    assert a == b
    assert store.stats()["blobs"] == 1
    assert [c.op for c in store.changes()] == ["put"]


def test_large_blob_from_a_path_streams(store, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 7)
    src = tmp_path / "asset.bin"
    src.write_bytes(data)
    ref = store.blobs.put(src)
    assert ref.size == len(data) and store.blobs.stat(ref).size == len(data)
    with store.blobs.open(ref) as f:
        chunks = iter(lambda: f.read(65536), b"")
        assert b"".join(chunks) == data
    assert store.blobs.get(ref) == data


def test_bad_sources_and_refs(store, tmp_path):
    with pytest.raises(errors.ValidationError, match="bytes, a binary file or a path"):
        store.blobs.put(12)
    with pytest.raises(errors.ValidationError, match="binary mode"):
        store.blobs.put(io.StringIO("text"))
    with pytest.raises(errors.NotFound, match="cannot read"):
        store.blobs.put(tmp_path / "missing.bin")
    with pytest.raises(errors.ValidationError, match="not a blob hash"):
        store.blobs.get("not-a-hash")
    with pytest.raises(errors.NotFound, match="does not exist"):
        store.blobs.get("a" * 64)


def test_record_referring_to_unknown_blob_is_rejected(store):
    with pytest.raises(errors.ValidationError, match="not stored"):
        store["c"].put({"img": {"$blob": "b" * 64}}, id="x")
    assert "x" not in store["c"]


def test_gc_keeps_referenced_blobs_and_removes_the_rest(store):
    kept = store.blobs.put(os.urandom(INLINE_MAX + 10))
    history_only = store.blobs.put(b"old")
    loose = store.blobs.put(os.urandom(INLINE_MAX + 10))
    store["c"].put({"img": history_only}, id="a")
    store["c"].put({"img": kept}, id="a")
    assert store.blobs.gc(grace=timedelta(hours=1)) == 0  # too young
    assert store.blobs.gc(grace=timedelta(0)) == 1
    assert not store.blobs.exists(loose) and store.blobs.exists(kept)
    assert store.blobs.get(kept) and store.blobs.get(history_only) == b"old"
    store["c"].purge("a")
    assert store.blobs.gc(grace=timedelta(0)) == 2
    assert store.stats()["blobs"] == 0


def test_a_gc_rolled_back_keeps_every_blob(store):
    ref = store.blobs.put(os.urandom(INLINE_MAX + 1))
    with pytest.raises(RuntimeError):
        with store.transaction():
            assert store.blobs.gc(grace=timedelta(0)) == 1
            raise RuntimeError("roll back the gc")
    assert store.blobs.exists(ref) and store.blobs.get(ref)
    assert store.blobs.gc(grace=timedelta(0)) == 1 and not store.blobs.exists(ref)


def test_rolled_back_put_leaves_no_blob(store):
    data = os.urandom(INLINE_MAX + 1)
    with pytest.raises(RuntimeError):
        with store.transaction():
            ref = store.blobs.put(data)
            raise RuntimeError
    assert not store.blobs.exists(ref)
    assert store.blobs.gc(grace=timedelta(0)) == 0
    with pytest.raises(errors.NotFound):
        store.blobs.get(ref)
    assert store.blobs.put(data) == ref and store.blobs.get(ref) == data


def test_keep_history_releases_blob_references(store):
    c = store.collection("c", keep_history=1)
    old = store.blobs.put(b"v1")
    c.put({"img": old}, id="a")
    c.put({"img": store.blobs.put(b"v2")}, id="a")
    assert store.blobs.gc(grace=timedelta(0)) == 1
    assert not store.blobs.exists(old)


# -- content types (issue #13 item 7) ------------------------------------------------------------


def test_a_blob_keeps_the_content_type_it_was_stored_with(store):
    ref = store.blobs.put(b"same bytes", content_type="image/png")
    assert store.blobs.put(b"same bytes").content_type == "image/png"            # no type: refers to it
    assert store.blobs.put(b"same bytes", content_type="image/png") == ref
    with pytest.raises(errors.ConflictError, match="stored with content type 'image/png'") as e:
        store.blobs.put(b"same bytes", content_type="image/jpeg")
    assert e.value.current.content_type == "image/png"
    assert store.blobs.stat(ref).content_type == "image/png"


@pytest.mark.parametrize("bad", [5, b"image/png", "png", "image/", "/png", "image/png\nx", "a/" + "b" * 300])
def test_a_content_type_must_be_a_mime_type(store, bad):
    with pytest.raises(errors.ValidationError) as e:
        store.blobs.put(b"data", content_type=bad)
    assert e.value.path == "content_type"
    assert not store.blobs.exists(hashlib.sha256(b"data").hexdigest())


def test_content_types_with_parameters_are_accepted(store):
    assert store.blobs.put(b"t", content_type="text/plain; charset=utf-8").content_type == "text/plain; charset=utf-8"


# -- references read back, seekable streams (issue #13 item 17) ---------------------------------


def test_a_reference_read_back_equals_the_blob_ref_stored(store):
    ref = store.blobs.put(b"png bytes", content_type="image/png")
    rec = store["canvas"].put({"image": ref, "layers": [ref]}, id="c1")
    again = store["canvas"].get("c1")
    assert again["image"] == ref and again["layers"] == [ref] and rec["image"] == ref
    assert again["image"] == {"$blob": ref.hash}
    assert store.blobs.get(again["image"]) == b"png bytes"
    assert store["canvas"].find({"image": ref})[0].id == "c1"


def test_a_blob_ref_is_immutable_and_survives_copy_and_pickle(store):
    import copy
    import pickle

    ref = store.blobs.put(b"x", content_type="text/plain")
    with pytest.raises(TypeError):
        ref["$blob"] = "0" * 64
    with pytest.raises(TypeError):
        ref.update({"a": 1})
    with pytest.raises((TypeError, AttributeError)):
        ref.size = 5
    assert copy.deepcopy(ref) == ref
    back = pickle.loads(pickle.dumps(ref))
    assert (back.hash, back.size, back.content_type) == (ref.hash, 1, "text/plain")


@pytest.mark.parametrize("size", [100, INLINE_MAX + 1, 3 * (1 << 20) + 7])
def test_blob_streams_are_seekable(store, size):
    data = os.urandom(size)
    ref = store.blobs.put(data)
    with store.blobs.open(ref) as f:
        check_seeks(f, data)


def test_pillow_style_access_works(store):
    """What PIL.Image.open does: peek at the header, seek back, read it all."""
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(INLINE_MAX * 2)
    ref = store.blobs.put(data, content_type="image/png")
    with store.blobs.open(ref) as f:
        head = f.read(16)
        f.seek(0)
        assert head.startswith(b"\x89PNG") and f.read() == data
