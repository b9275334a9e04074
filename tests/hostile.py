"""Values a careless or malicious caller might pass (hypothesis strategies), for the hostile-input tests."""
from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

import kuradb
from kuradb import errors


def _deep(n: int, make: Any) -> Any:
    v: Any = 1
    for _ in range(n):
        v = make(v)
    return v


ATOMS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**62, max_value=2**70),
    st.integers(max_value=-1), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0]),
    st.text(max_size=20), st.text(alphabet=st.characters(blacklist_categories=()), max_size=10),
    st.sampled_from(["", "\ud800", "a\x00b", "\x7f", "$gt", "_id", "a.b", "..", "-", "x" * 600, "é", "\udfff"]),
    st.binary(max_size=10), st.builds(object), st.sampled_from([(1, 2), {1, 2}, frozenset(), b"", bytearray(b"x")]),
    st.sampled_from([_deep(150, lambda v: {"a": v}), _deep(150, lambda v: [v]), _deep(120, lambda v: {"$and": [v]})]),
)
HOSTILE = st.recursive(ATOMS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=5), st.integers(), st.none()), inner,
                                                 max_size=4),
    st.dictionaries(st.sampled_from(["$eq", "$gt", "$in", "$regex", "$or", "$and", "$not", "$size", "$exists",
                                     "$group", "$match", "$sort", "_id", "$sum", "$blob"]), inner, max_size=3)),
    max_leaves=12)
ID = st.one_of(HOSTILE, st.sampled_from(["a", "b", "gone"]))


def snapshot(store: kuradb.Store) -> Any:
    """Everything a caller can see: the log position, every record's versions, every blob."""
    state = {"position": store.position, "collections": store.collections()}
    for name in store.collections():
        coll = store.collection(name)
        state[name] = {id: [(r.version, r.content) for r in coll.history(id)] for id in coll}
        state[name + "/indexes"] = [i.to_dict() for i in coll.indexes()]
    state["blobs"] = sorted((c.id, c.op) for c in store.changes() if c.kind == "blob")
    return state


def check(call: Any, store: kuradb.Store, before: Any) -> None:
    """Run ``call``: it may succeed, or raise a typed KuraError (not the base) and leave ``store`` as it was."""
    try:
        call()
    except errors.KuraError as e:
        assert type(e) is not errors.KuraError, f"an unclassified error: {e!r}"
        assert snapshot(store) == before, f"a refused call ({e!r}) changed the store"
    except RecursionError as e:  # pragma: no cover - the point of the test
        raise AssertionError("RecursionError escaped") from e
