"""Record and Change: the immutable values that reads and the change log return."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import blake2b
from operator import attrgetter
from typing import Any

from orjson import loads

_UTC = UTC


_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)


def to_us(value: datetime) -> int:
    """A timezone-aware datetime -> microseconds since the epoch, exactly (no float timestamp)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """Microseconds since the epoch -> timezone-aware UTC datetime."""
    return datetime.fromtimestamp(us / 1_000_000, tz=_UTC)


class Record(Mapping[str, Any]):
    """One version of a document. Immutable; content is decoded on first access.

    A read-only Mapping over its content: ``rec["title"]``, ``"title" in rec``,
    ``dict(rec)``, ``rec.keys()``. A tombstone is an empty mapping. A Record is
    always true (``if rec:``), whatever its content; two Records are equal when
    they are the same version (collection, id and rev).

    ``rev`` is ``"{version}-{digest}"`` with the digest over the parent rev and
    the content; ``checksum`` covers the canonical encoding of the content.
    A deleted record (a tombstone) has ``deleted=True`` and ``content=None``.
    """

    # Read-only properties over private slots: construction is plain slot stores
    # (a Record is made on every read and write), assignment raises AttributeError.
    __slots__ = ("_collection", "_id", "_type", "_version", "_rev", "_checksum", "_author",
                 "_deleted", "_text", "_content", "_created_us", "_modified_us")

    collection: str = property(attrgetter("_collection"))  # type: ignore[assignment]
    id: str = property(attrgetter("_id"))  # type: ignore[assignment]
    type: str | None = property(attrgetter("_type"))  # type: ignore[assignment]
    version: int = property(attrgetter("_version"))  # type: ignore[assignment]
    author: str | None = property(attrgetter("_author"))  # type: ignore[assignment]
    deleted: bool = property(attrgetter("_deleted"))  # type: ignore[assignment]

    def __init__(self, collection: str, id: str, type: str | None, version: int, rev: bytes,
                 checksum: bytes | None, author: str | None, deleted: bool,
                 text: str | bytes | None, created_us: int, modified_us: int) -> None:
        self._collection = collection
        self._id = id
        self._type = type
        self._version = version
        self._rev = rev
        self._checksum = checksum
        self._author = author
        self._deleted = deleted
        self._text = text
        self._content = None
        self._created_us = created_us
        self._modified_us = modified_us

    @property
    def rev(self) -> str:
        """``"{version}-{digest}"``: the digest (hex) covers the parent rev and the content."""
        return f"{self._version}-{self._rev.hex()}"

    @property
    def checksum(self) -> str | None:
        """BLAKE2b-128 (hex) of the canonical encoding of the content; None for a tombstone."""
        return None if self._checksum is None else self._checksum.hex()

    @classmethod
    def partial(cls, collection: str, id: str, type: str | None, version: int, rev: bytes,
                checksum: bytes | None, author: str | None, content: dict[str, Any],
                created_us: int, modified_us: int) -> Record:
        """A record whose content holds only the fields a query selected (``checksum`` is the full one's)."""
        rec = cls(collection, id, type, version, rev, checksum, author, False, None, created_us, modified_us)
        rec._content = content  # type: ignore[assignment]
        return rec

    @property
    def content(self) -> dict[str, Any] | None:
        c = self._content
        if c is None and self._text is not None:
            c = self._content = loads(self._text)
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

    def __contains__(self, key: object) -> bool:
        content = self.content
        return content is not None and key in content

    def __iter__(self) -> Iterator[str]:
        return iter(self.content or ())

    def __len__(self) -> int:
        return len(self.content or ())

    def __bool__(self) -> bool:
        return True

    def get(self, key: str, default: Any = None) -> Any:
        content = self.content
        return default if content is None else content.get(key, default)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (self._collection, self._id, self._version, self._rev) == (
            other._collection, other._id, other._version, other._rev)

    def __hash__(self) -> int:
        return hash((self._collection, self._id, self._rev))

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


def corrupted(collection: str, id: str, version: int) -> Exception:
    from .errors import CorruptedData

    return CorruptedData(f"{collection}/{id} version {version}: content does not match its checksum",
                         hint="run verify and restore from a backup")


def live_record(collection: str, id: str, row: tuple[Any, ...]) -> Record:
    """The Record of a HEAD row (kuradb/backend.py) of a live record, its content checked."""
    version, rev, type_, created, modified, author, deleted, ck, text = row[:9]
    if text is not None and blake2b(text.encode(), digest_size=16).digest() != ck:
        raise corrupted(collection, id, version)
    return Record(collection, id, type_, version, rev, ck, author, bool(deleted), text, created, modified)


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log. ``kind`` is "record", "blob", "collection" or "index"."""

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
