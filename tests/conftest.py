from __future__ import annotations

import pytest

import kuradb


@pytest.fixture
def store(tmp_path):
    with kuradb.open(tmp_path / "store") as s:
        yield s


@pytest.fixture
def notes(store):
    return store.collection("notes")
