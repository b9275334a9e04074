"""Applying a backup's changes to a restored store, up to a chosen position.

A *source* is one backup's data opened read-only (kuradb/backends/sqlite/copy.py):
the changes file of an incremental/differential backup, or a full backup's
database (which holds the whole change log); or one snapshot of a live store of
any backend (``Backend.source()``, for ``kuradb.copy`` and PostgreSQL's full
backups, kuradb/backups/transfer.py). Its entries carry their content as JSON
text. ``replay(backend, source, lo, hi)`` moves a store that is at position
``lo`` to position ``hi``: it writes the
change-log entries in ``(lo, hi]`` as they are (positions, times, revs and audit
hashes unchanged) through ``ChangeLog.replay``, redoes their effect on which
version of each record is current, collections, indexes and blobs, and applies
the erasures (``keep_history``, ``purge``, ``drop_collection``) made in that
range to older entries.

Content erased after ``hi`` but before the backup was taken was never captured:
an entry that lost it is kept as erased, and if it is the current version of a
record at ``hi`` the replay refuses (``RestoreError``) rather than restore a
record without its content.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .. import errors
from ..backend import NewEntry
from ..changelog import ChangeLog
from ..query import indexes
from ..query.catalog import array_paths, encode
from ..query.indexes import IndexInfo

# What a replay keeps of a blob: (hash, size, data the source holds or None) -> the data for the row
# (None: the blob is a file, which the caller places).
Place = Callable[[str, int, bytes | None], bytes | None]
BATCH = 1000     # record versions written by one append


def committed(source: Any, position: int) -> int:
    """``position``, or the end of the last transaction committed before it when it falls inside one."""
    after = source.entry(position + 1)
    if after is not None and after.txn <= position:
        return int(after.txn) - 1
    return position


def replay(backend: Any, source: Any, lo: int, hi: int, place: Place | None = None,
           progress: Callable[[int], None] | None = None) -> None:
    """Move the store of ``backend`` (at position ``lo``) to position ``hi`` with ``source``'s entries; one
    transaction. ``place`` decides what a blob's row holds (default: what the source's row holds);
    ``progress`` is told the position reached now and then."""
    lost: dict[int, str] = {}
    log = ChangeLog()
    with backend.write() as tx:
        have = tx.last()[0]
        if have != lo:
            raise errors.RestoreError(f"backup {source.bid} continues from position {lo}, but the store being"
                                      f" restored is at {have}")
        batch = _Batch(tx, log)
        colls: dict[str, int] = {}      # forgotten at each entry of another kind (a drop, say)
        for e in source.entries(lo, hi):
            if e.erased > hi:        # erased after hi, before the backup: the content was never captured
                e.erased, e.body = hi, None
                lost[e.position] = f"{e.collection}/{e.id} version {e.version}"
            if e.kind == "record" and e.version is not None:
                name = str(e.collection)
                coll = colls.get(name)
                if coll is None:
                    coll = colls[name] = tx.ensure_collection(name, e.at)
                batch.add(e, coll)
                if len(batch.entries) >= BATCH:
                    batch.flush()
                    if progress is not None:
                        progress(e.position)
                continue
            batch.flush()
            colls.clear()
            _redo(tx, backend.dialect, log, source, e, place)
        batch.flush()
        tx.add_kept_blob_refs(source.blob_refs(lo, hi))
        for position, erased, author, type_, checksum in source.erasures(lo, hi):
            tx.apply_erasure(position, erased, author, type_, checksum)
        current = tx.current_among(list(lost))
        if current is not None:
            raise errors.RestoreError(
                f"{lost[current]}, current at position {hi}, was erased (purge, keep_history or drop_collection)"
                f" before backup {source.bid} was taken, so its content is in no backup",
                hint="restore until a position at which a backup was taken, or one after the erasure")


class _Batch:
    """Record versions written by one append: a version superseded by a later one of the batch is written
    as no head (as a batch put writes it), the others' predecessors stop being heads."""

    def __init__(self, tx: Any, log: ChangeLog) -> None:
        self.tx, self.log = tx, log
        self.entries: list[NewEntry] = []
        self.superseded: list[int] = []
        self._at: dict[int, NewEntry] = {}
        self._paths: dict[int, set[str]] = {}       # array paths of the batch's content, per collection
        self._noted: set[tuple[int, str]] = set()   # and those noted already

    def add(self, e: NewEntry, coll: int) -> None:
        e.coll = coll
        e.head = 2 if e.op == "delete" else 1
        if e.prev is not None:
            before = self._at.get(e.prev)
            if before is not None:
                before.head = None
            else:
                self.superseded.append(e.prev)
        self.entries.append(e)
        self._at[e.position] = e
        if e.body is not None and b"[" in e.body:
            self._paths.setdefault(coll, set()).update(encode(p) for p in array_paths(orjson.loads(e.body)))

    def flush(self) -> None:
        if self.entries:
            self.log.replay(self.tx, self.entries, superseded=self.superseded)
            self.entries, self.superseded, self._at = [], [], {}
        for coll, paths in self._paths.items():
            new = sorted(p for p in paths if (coll, p) not in self._noted)
            if new:
                self.tx.note_array_paths(coll, new)
                self._noted.update((coll, p) for p in new)
        self._paths = {}


def _redo(tx: Any, dialect: Any, log: ChangeLog, source: Any, e: NewEntry, place: Place | None) -> None:
    """Write one entry that is not a record version and do what it did."""
    kind, op = e.kind, e.op
    if kind == "blob":
        _redo_blob(tx, log, source, e, place)
        return
    name, id = str(e.collection), str(e.id)      # a record, collection or index entry names its collection
    coll = e.coll = tx.ensure_collection(name, e.at)
    if kind == "collection" and op == "drop":
        indexes.drop_all(tx, dialect, name, coll)
        tx.drop_collection(coll, e.position)
    elif kind == "index" and op == "drop":
        try:
            indexes.drop(tx, dialect, name, coll, id)
        except errors.NotFound:
            pass
    log.replay(tx, [e])
    if kind == "record" and op == "purge":
        tx.unhead(coll, id)
    elif kind == "collection" and op == "options":
        tx.set_options(coll, e.body.decode() if e.body is not None else "{}")
    elif kind == "index" and op == "create":
        indexes.create(tx, dialect, name, coll, _index_definition(source, e))


def _redo_blob(tx: Any, log: ChangeLog, source: Any, e: NewEntry, place: Place | None) -> None:
    log.replay(tx, [e])
    if e.op == "put":
        blob = source.blob(e.id)
        if blob is not None and tx.blob(e.id) is None:
            h, size, content_type, created, data = blob
            tx.put_blob(h, size, content_type, created, data if place is None else place(h, size, data))
    elif e.op == "delete":
        tx.delete_blob(e.id)


def _index_definition(source: Any, e: NewEntry) -> IndexInfo:
    if e.body is not None:
        d = orjson.loads(e.body)
        return IndexInfo(e.id, tuple(d["fields"]), bool(d["unique"]), d["kind"], d.get("options") or {})  # type: ignore
    found = source.index(e.collection, e.id)
    if found is None:
        raise errors.RestoreError(f"the definition of index {e.collection}.{e.id}, created at position {e.position},"
                                  f" is in no backup (it was dropped before backup {source.bid})",
                                  hint="restore until a position where a backup was taken")
    kind, fields, unique, options = found
    return IndexInfo(e.id, tuple(fields), unique, kind, options)  # type: ignore[arg-type]
