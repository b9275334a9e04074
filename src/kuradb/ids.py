"""Names on records: generation of time-ordered ids, and validation of ids, collection names, types, authors."""
from __future__ import annotations

import os
import re
import threading
import time

from .errors import ValidationError

MAX_ID_LENGTH = 512
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_COLLECTION_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def new_id() -> str:
    """A 26-character, time-ordered, unique id (ULID layout: 48-bit ms time, 80 random bits).

    Ids made in the same millisecond by one process increase monotonically, so
    sorting ids sorts by creation time within a process and by the clock across.
    """
    global _last_ms, _last_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
            if rand >= 1 << 80:  # 2^80 ids in one ms: move the clock on rather than wrap
                ms, rand = ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # top bit clear leaves room to count
        _last_ms, _last_rand = ms, rand
    n = (ms << 80) | rand
    return "".join(_CROCKFORD[(n >> shift) & 31] for shift in range(125, -1, -5))


def check_id(value: object, *, where: str = "id") -> str:
    if type(value) is not str:
        raise ValidationError(f"{where} must be a string, not {type(value).__name__}", path=where)
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise ValidationError(
            f"{where} must be 1 to {MAX_ID_LENGTH} characters, got {len(value)}", path=where)
    if _CONTROL_RE.search(value):
        raise ValidationError(f"{where} {value!r} contains a control character", path=where)
    if not value.isascii():
        _check_text(value, where)
    return value


def _check_text(value: str, where: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError as e:
        raise ValidationError(f"{where} {value!r} holds a lone surrogate ({value[e.start]!r} at {e.start}),"
                              " which is not Unicode text", path=where) from None


MAX_NAME_LENGTH = 256


def check_type(value: object, *, where: str = "type") -> str | None:
    """A record type (``put(type=...)``, ``_type`` in queries): None or a string of 1 to 256 characters."""
    if value is None:
        return None
    if type(value) is not str:
        raise ValidationError(f"{where} must be a string or None, not {type(value).__name__}", path=where,
                              hint=f"e.g. {where}='note'")
    if not 1 <= len(value) <= MAX_NAME_LENGTH or _CONTROL_RE.search(value):
        raise ValidationError(f"{where} must be 1 to {MAX_NAME_LENGTH} characters without control characters,"
                              f" not {value[:40]!r}", path=where)
    if not value.isascii():
        _check_text(value, where)
    return value


def check_author(value: object, *, where: str = "author") -> str | None:
    """An author (the actor recorded with a write): None or a string of 1 to 256 characters."""
    return check_type(value, where=where)


def check_version(value: object, where: str, *, required: bool = False) -> int | None:
    """A record version (``if_version=``, ``version=``): an int >= 0 (``if_version=0``: must not exist)."""
    if value is None and not required:
        return None
    if type(value) is not int or value < 0 or value > 2**62:
        raise ValidationError(f"{where} must be a version number (an int >= {1 if required else 0}),"
                              f" not {value!r}", path=where)
    if required and value < 1:
        raise ValidationError(f"{where} must be 1 or more, not {value}", path=where)
    return value


def check_collection_name(value: object) -> str:
    if type(value) is not str or not _COLLECTION_RE.fullmatch(value):
        raise ValidationError(
            f"collection name {value!r} is invalid", path="collection",
            hint="use 1 to 64 characters from A-Z a-z 0-9 _ . -")
    return value
