"""Opening stores: options, read-only handles, create=False, several processes making one store.

Where a store lives and what may already be there (directories, files, schema
versions) is the SQLite backend's: tests/sqlite/test_open_files.py.
"""
from __future__ import annotations

import pytest

import kuradb
from kuradb import errors


@pytest.mark.parametrize("durability", ["full", "normal", "off"])
def test_durability_modes_open_and_persist(open_store, durability):
    with open_store("s", durability=durability) as s:
        s["c"].put({"a": 1}, id="x")
        assert s.durability == durability
    with open_store("s") as s:
        assert s["c"].get("x")["a"] == 1


def test_unknown_durability_is_rejected(open_store):
    with pytest.raises(errors.ValidationError, match="durability must be one of"):
        open_store("s", durability="sometimes")


def test_read_only_store_reads_but_refuses_writes(open_store):
    with open_store("s") as s:
        s["c"].put({"a": 1}, id="x")
    with open_store("s", read_only=True) as s:
        assert s["c"].get("x")["a"] == 1
        with pytest.raises(errors.ReadOnly):
            s["c"].put({"a": 2}, id="x")
        with pytest.raises(errors.ReadOnly):
            s.blobs.put(b"x")
    with pytest.raises(errors.NotFound, match="no kuradb store"):
        open_store("absent", read_only=True)


def test_a_cache_option_that_is_not_one_says_so(open_store):
    with pytest.raises(errors.ValidationError, match="cache must be"):
        open_store("s", cache="fast")


def test_unavailable_backends_say_so():
    for location in ("http://localhost:8750", "https://localhost:8750"):
        with pytest.raises(errors.KuraError, match="not available"):
            kuradb.open(location)


def test_public_names():
    assert set(kuradb.__all__) >= {"open", "Store", "Collection", "Record", "BlobRef", "Change",
                                   "Repository", "errors"}
    for name in kuradb.__all__:
        assert hasattr(kuradb, name)


def test_create_false_never_makes_a_store(open_store):
    with pytest.raises(errors.NotFound):
        open_store("missing", create=False)
    with pytest.raises(errors.NotFound):      # the refused open made nothing a second one could find
        open_store("missing", create=False)


def test_processes_racing_to_create_one_store_share_it(impl, open_store):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        pool.map(_put_one, [(impl.location("race"), f"p{i}") for i in range(8)])
    with open_store("race") as s:
        assert sorted(s["c"]) == [f"p{i}" for i in range(8)]
        assert s.verify().ok


def _put_one(args):
    location, id = args
    with kuradb.open(location) as s:        # a child process, given the location of the test's store
        s["c"].put({"by": id}, id=id)


# -- open() arguments are checked, typed (issue #13 item 10) ------------------------------------


BAD_OPEN_ARGUMENTS = [
    ({"timeout": "x"}, "timeout"), ({"timeout": -1}, "timeout"), ({"durability": "fast"}, "durability"),
    ({"read_only": "yes"}, "read_only"), ({"author": 5}, "author"), ({"max_document_size": 0}, "max_document_size"),
    ({"create": "no"}, "create"), ({"cache": "big"}, "cache"),
]


@pytest.mark.parametrize("kwargs, path", BAD_OPEN_ARGUMENTS)
def test_bad_open_arguments_raise_validation_error(open_store, kwargs, path):
    with pytest.raises(errors.ValidationError) as e:
        open_store("s", **kwargs)
    assert e.value.path == path
    with pytest.raises(errors.NotFound):      # nothing was made
        open_store("s", create=False)


@pytest.mark.parametrize("location", [None, 5, b"", ""])
def test_a_location_that_is_not_a_path_raises_validation_error(location):
    with pytest.raises(errors.ValidationError) as e:
        kuradb.open(location)
    assert e.value.path == "location"
