"""What the cache accepts as a key, a time to live, a priority, tags and a size: each refusal a ValidationError."""
from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from .. import errors
from .memory import PRIORITIES

MAX_KEY = 1024


def check_key(key: Any) -> str:
    if type(key) is not str:
        raise errors.ValidationError(f"cache keys are str, not {type(key).__name__}", path="key")
    if not key or len(key) > MAX_KEY:
        raise errors.ValidationError(f"cache keys are 1 to {MAX_KEY} characters, not {len(key)}", path="key")
    if key.startswith("!"):
        raise errors.ValidationError(f"cache key {key!r} starts with '!', which is reserved", path="key")
    return key


def expires_at(ttl: float | None, where: str = "ttl") -> float:
    if ttl is None:
        return 0.0
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0:
        raise errors.ValidationError(f"{where} must be a positive number of seconds or None, not {ttl!r}",
                                     path=where)
    return time.time() + ttl


def priority_of(priority: str) -> int:
    try:
        return PRIORITIES[priority]
    except (KeyError, TypeError):
        raise errors.ValidationError(f"priority must be 'low', 'normal' or 'high', not {priority!r}",
                                     path="priority") from None


def tags_of(tags: Iterable[str]) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise errors.ValidationError("tags must be a list of str, not a str", path="tags")
    out = tuple(tags)
    for t in out:
        if type(t) is not str or not t or "\x1f" in t:
            raise errors.ValidationError(f"each tag must be a non-empty str, not {t!r}", path="tags")
    return out


MAX_ITEMS = 100_000_000     # per memory tier: more Python objects than one process holds well
MAX_BYTES = 1 << 50


def positive(name: str, value: Any, *, zero: bool = False, none: bool = False) -> None:
    if value is None and none:
        return
    most = MAX_ITEMS if name.endswith("_items") else MAX_BYTES
    if isinstance(value, bool) or not isinstance(value, int) or not (0 if zero else 1) <= value <= most:
        raise errors.ValidationError(f"{name} must be an integer from {0 if zero else 1} to {most:,},"
                                     f" not {value!r}", path=name)
