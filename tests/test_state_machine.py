"""A hypothesis state machine drives a Store against a plain-dict model of it."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from kuradb import errors
from kuradb.encoding import merge_patch

IDS = st.sampled_from(["a", "b", "c", "d/e"])
scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["x", "y", ""])
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.sampled_from(["p", "q", "r"]), c, max_size=3), max_leaves=6)
contents = st.dictionaries(st.sampled_from(["t", "u", "v", "w"]), values, max_size=4)
patches = st.dictionaries(st.sampled_from(["t", "u", "v", "w"]), values, max_size=3)


class Model:
    """id -> list of versions; a version is a content dict, or None for a deletion."""

    def __init__(self) -> None:
        self.versions: dict[str, list[dict | None]] = {}
        self.changes = 0

    def live(self, id: str) -> bool:
        return bool(self.versions.get(id)) and self.versions[id][-1] is not None

    def write(self, id: str, content: dict | None) -> None:
        self.versions.setdefault(id, []).append(content)
        self.changes += 1

    def copy(self) -> Model:
        m = Model()
        m.versions = {k: list(v) for k, v in self.versions.items()}
        m.changes = self.changes
        return m


_runs = itertools.count()


class StoreMachine(RuleBasedStateMachine):
    """Drives a fresh store of ``impl`` (the implementation under test) per run."""

    impl = None   # set by the test before hypothesis makes machines

    def __init__(self) -> None:
        super().__init__()
        self.name = f"sm{next(_runs)}"
        self.store = self.impl.open(self.name)
        self.model = Model()

    def teardown(self) -> None:
        self.impl.remove(self.name)

    @property
    def coll(self):
        return self.store["things"]

    # -- operations, applied to both the store and a model ---------------------------

    def _put(self, model: Model, id: str, content: dict) -> None:
        rec = self.coll.put(content, id=id)
        model.write(id, content)
        assert rec.version == len(model.versions[id])

    def _update(self, model: Model, id: str, patch: dict) -> None:
        if not model.live(id):
            with pytest.raises(errors.NotFound):
                self.coll.update(id, patch)
            return
        new = merge_patch(model.versions[id][-1], patch)
        assert self.coll.update(id, patch).content == new
        model.write(id, new)

    def _delete(self, model: Model, id: str, _: object = None) -> None:
        if not model.live(id):
            with pytest.raises(errors.NotFound):
                self.coll.delete(id)
            return
        assert self.coll.delete(id).deleted
        model.write(id, None)

    def _revert(self, model: Model, id: str, back: int) -> None:
        versions = model.versions.get(id, [])
        if not versions:
            return
        version = max(1, len(versions) - back)
        target = versions[version - 1]
        if target is None:
            with pytest.raises(errors.NotFound):
                self.coll.revert(id, version)
            return
        self.coll.revert(id, version)
        model.write(id, target)

    def _apply(self, model: Model, op: tuple) -> None:
        kind, id, arg = op
        {"put": self._put, "update": self._update, "delete": self._delete,
         "revert": self._revert}[kind](model, id, arg)

    @rule(id=IDS, content=contents)
    def put(self, id, content):
        self._put(self.model, id, content)

    @rule(id=IDS, patch=patches)
    def update(self, id, patch):
        self._update(self.model, id, patch)

    @rule(id=IDS)
    def delete(self, id):
        self._delete(self.model, id)

    @rule(id=IDS, back=st.integers(0, 3))
    def revert(self, id, back):
        self._revert(self.model, id, back)

    ops = st.lists(st.one_of(
        st.tuples(st.just("put"), IDS, contents), st.tuples(st.just("update"), IDS, patches),
        st.tuples(st.just("delete"), IDS, st.none()), st.tuples(st.just("revert"), IDS, st.integers(0, 2))),
        min_size=1, max_size=5)

    @rule(ops=ops)
    def transaction_rolled_back(self, ops):
        scratch = self.model.copy()
        with pytest.raises(_Abort):
            with self.store.transaction():
                for op in ops:
                    self._apply(scratch, op)
                raise _Abort
        # the model is unchanged: everything inside was undone

    @rule(ops=ops)
    def transaction_committed(self, ops):
        with self.store.transaction():
            for op in ops:
                self._apply(self.model, op)

    @rule(ops=ops, inner=ops)
    def savepoint_rolled_back(self, ops, inner):
        with self.store.transaction():
            for op in ops:
                self._apply(self.model, op)
            scratch = self.model.copy()
            with pytest.raises(_Abort):
                with self.store.transaction():
                    for op in inner:
                        self._apply(scratch, op)
                    raise _Abort

    @rule()
    def reopen(self):
        self.store.close()
        self.store = self.impl.open(self.name)

    @precondition(lambda self: any(self.model.versions.values()))
    @rule(id=IDS)
    def purge(self, id):
        if id not in self.model.versions:
            with pytest.raises(errors.NotFound):
                self.coll.purge(id)
            return
        self.coll.purge(id)
        del self.model.versions[id]
        self.model.changes += 1

    # -- what must always hold -------------------------------------------------------

    @invariant()
    def store_agrees_with_model(self):
        coll = self.coll
        for id in ("a", "b", "c", "d/e"):
            versions = self.model.versions.get(id)
            if not versions:
                assert coll.get(id, None) is None
                continue
            current = coll.get(id, None)
            if versions[-1] is None:
                assert current is None
            else:
                assert current is not None and current.content == versions[-1]
                assert current.version == len(versions)
            history = coll.history(id)
            assert [r.content for r in history] == versions
            assert [r.version for r in history] == list(range(1, len(versions) + 1))
        live = sorted(i for i in self.model.versions if self.model.live(i))
        assert list(coll) == live and len(coll) == len(live)
        assert self.store.position == self.model.changes
        assert [c.position for c in self.store.changes()] == list(range(1, self.model.changes + 1))


class _Abort(Exception):
    pass


def test_store_matches_model(impl):
    machine = type("StoreMachineOf" + impl.name.title(), (StoreMachine,), {"impl": impl})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=60, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture]))
