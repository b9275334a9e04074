"""Blobs: content-addressed, deduplicated, streamed, verified, collected only after commit."""
from __future__ import annotations

import hashlib
import io
import os
from datetime import timedelta

import pytest

import kuradb
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


def test_large_blob_is_a_file_and_streams(store, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 7)
    src = tmp_path / "asset.bin"
    src.write_bytes(data)
    ref = store.blobs.put(src)
    path = os.path.join(store.directory, "blobs", ref.hash[:2], ref.hash)
    assert os.path.getsize(path) == len(data)
    with store.blobs.open(ref) as f:
        chunks = iter(lambda: f.read(65536), b"")
        assert b"".join(chunks) == data
    assert store.blobs.get(ref) == data
    assert not os.listdir(os.path.join(store.directory, "blobs", "tmp"))


def test_large_bytes_become_a_file(store):
    ref = store.blobs.put(b"y" * (INLINE_MAX + 1))
    assert os.path.exists(os.path.join(store.directory, "blobs", ref.hash[:2], ref.hash))
    assert store.blobs.get(ref) == b"y" * (INLINE_MAX + 1)


def test_small_blob_stays_inline(store):
    ref = store.blobs.put(b"x" * INLINE_MAX)
    assert not os.path.exists(os.path.join(store.directory, "blobs", ref.hash[:2], ref.hash))
    assert store.blobs.get(ref) == b"x" * INLINE_MAX


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
    assert not store.blobs.exists(loose)
    assert os.path.exists(os.path.join(store.directory, "blobs", kept.hash[:2], kept.hash))
    assert not os.path.exists(os.path.join(store.directory, "blobs", loose.hash[:2], loose.hash))
    assert store.blobs.get(kept) and store.blobs.get(history_only) == b"old"
    store["c"].purge("a")
    assert store.blobs.gc(grace=timedelta(0)) == 2
    assert store.stats()["blobs"] == 0


def test_gc_deletes_files_only_after_commit(store):
    ref = store.blobs.put(os.urandom(INLINE_MAX + 1))
    path = os.path.join(store.directory, "blobs", ref.hash[:2], ref.hash)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.blobs.gc(grace=timedelta(0))
            raise RuntimeError("roll back the gc")
    assert os.path.exists(path) and store.blobs.get(ref)


def test_rolled_back_put_leaves_no_row_and_gc_removes_its_file(store):
    data = os.urandom(INLINE_MAX + 1)
    with pytest.raises(RuntimeError):
        with store.transaction():
            ref = store.blobs.put(data)
            raise RuntimeError
    assert not store.blobs.exists(ref)
    store.blobs.gc(grace=timedelta(0))
    assert not os.path.exists(os.path.join(store.directory, "blobs", ref.hash[:2], ref.hash))


def test_keep_history_releases_blob_references(store):
    c = store.collection("c", keep_history=1)
    old = store.blobs.put(b"v1")
    c.put({"img": old}, id="a")
    c.put({"img": store.blobs.put(b"v2")}, id="a")
    assert store.blobs.gc(grace=timedelta(0)) == 1
    assert not store.blobs.exists(old)


def test_memory_store_blobs(tmp_path):
    with kuradb.open(":memory:") as s:
        ref = s.blobs.put(os.urandom(INLINE_MAX * 2))
        assert len(s.blobs.get(ref)) == INLINE_MAX * 2
