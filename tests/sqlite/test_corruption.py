"""Flipped bytes and truncated files: CorruptedData on read, never wrong data."""
from __future__ import annotations

import os
import shutil

import apsw
import pytest

import kuradb
from kuradb import errors
from kuradb.blobs import INLINE_MAX
from kuradb.encoding import encode_content

CONTENT = {"marker": "kuradb-corruption-marker", "n": 12345, "list": [1.5, True, None]}


def _jsonb(content):
    conn = apsw.Connection(":memory:")
    return conn.execute("SELECT jsonb(?)", (encode_content(content)[0].decode(),)).fetchone()[0]


@pytest.fixture
def pristine(tmp_path):
    """A closed store (WAL checkpointed into kura.db) holding CONTENT as notes/a, versions 1 and 2."""
    path = tmp_path / "pristine"
    with kuradb.open(path) as s:
        s["notes"].put({"old": True}, id="a")
        s["notes"].put(CONTENT, id="a")
        s["notes"].put({"other": 1}, id="b")
    assert not os.path.exists(path / "kura.db-wal")
    return path


def _offsets(db_file, needle):
    data = db_file.read_bytes()
    found, start = [], 0
    while (i := data.find(needle, start)) >= 0:
        found.append(i)
        start = i + 1
    return found


def _flip(path, offset, mask=0x01):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ mask]))


def _read_all(path):
    """Everything a reader could see of notes/a, as plain values."""
    with kuradb.open(path) as s:
        c = s["notes"]
        return (c.get("a").content, [r.content for r in c.history("a")], c.get("a", version=2).content)


def test_every_flipped_byte_in_a_record_is_caught(pristine, tmp_path):
    body = _jsonb(CONTENT)
    offsets = _offsets(pristine / "kura.db", body)
    assert len(offsets) == 1  # content is stored once: the version's row in the log
    expected = (CONTENT, [{"old": True}, CONTENT], CONTENT)
    caught = 0
    for base in offsets:
        for i in range(len(body)):
            trial = tmp_path / f"trial-{base}-{i}"
            shutil.copytree(pristine, trial)
            _flip(trial / "kura.db", base + i)
            try:
                got = _read_all(trial)
            except errors.CorruptedData:
                caught += 1
            else:
                assert got == expected, f"wrong data returned after flipping byte {i} of the copy at {base}"
            shutil.rmtree(trial)
    # every flip inside the content changes what the checksum covers
    assert caught == len(body)


def test_corrupted_record_names_the_record(pristine):
    base = _offsets(pristine / "kura.db", b"kuradb-corruption-marker")[0]
    for off in _offsets(pristine / "kura.db", b"kuradb-corruption-marker"):
        _flip(pristine / "kura.db", off + 3)
    with kuradb.open(pristine) as s:
        with pytest.raises(errors.CorruptedData, match="notes/a version 2") as info:
            s["notes"].get("a")
        assert info.value.code == "corrupted_data"
        assert s["notes"].get("b")["other"] == 1  # the rest of the store still reads
        assert base > 0
        # queries verify what they return, too
        with pytest.raises(errors.CorruptedData, match="notes/a version 2"):
            s["notes"].find()
        with pytest.raises(errors.CorruptedData, match="notes/a version 2"):
            list(s["notes"].scan(batch_size=1))
        assert [r.id for r in s["notes"].find({"other": 1})] == ["b"]


def test_flipped_blob_file_is_caught(store):
    data = os.urandom(INLINE_MAX * 3)
    ref = store.blobs.put(data)
    path = os.path.join(store.directory, "blobs", ref.hash[:2], ref.hash)
    _flip(path, len(data) // 2)
    with pytest.raises(errors.CorruptedData, match=ref.hash):
        store.blobs.get(ref)
    with pytest.raises(errors.CorruptedData):
        with store.blobs.open(ref) as f:
            while f.read(4096):
                pass


def test_truncated_and_missing_blob_files_are_caught(store):
    ref = store.blobs.put(os.urandom(INLINE_MAX * 2))
    path = os.path.join(store.directory, "blobs", ref.hash[:2], ref.hash)
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(errors.CorruptedData):
        store.blobs.get(ref)
    os.unlink(path)
    with pytest.raises(errors.CorruptedData, match="missing"):
        store.blobs.get(ref)


def test_flipped_inline_blob_is_caught(tmp_path):
    payload = b"inline-blob-payload-" * 20
    with kuradb.open(tmp_path) as s:
        ref = s.blobs.put(payload)
    for off in _offsets(tmp_path / "kura.db", payload):
        _flip(tmp_path / "kura.db", off + 7)
    with kuradb.open(tmp_path) as s:
        with pytest.raises(errors.CorruptedData, match="do not match"):
            s.blobs.get(ref)


def test_truncated_database_is_refused_or_caught(pristine):
    db = pristine / "kura.db"
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(errors.CorruptedData):
        _read_all(pristine)
