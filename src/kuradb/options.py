"""Collection options (``keep_history``, a JSON Schema): saved in the database, the one source of truth.

Every handle of a collection, in every process, reads the saved options inside
the transaction that writes (and in the snapshot that reads history), so a limit
set through one handle holds for all of them at once. ``store.collection(name,
keep_history=N)`` may raise a limit or set the first one; lowering it erases
history, so it is an explicit act: ``collection.configure(keep_history=N)``.

A pydantic model given as ``schema=`` is a Python class, not data: it is kept by
the handles of the Store it was given to and checked by them, in addition to any
saved JSON Schema.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import orjson

from . import errors
from .schemas import Validator, compile_schema

UNSET: Any = object()


@dataclass(frozen=True)
class Options:
    """A collection's saved options, parsed; ``validate`` is the compiled saved JSON Schema."""

    keep_history: int | None = None
    schema: dict[str, Any] | None = None
    validate: Validator | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in (("schema", self.schema), ("keep_history", self.keep_history)) if v is not None}


NONE = Options()
_parsed: dict[tuple[str, str], Options] = {}
_lock = threading.Lock()


def parse(collection: str, text: str | None) -> Options:
    """The options saved as ``text`` (the collections row's JSON; None: no row), compiled once per text."""
    if not text or text == "{}":
        return NONE
    key = (collection, text)
    found = _parsed.get(key)
    if found is None:
        raw = orjson.loads(text)
        schema = raw.get("schema")
        found = Options(raw.get("keep_history"), schema, compile_schema(schema, collection))
        with _lock:
            if len(_parsed) >= 1024:
                _parsed.clear()
            _parsed[key] = found
    return found


def check_keep_history(value: Any) -> int | None:
    if value is not None and (type(value) is not int or not 1 <= value <= 2**31):
        raise errors.ValidationError(f"keep_history must be a positive int or None, not {value!r}",
                                     path="keep_history")
    return value


def merge(collection: str, saved: Options, exists: bool, *, keep_history: Any = UNSET, schema: Any = UNSET,
          explicit: bool) -> Options:
    """The options after a change. Without ``explicit``, a change may not lower ``keep_history``
    (nor set a first limit on a collection that already exists, which keeps every version)."""
    keep = saved.keep_history
    if keep_history is not UNSET:
        keep_history = check_keep_history(keep_history)
        lowers = exists and keep_history is not None and (keep is None or keep_history < keep)
        if lowers and not explicit:
            was = "keeps every version" if keep is None else f"keeps the last {keep} versions"
            raise errors.ValidationError(
                f"collection {collection!r} {was}; keep_history={keep_history} would erase history",
                path="keep_history",
                hint=f"lower it on purpose: store.collection({collection!r}).configure(keep_history={keep_history})")
        if keep_history is not None or explicit:
            keep = keep_history
    saved_schema = saved.schema
    if schema is not UNSET and (isinstance(schema, dict) or (schema is None and explicit)):
        saved_schema = schema
    if (keep, saved_schema) == (saved.keep_history, saved.schema):
        return saved
    if saved_schema is not None:
        try:
            orjson.dumps(saved_schema)
        except TypeError as e:
            raise errors.ValidationError(f"schema for collection {collection!r} is not JSON ({e})", path="schema",
                                         hint="a JSON Schema is a dict of JSON values with string keys") from e
    return Options(keep, saved_schema, compile_schema(saved_schema, collection))
