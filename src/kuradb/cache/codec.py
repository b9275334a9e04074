"""Values to bytes and back for the tiers that leave the process (disk, archive, Redis).

One tag byte, then the payload: ``b`` bytes and ``s`` str pass through, ``j`` is
JSON (orjson: dict, list, int, float, bool, None; tuples come back as lists),
``p`` is pickle. Pickle is written and read only by a cache created with
``serializer="pickle"``: a shared Redis or a cache directory someone else can
write must not become a way to run code in this process, so a cache that did not
opt in treats a pickled value as a miss (counted as ``rejected``).
"""
from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import orjson

from .. import errors

SERIALIZERS = ("json", "pickle")


class Rejected(Exception):
    """A stored value this codec will not decode (pickle without opt-in, unknown tag)."""


class Codec:
    __slots__ = ("pickle", "_dumps", "_loads")

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

    def encode(self, key: str, value: Any) -> bytes:
        if type(value) is bytes:
            return b"b" + value
        if type(value) is str:
            return b"s" + value.encode()
        if self._dumps is not None:
            return b"c" + self._dumps(value)
        if self.pickle:
            return b"p" + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            return b"j" + orjson.dumps(value)
        except TypeError as e:
            raise errors.ValidationError(
                f"cache value for {key!r} cannot be stored as JSON: {e}", path=key,
                hint="store bytes, str or JSON-shaped values, or create the cache with serializer='pickle' "
                     "if every process sharing it is trusted") from e

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
