"""Record and Change: the immutable values that reads and the change log return."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .encoding import decode

_UTC = timezone.utc


def from_us(us: int) -> datetime:
    """Microseconds since the epoch -> timezone-aware UTC datetime."""
    return datetime.fromtimestamp(us / 1_000_000, tz=_UTC)


class Record:
    """One version of a document. Immutable; content is decoded on first access.

    ``rev`` is ``"{version}-{digest}"`` with the digest over the parent rev and
    the content; ``checksum`` covers the canonical encoding of the content.
    A deleted record (a tombstone) has ``deleted=True`` and ``content=None``.
    """

    __slots__ = ("collection", "id", "type", "version", "rev", "checksum", "author", "deleted",
                 "_text", "_content", "_created_us", "_modified_us")

    collection: str
    id: str
    type: str | None
    version: int
    rev: str
    checksum: str | None
    author: str | None
    deleted: bool

    def __init__(self, collection: str, id: str, type: str | None, version: int, rev: str,
                 checksum: str | None, author: str | None, deleted: bool,
                 text: str | bytes | None, created_us: int, modified_us: int,
                 content: Any = None) -> None:
        s = object.__setattr__
        s(self, "collection", collection)
        s(self, "id", id)
        s(self, "type", type)
        s(self, "version", version)
        s(self, "rev", rev)
        s(self, "checksum", checksum)
        s(self, "author", author)
        s(self, "deleted", deleted)
        s(self, "_text", text)
        s(self, "_content", content)
        s(self, "_created_us", created_us)
        s(self, "_modified_us", modified_us)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Record is immutable; write a new version with put() or update()")

    @property
    def content(self) -> dict[str, Any] | None:
        c = self._content
        if c is None and self._text is not None:
            c = decode(self._text)
            object.__setattr__(self, "_content", c)
        return c

    @property
    def created(self) -> datetime:
        return from_us(self._created_us)

    @property
    def modified(self) -> datetime:
        return from_us(self._modified_us)

    def __getitem__(self, key: str) -> Any:
        content = self.content
        if content is None:
            raise KeyError(key)
        return content[key]

    def get(self, key: str, default: Any = None) -> Any:
        content = self.content
        return default if content is None else content.get(key, default)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (self.collection, self.id, self.rev) == (other.collection, other.id, other.rev)

    def __hash__(self) -> int:
        return hash((self.collection, self.id, self.rev))

    def __repr__(self) -> str:
        state = " deleted" if self.deleted else ""
        return f"<Record {self.collection}/{self.id} v{self.version}{state} rev={self.rev[:12]}…>"

    def to_dict(self) -> dict[str, Any]:
        """Envelope and content as plain JSON-ready values (times as ISO 8601 strings)."""
        return {
            "collection": self.collection, "id": self.id, "type": self.type,
            "version": self.version, "rev": self.rev, "checksum": self.checksum,
            "created": self.created.isoformat(), "modified": self.modified.isoformat(),
            "author": self.author, "deleted": self.deleted, "content": self.content,
        }


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log. ``kind`` is "record", "blob" or "collection"."""

    position: int
    kind: str
    collection: str | None
    id: str | None
    version: int | None
    rev: str | None
    op: str
    at: datetime
    author: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "kind": self.kind, "collection": self.collection,
                "id": self.id, "version": self.version, "rev": self.rev, "op": self.op,
                "at": self.at.isoformat(), "author": self.author}
