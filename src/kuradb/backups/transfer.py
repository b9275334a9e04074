"""Moving a store's whole history into a new store of any backend: ``kuradb.copy`` and snapshot copies.

``copy(src, dest)`` reads one snapshot of ``src`` (``Backend.source()``: its
change log with content, erasures, blobs, index definitions) and replays it
into ``dest``, a new or empty store of either backend (kuradb/backups/replay.py):
every entry keeps its position, time, rev and audit hash, so the copy holds
every record, every version of history, every blob, index definition,
collection option and audit entry of the source, and its verify passes with
the source's audit head. Blob content goes where ``dest`` keeps it: in the
database (PostgreSQL, and a SQLite store's small blobs) or as files under
``DIR/blobs`` (a SQLite store's large ones, sealed with its blob key when it
is encrypted). On any failure nothing of ``dest`` is left (a directory or a
PostgreSQL schema the copy made is removed again).

``database_file(backend, raw)`` is a full backup of an engine whose files are
not kuradb's backup format (PostgreSQL): the snapshot replayed into a fresh
SQLite store, whose ``kura.db`` becomes the backup's database.
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import errors
from ..backends import open_backend, shown
from ..backends.sqlite.copy import Copied
from . import replay

if TYPE_CHECKING:
    from ..store import Store

_CHUNK = 1 << 20


def is_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def database_file(backend: Any, raw: str, file_blob_limit: int | None) -> Copied:
    """Write ``raw``, a SQLite store's database holding one snapshot of ``backend``'s store. A blob larger
    than ``file_blob_limit`` is kept as a file row (data NULL): the backup writes its file."""
    work = raw + ".store"
    os.makedirs(work)
    try:
        target = open_backend(work, key=backend.key, durability="off", create=True)
        try:
            source = backend.source()
            try:
                position, head, at = source.end()
                place = None if file_blob_limit is None else _files_above(file_blob_limit)
                replay.replay(target, source, 0, position, place)
            finally:
                source.close()
        finally:
            target.close()
        os.replace(os.path.join(work, "kura.db"), raw)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Copied(position, head, at, [])


def _files_above(limit: int) -> replay.Place:
    def place(h: str, size: int, data: bytes | None) -> bytes | None:
        return None if size > limit else data
    return place


def copy(src: str | os.PathLike[str] | Store, dest: str | os.PathLike[str], *, encryption_key: Any = None,
         dest_encryption_key: Any = None, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Copy the store ``src`` (a location or an open Store) into ``dest``, a new or empty directory or
    ``postgresql://…?schema=`` URL, with its whole history; returns what was copied.

    ``encryption_key`` opens ``src``; ``dest_encryption_key`` (default: the same) encrypts a SQLite
    ``dest`` at rest (on PostgreSQL, encryption at rest is the server's: the key seals the store's backups).
    """
    from ..store import Store
    from ..store import open as open_store

    started = time.monotonic()
    dest = os.fspath(dest)
    dest_key = encryption_key if dest_encryption_key is None else dest_encryption_key
    own = not isinstance(src, Store)
    source_store = src if isinstance(src, Store) else open_store(os.fspath(src), encryption_key=encryption_key,
                                                                 read_only=True)
    try:
        if _same(source_store.directory, dest):
            raise errors.ValidationError("a store cannot be copied onto itself", path="dest")
        target, undo = claim(dest, dest_key, "copy")
        try:
            result = fill(source_store, target, progress)
            target.close()
        except BaseException:
            target.close()
            undo()
            raise
    finally:
        if own:
            source_store.close()
    return {"source": shown(source_store.directory), "dest": shown(dest), **result,
            "seconds": round(time.monotonic() - started, 3)}


def _same(a: str, b: str) -> bool:
    if is_url(a) or is_url(b):
        return a == b
    return os.path.abspath(a) == os.path.abspath(b)


def claim(location: str, key: Any, what: str) -> tuple[Store, Callable[[], None]]:
    """Open the new or empty store at ``location`` for a copy or restore into it, and what removes it again.

    A store that holds anything is refused (RestoreError for a restore, ValidationError for a copy)."""
    from ..store import open as open_store

    refuse = errors.RestoreError if what == "restore" else errors.ValidationError
    does = {"copy": "copies", "restore": "restores"}[what]
    server = is_url(location)
    if not server and os.path.exists(location) and (not os.path.isdir(location) or (
            os.listdir(location) and not os.path.exists(os.path.join(location, "kura.db")))):
        raise refuse(f"{location!r} exists and is not empty; kuradb {does} only into a new place")
    try:
        existing = open_store(location, encryption_key=key, create=False)
    except errors.NotFound:
        made = not server and not os.path.exists(location)
        store = open_store(location, encryption_key=key, create=True)

        def remove() -> None:
            if server:
                store.backend.drop()   # type: ignore[attr-defined]   # the schema this made, and all in it
                return
            shutil.rmtree(location, ignore_errors=True)
            if not made:
                os.makedirs(location, exist_ok=True)
        return store, remove
    if existing.position or existing.collections():
        existing.close()
        raise refuse(f"{shown(location)} holds a store with data; kuradb {does} only into a new or empty store",
                     hint="choose a new ?schema=" if server else "choose a new directory")
    return existing, lambda: None     # empty, and one transaction wrote into it: nothing is left


def refuse_data(location: str, what: str) -> None:
    """Refuse (before any work) a PostgreSQL schema that holds a store with data; a new schema is left unmade."""
    from ..store import open as open_store

    try:
        existing = open_store(location, create=False)
    except errors.NotFound:
        return
    with existing:
        if existing.position or existing.collections():
            raise errors.RestoreError(f"{shown(location)} holds a store with data; kuradb {what} only into a new"
                                      " or empty store", hint="choose a new ?schema=")


def fill(src: Store, dest: Store, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Replay one snapshot of ``src`` into the empty ``dest``, then check ``dest``: its verify passes and its
    audit chain ends on the source's hash."""
    cipher = dest.blobs.cipher(create=True) if dest.backend.key is not None and \
        dest.backend.blob_inline_max is not None else None
    source = src.backend.source()
    try:
        position, head, _ = source.end()
        blobs = _Blobs(src, dest, cipher)
        tick = None if progress is None else (lambda p: progress(0.9 * p / max(position, 1)))
        replay.replay(dest.backend, source, 0, position, blobs.place, tick)
    finally:
        source.close()
    if progress is not None:
        progress(0.9)
    problems = dest.verify().problems
    have, last = dest.backend.reader().last()
    if (have, last or bytes(16)) != (position, head):
        problems.append(f"the copy's change log ends at position {have}, not at the source's {position}")
    if problems:
        raise errors.CorruptedData(f"the copy of {shown(src.directory)} fails verification: {'; '.join(problems[:5])}",
                                   hint="run kuradb verify on the source")
    if progress is not None:
        progress(1.0)
    return {"position": position, "audit_head": head.hex(), "blobs": blobs.count, "blob_files": blobs.files}


class _Blobs:
    """Where a copy's blob content goes: into ``dest``'s database, or a file of ``dest`` when it keeps ones
    that large as files; read from the source's row, or from its file."""

    def __init__(self, src: Store, dest: Store, cipher: Any) -> None:
        self.src, self.dest, self.cipher = src, dest, cipher
        self.limit = dest.backend.blob_inline_max
        self.count = self.files = 0

    def place(self, h: str, size: int, data: bytes | None) -> bytes | None:
        self.count += 1
        if self.limit is None or size <= self.limit:
            return data if data is not None else self.src.blobs.get(h)
        self._write_file(h, data)
        self.files += 1
        return None

    def _write_file(self, h: str, data: bytes | None) -> None:
        path = self.dest.blobs.path(h)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.copying"
        with open(tmp, "wb") as out:
            sink: Any = out if self.cipher is None else self.cipher.writer(out)
            if data is not None:
                sink.write(data)
            else:
                with self.src.blobs.open(h) as f:
                    while chunk := f.read(_CHUNK):
                        sink.write(chunk)
            if sink is not out:
                sink.close()
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
