"""The audit trail: the change log, hash-chained.

Every change-log entry already says when, who (``author``), what (kind and
op), on which record and version, with the record's ``rev`` (which covers its
content checksum and its parent rev). Each entry also stores

    actor_hash = BLAKE2b-128(author)                    (NULL without an author)
    hash       = BLAKE2b-128(previous entry's hash + canonical JSON of
                 [position, at, kind, op, collection, id, version, rev, actor_hash])

written in the same statement as the entry, so an entry exists exactly when
its hash does. ``verify`` recomputes the chain: an edited entry, or one
removed or inserted before others, breaks it. The hash covers the actor's
digest rather than the name, so erasing a record (``purge``), which removes
the author's name from its entries, keeps the chain valid. A chain cannot by
itself show that its newest entries were cut off; compare ``store.position``
with one kept elsewhere (a backup manifest records it).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from hashlib import blake2b
from typing import Any

import orjson

from .records import from_us

GENESIS = bytes(16)  # the "previous hash" of the first entry
_BLAKE2B_128 = blake2b(digest_size=16)


@functools.lru_cache(maxsize=1024)  # a store writes with few authors; one digest each
def actor_digest(author: str | None) -> bytes | None:
    return None if author is None else blake2b(author.encode(), digest_size=16).digest()


def entry_hash(prev: bytes, position: int, at: int, kind: str, op: str, collection: str | None, id: str | None,
               version: int | None, rev: str | None, actor_hash: bytes | None) -> bytes:
    h = _BLAKE2B_128.copy()
    h.update(prev)
    h.update(orjson.dumps([position, at, kind, op, collection, id, version, rev,
                           None if actor_hash is None else actor_hash.hex()]))
    return h.digest()


@dataclass(frozen=True)
class AuditEntry:
    """One change: ``action`` is ``"<kind>.<op>"`` (``record.put``, ``blob.delete``, ``index.create``...).

    ``actor`` is None when no author was given, or after ``purge`` erased it
    (``actor_hash`` still proves who it was to someone who knows the name).
    """

    position: int
    at: datetime
    actor: str | None
    action: str
    collection: str | None
    id: str | None
    version: int | None
    rev: str | None
    actor_hash: str | None
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "at": self.at.isoformat()}


def entries(reader: Any, *, after: int, at_least: int, actor: str | None, limit: int) -> list[AuditEntry]:
    out = []
    for (position, at, author, kind, op, collection, id, version, rev, actor_hash, prev,
         h) in reader.audit(after, at_least, actor, limit, GENESIS):
        out.append(AuditEntry(position, from_us(at), author, f"{kind}.{op}", collection, id, version,
                              None if rev is None else f"{version}-{rev.hex()}",
                              None if actor_hash is None else actor_hash.hex(), prev.hex(), h.hex()))
    return out


class ChainCheck:
    """Recomputes the chain one entry at a time, oldest first (verify feeds it during its one log pass).

    Each broken link is one problem; the walk goes on from the stored hash.
    """

    def __init__(self, report: Any) -> None:
        self.report, self.prev = report, GENESIS

    def step(self, position: int, at: int, kind: str, op: str, collection: str | None, id: str | None,
             version: int | None, rev: str | None, author: str | None, actor: bytes | None, stored: Any) -> None:
        if author is not None and actor != actor_digest(author):
            self.report.add(f"audit: change log position {position}: its actor was edited")
        if stored != entry_hash(self.prev, position, at, kind, op, collection, id, version, rev, actor):
            self.report.add(f"audit: change log position {position}: the hash chain breaks here (this entry"
                            " was edited, or one before it removed or inserted)")
        self.prev = stored if isinstance(stored, bytes) else GENESIS
