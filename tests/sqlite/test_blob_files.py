"""A SQLite store's blob files: blobs over INLINE_MAX are files under blobs/ named by their hash, written before
the commit and deleted only after it; a damaged file is caught; :memory: and encrypted stores keep theirs too."""
from __future__ import annotations

import io
import os
from datetime import timedelta

import pytest
from shared import check_seeks

import kuradb
from kuradb import errors
from kuradb.blobs import INLINE_MAX


def _file(store, ref):
    return os.path.join(store.directory, "blobs", ref.hash[:2], ref.hash)


def test_a_large_blob_is_one_file_named_by_its_hash_and_no_upload_is_left_behind(store, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 7)
    src = tmp_path / "asset.bin"
    src.write_bytes(data)
    ref = store.blobs.put(src)
    assert os.path.getsize(_file(store, ref)) == len(data)
    assert not os.listdir(os.path.join(store.directory, "blobs", "tmp"))


def test_large_bytes_become_a_file(store):
    ref = store.blobs.put(b"y" * (INLINE_MAX + 1))
    assert os.path.exists(_file(store, ref))
    assert store.blobs.get(ref) == b"y" * (INLINE_MAX + 1)


def test_small_blob_stays_inline(store):
    ref = store.blobs.put(b"x" * INLINE_MAX)
    assert not os.path.exists(_file(store, ref))
    assert store.blobs.get(ref) == b"x" * INLINE_MAX


def test_gc_removes_the_files_of_unreferenced_blobs_only(store):
    kept = store.blobs.put(os.urandom(INLINE_MAX + 10))
    loose = store.blobs.put(os.urandom(INLINE_MAX + 10))
    store["c"].put({"img": kept}, id="a")
    assert store.blobs.gc(grace=timedelta(0)) == 1
    assert os.path.exists(_file(store, kept))
    assert not os.path.exists(_file(store, loose))


def test_gc_deletes_files_only_after_commit(store):
    ref = store.blobs.put(os.urandom(INLINE_MAX + 1))
    path = _file(store, ref)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.blobs.gc(grace=timedelta(0))
            raise RuntimeError("roll back the gc")
    assert os.path.exists(path) and store.blobs.get(ref)


def test_rolled_back_put_leaves_a_file_that_gc_removes(store):
    data = os.urandom(INLINE_MAX + 1)
    with pytest.raises(RuntimeError):
        with store.transaction():
            ref = store.blobs.put(data)
            raise RuntimeError
    assert not store.blobs.exists(ref)
    store.blobs.gc(grace=timedelta(0))
    assert not os.path.exists(_file(store, ref))


def test_memory_store_blobs(tmp_path):
    with kuradb.open(":memory:") as s:
        ref = s.blobs.put(os.urandom(INLINE_MAX * 2))
        assert len(s.blobs.get(ref)) == INLINE_MAX * 2


def test_encrypted_blob_streams_are_seekable(tmp_path):
    pytest.importorskip("cryptography")
    data = os.urandom(2 * (1 << 20) + 123)       # three sealed chunks
    with kuradb.open(tmp_path / "s", encryption_key=bytes(range(32))) as s:
        ref = s.blobs.put(data)
        with s.blobs.open(ref) as f:
            check_seeks(f, data)
        exact = os.urandom(1 << 20)              # exactly one full chunk: the end is a chunk boundary
        with s.blobs.open(s.blobs.put(exact)) as f:
            f.seek(0, io.SEEK_END)
            assert f.read() == b"" and f.tell() == 1 << 20
            f.seek(1 << 19)
            assert f.read() == exact[1 << 19:]


def test_a_seek_into_a_damaged_blob_file_raises_corrupted_data(store):
    data = os.urandom(INLINE_MAX * 3)
    ref = store.blobs.put(data)
    path = _file(store, ref)
    with open(path, "r+b") as f:
        f.seek(len(data) - 5)
        f.write(b"XXXXX")
    with store.blobs.open(ref) as f:
        with pytest.raises(errors.CorruptedData, match="does not match its hash"):
            f.seek(1000)
