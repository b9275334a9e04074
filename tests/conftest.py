from __future__ import annotations

import os
import sys

import pytest

import kuradb

sys.path.insert(0, os.path.dirname(__file__))  # tests import their helpers (reference.py) by name


@pytest.fixture
def store(tmp_path):
    with kuradb.open(tmp_path / "store") as s:
        yield s


@pytest.fixture
def notes(store):
    return store.collection("notes")
