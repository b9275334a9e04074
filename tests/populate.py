"""Stores filled for a test: the same contents whichever implementation holds them (contract and SQLite tests)."""
from __future__ import annotations

import os

import pytest

import kuradb


def audited(s: kuradb.Store) -> None:
    """Changes of every kind by several actors (the store's author: ann), and writes that were rolled back."""
    n = s.collection("notes")
    n.put({"t": 1}, id="a")
    n.put({"t": 2}, id="a", author="bob")
    n.put_many([("b", {}), ("c", {})], author="cy")
    s.blobs.put(b"bytes")
    n.create_index("t")
    n.delete("b")
    with pytest.raises(RuntimeError), s.transaction():
        n.put({"t": 3}, id="rolled-back")
        raise RuntimeError
    with s.transaction():
        n.put({"t": 4}, id="d")
        with pytest.raises(RuntimeError), s.transaction():
            n.put({"t": 5}, id="savepoint-undone")
            raise RuntimeError


def every_feature(s: kuradb.Store) -> None:
    """History, deletes, purge, erased history, blobs, indexes, a text index, a dropped collection."""
    n = s.collection("notes")
    n.put_many([("a", {"t": "hello world", "tags": ["x"]}), ("b", {"t": "bye", "n": 1})])
    n.update("a", {"t": "hello again"})
    n.delete("b")
    n.put({"t": "gone"}, id="p")
    n.purge("p")
    n.create_index("t", unique=True)
    n.create_text_index(["t"])
    small = s.blobs.put(b"tiny")
    big = s.blobs.put(os.urandom(100_000))
    n.put({"t": "pictures", "small": small, "big": [big]}, id="c")
    k = s.collection("kept", keep_history=2)
    for i in range(4):
        k.put({"v": i}, id="z")
    s.collection("dropped").put({"v": 1}, id="q")
    s.drop_collection("dropped")


def backup_source(s: kuradb.Store) -> None:
    """300 notes with history, a delete, a unique and a text index, a large and a small blob."""
    n = s.collection("notes")
    n.put_many([(f"k{i:03}", {"i": i, "tags": ["a", "b"][: i % 3]}) for i in range(300)])
    n.update("k001", {"i": -1})
    n.delete("k002")
    n.create_index("i", unique=True)
    n.create_text_index(["tags"])
    n.put({"img": s.blobs.put(os.urandom(150_000)), "thumb": s.blobs.put(b"small")}, id="pic")
