"""The array catalog: which content paths have ever held an array, per collection.

A path is written as its object keys, with array levels folded away: in
``{"items": [{"tags": ["a"]}]}`` the arrays are at ``items`` and ``items.tags``.
The compiler uses a path's direct, index-friendly SQL only when no prefix of it
is in the catalog; otherwise it fans out over array elements (MongoDB keeps a
"multikey" flag per index for the same reason).

The catalog is written in the transaction of the record that brings a new
array path and never shrinks (not on delete, purge or drop_collection). So a
process's cache of what it has already recorded is always a subset of the
table, and skipping a write for a cached path is always safe. Queries read the
table in the snapshot they run in. A path that once held an array only costs
speed afterwards, never correctness.
"""
from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

import orjson

from .syntax import is_index

if TYPE_CHECKING:
    from ..backend import Tx


def array_paths(content: dict[str, Any]) -> set[tuple[str, ...]]:
    """The folded paths of every array in a document."""
    found: set[tuple[str, ...]] = set()

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if type(value) is list:
            found.add(path)
            for item in value:
                if isinstance(item, (dict, list)):
                    walk(item, path)
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, (dict, list)):
                    walk(v, (*path, k))

    walk(content, ())
    return found


@functools.lru_cache(maxsize=4096)   # the same few paths are asked of the same catalogs by every query
def may_be_array(catalog: frozenset[tuple[str, ...]] | None, segments: tuple[str, ...]) -> bool:
    """Whether the value at a query path may be an array, given the catalog (None: unknown).

    A numeric part of a query path may be an array position, which the
    catalog's folded paths leave out, so both readings are checked.
    """
    if catalog is None:
        return True
    variants: list[tuple[str, ...]] = [()]
    for s in segments:
        variants = [(*v, s) for v in variants] + ([*variants] if is_index(s) else [])
    return any(v in catalog for v in variants)


def encode(path: tuple[str, ...]) -> str:
    return orjson.dumps(list(path)).decode()


class ArrayCatalog:
    """Per store: records new array paths inside write transactions (``tx.note_array_paths``)."""

    def __init__(self) -> None:
        self._recorded: dict[int, set[tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def note(self, tx: Tx, coll: int, paths: set[tuple[str, ...]]) -> None:
        known = self._recorded.get(coll, ())
        new = [p for p in paths if p not in known]
        if not new:
            return
        tx.note_array_paths(coll, [encode(p) for p in new])

        def remember() -> None:  # only once committed: a rollback must not leave it cached
            with self._lock:
                self._recorded.setdefault(coll, set()).update(new)

        tx.after_commit.append(remember)
