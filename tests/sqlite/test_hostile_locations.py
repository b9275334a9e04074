"""kuradb.open given a hostile location and durability: a typed error or a store, and no other store changed.

A SQLite store's location is a path; relative ones land in the working directory,
which here is the test's own and also holds a store that must stay as it was.
"""
from __future__ import annotations

import pytest
from hostile import HOSTILE, ID, check, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kuradb


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_locations_give_typed_errors_and_change_nothing(tmp_path, monkeypatch, data):
    monkeypatch.chdir(tmp_path)
    with kuradb.open("store") as store:
        store["c"].put({"title": "a"}, id="a")
        location, durability = data.draw(ID, label="arg0"), data.draw(HOSTILE, label="arg1")
        before = snapshot(store)
        check(lambda: kuradb.open(location, durability=durability).close(), store, before)


def test_a_relative_location_is_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with kuradb.open("here", durability="full") as s:
        s["c"].put({}, id="x")
    assert (tmp_path / "here" / "kura.db").exists()
    with pytest.raises(kuradb.errors.ValidationError):
        kuradb.open("here", durability=["full"])
