"""Values to bytes and back for the tiers that leave the process (disk, archive, Redis).

One tag byte, then the payload: ``b`` bytes and ``s`` str pass through, ``j`` is
JSON (orjson: dict, list, int, float, bool, None; tuples come back as lists),
``p`` is pickle. Pickle is written and read only by a cache created with
``serializer="pickle"``: a shared Redis or a cache directory someone else can
write must not become a way to run code in this process, so a cache that did not
opt in treats a pickled value as a miss (counted as ``rejected``).

An ``int`` in JSON's range is written as JSON whatever the serializer, so that
``incr`` can add to it where it is stored (a Redis script, one SQLite
transaction) without decoding anyone's pickles. JSON has no NaN or infinity
(orjson would write ``null``): a JSON cache refuses them anywhere in a value,
in every tier, memory included (``check_finite``).
"""
from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any

import orjson

from .. import errors

SERIALIZERS = ("json", "pickle")
INT_RANGE = (-(1 << 63), (1 << 64) - 1)   # what orjson reads and writes as an integer


class Rejected(Exception):
    """A stored value this codec will not decode (pickle without opt-in, unknown tag)."""


_CONTAINERS = (dict, list, tuple)


def _none(_: Any) -> None:
    return None


def _nonfinite(key: str, where: str, value: float) -> errors.ValidationError:
    return errors.ValidationError(
        f"cache value for {key!r} holds {value!r}{' at ' + where if where else ''}, which JSON cannot hold",
        path=key + where, hint="store None (or a str) instead of NaN or infinity, or create the cache with "
                               "serializer='pickle'")


def check_finite(key: str, value: Any, encoded: bytes | None = None) -> None:
    """ValidationError naming the place if a float in ``value`` (through dicts, lists, tuples) is NaN or ±inf.

    orjson writes NaN and ±inf as ``null``, so JSON text without ``null`` holds none of them:
    only values whose JSON has a ``null`` (or that are not JSON at all) are walked.
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _nonfinite(key, "", value)
        return
    if not isinstance(value, _CONTAINERS):
        return
    if encoded is None:
        try:    # anything JSON has no type for counts as null, and sends the value to the walk
            encoded = orjson.dumps(value, default=_none, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:   # deeper than orjson goes, a cycle, keys it cannot write
            encoded = b"null"
    if b"null" not in encoded or _finite(value):
        return
    _locate(key, value)


def _finite(value: Any) -> bool:
    isfinite, containers = math.isfinite, _CONTAINERS
    stack = [value]
    seen = {id(value)}      # a memory tier may hold a structure with cycles; visit each container once
    while stack:
        node = stack.pop()
        for v in node.values() if isinstance(node, dict) else node:
            if isinstance(v, float):
                if not isfinite(v):
                    return False
            elif isinstance(v, containers) and id(v) not in seen:
                seen.add(id(v))
                stack.append(v)
    return True


def _locate(key: str, value: Any) -> None:
    """The walk again, slower, keeping the path, to name where the bad float is."""
    stack: list[tuple[Any, str]] = [(value, "")]
    seen = {id(value)}
    while stack:
        node, where = stack.pop()
        for k, v in node.items() if isinstance(node, dict) else enumerate(node):
            if isinstance(v, float):
                if not math.isfinite(v):
                    raise _nonfinite(key, f"{where}[{k!r}]", v)
            elif isinstance(v, _CONTAINERS) and id(v) not in seen:
                seen.add(id(v))
                stack.append((v, f"{where}[{k!r}]"))


class Codec:
    __slots__ = ("pickle", "json", "_dumps", "_loads")

    def __init__(self, serializer: str | tuple[Callable[[Any], bytes], Callable[[bytes], Any]] = "json") -> None:
        self._dumps: Callable[[Any], bytes] | None = None
        self._loads: Callable[[bytes], Any] | None = None
        if isinstance(serializer, tuple):
            if len(serializer) != 2 or not all(callable(f) for f in serializer):
                raise errors.ValidationError("serializer must be 'json', 'pickle' or a (dumps, loads) pair",
                                             path="serializer")
            self._dumps, self._loads = serializer
            self.pickle = False
        elif serializer in SERIALIZERS:
            self.pickle = serializer == "pickle"
        else:
            raise errors.ValidationError(f"serializer must be 'json', 'pickle' or a (dumps, loads) pair, "
                                         f"not {serializer!r}", path="serializer")
        self.json = self._dumps is None and not self.pickle

    def encode(self, key: str, value: Any) -> bytes:
        if type(value) is bytes:
            return b"b" + value
        if type(value) is str:
            return b"s" + value.encode()
        if type(value) is int and INT_RANGE[0] <= value <= INT_RANGE[1]:
            return b"j" + str(value).encode()
        if self._dumps is not None:
            return b"c" + self._dumps(value)
        if self.pickle:
            try:
                return b"p" + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except (pickle.PickleError, TypeError, AttributeError) as e:
                raise errors.ValidationError(f"cache value for {key!r} cannot be pickled: {e}", path=key) from e
        try:
            data = orjson.dumps(value)
        except TypeError as e:
            raise errors.ValidationError(
                f"cache value for {key!r} cannot be stored as JSON: {e}", path=key,
                hint="store bytes, str or JSON-shaped values, or create the cache with serializer='pickle' "
                     "if every process sharing it is trusted") from e
        check_finite(key, value, data)
        return b"j" + data

    def decode(self, data: bytes) -> Any:
        tag, body = data[:1], data[1:]
        if tag == b"b":
            return bytes(body)
        if tag == b"s":
            return bytes(body).decode()
        if tag == b"j":
            return orjson.loads(body)
        if tag == b"c" and self._loads is not None:
            return self._loads(bytes(body))
        if tag == b"p" and self.pickle:
            return pickle.loads(body)
        raise Rejected(tag.decode("latin-1"))
