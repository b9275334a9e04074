"""Restoring a backup, or the state at any change-log position or time a backup chain covers.

A restore is planned from the manifests alone:

- the *base*: the newest backup at or before the wanted position whose chain
  (full, then each incremental/differential on its parent) is complete, or an
  empty store;
- the *tail*, when the base is not already at the wanted position: the earliest
  backup that holds the change-log entries from the base's position up to the
  wanted one (an incremental or differential whose range starts at or before
  the base, or any full backup: a full backup holds the whole change log).

The base's full backup is unpacked, each later link of its chain and then the
tail are replayed on it (``replay.py``), its file blobs are placed and checked,
and the result must pass ``store.verify()`` with its audit chain ending on the
hash the backups recorded. Everything happens in a temporary directory beside
``target``, which is renamed into place only when all of that holds; any problem
raises ``RestoreError`` and leaves ``target`` as it was. A ``postgresql://`` target
(a new or empty schema) gets the store so built and checked, copied into it
(``transfer.py``) and checked again; on failure the schema made is dropped.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import audit, errors
from ..backends.sqlite.copy import Source
from ..crypto import Cipher
from ..encoding import sha256_file
from . import files, replay, transfer

if TYPE_CHECKING:
    from ..store import Store

Manifest = dict[str, Any]


def restore(dest: str | os.PathLike[str], target: str | os.PathLike[str], *, until: Any = None,
            id: str | None = None, encryption_key: Any = None,
            progress: Callable[[float], None] | None = None) -> files.BackupInfo:
    """Restore into ``target`` (a new or empty directory, or a ``postgresql://…?schema=`` URL naming a new or
    empty schema) the newest backup, backup ``id``, or the state at ``until``.

    ``until`` is a change-log position (int) or a ``datetime``: the state after the
    last transaction committed at or before it. A time after the newest backup gives
    the newest backup (nothing later was backed up). The returned ``BackupInfo`` has
    the position actually restored; ``kind`` is ``"point-in-time"`` when no single
    backup was at that position.
    """
    dest, target = os.fspath(dest), os.fspath(target)
    url = transfer.is_url(target)
    if not url and os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise errors.RestoreError(f"{target!r} exists and is not empty; kuradb restores only into a new place")
    if url:
        transfer.refuse_data(target, "restores")
    ms = files.manifests(dest)
    named = id if id is not None else (None if until is not None else files.newest_name(dest))
    if named is not None:
        try:
            files.read_manifest(dest, named)
        except errors.CorruptedData as e:
            raise errors.RestoreError(e.message, hint="restore an older backup: give id= or until=") from e
    if not ms:
        raise errors.NotFound(f"{dest!r} holds no backup")
    by_id = {m["id"]: m for m in ms}
    parent = None if url else os.path.dirname(os.path.abspath(target)) or "."
    try:
        if parent is not None:
            os.makedirs(parent, exist_ok=True)
        work = tempfile.mkdtemp(prefix=".kuradb-restore-", dir=parent)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise errors.StorageFull(f"the disk holding {target!r} is full", hint="nothing was restored") from e
        raise errors.RestoreError(f"cannot restore into {target!r}: {e.strerror or e}",
                                  hint="choose a target in a writable directory") from e
    try:
        with _Unpacker(dest, work, encryption_key) as unpacker:
            if id is not None:
                if until is not None:
                    raise errors.ValidationError("give id or until, not both", path="until")
                base, tail, p = _chain(by_id, by_id[id]), None, by_id[id]["position"]
                if base is None:
                    raise _missing_parent(by_id, by_id[id])
            else:
                p = _position(ms, until, unpacker)
                base, tail = _plan(by_id, p)
            store_dir = os.path.join(work, "store")
            if url:
                p = _into_server(target, store_dir, base, tail, p, unpacker, progress)
            else:
                p, _ = _build(store_dir, base, tail, p, unpacker, progress)
                if os.path.isdir(target):
                    os.rmdir(target)
                os.rename(store_dir, target)
                assert parent is not None
                files.fsync_dir(parent)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise errors.StorageFull(f"the disk holding {target!r} is full", hint="nothing was restored") from e
        raise errors.RestoreError(f"restoring into {target!r} failed: {e.strerror or e}") from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if tail is None or tail["position"] == p:
        return files.info(tail or base[-1])
    last = files.info(tail)
    return files.BackupInfo(tail["id"], "point-in-time", base[-1]["id"] if base else None, p, last.created,
                            sum(files.info(m).size for m in [*base, tail]), base[-1]["position"] if base else 0,
                            last.encrypted)


# -- planning -----------------------------------------------------------------------------

def _chain(by_id: dict[str, Manifest], m: Manifest) -> list[Manifest] | None:
    """``m`` and its ancestors, full backup first; None when one is missing."""
    out = [m]
    while out[-1]["parent"] is not None:
        parent = by_id.get(out[-1]["parent"])
        if parent is None:
            return None
        out.append(parent)
    return out[::-1]


def _missing_parent(by_id: dict[str, Manifest], m: Manifest) -> errors.RestoreError:
    while m["parent"] in by_id:
        m = by_id[m["parent"]]
    return errors.RestoreError(f"backup {m['id']} needs backup {m['parent']}, which is missing or unreadable",
                               hint="restore an older backup, or one from another chain (kuradb backups list)")


def _plan(by_id: dict[str, Manifest], p: int) -> tuple[list[Manifest], Manifest | None]:
    ms = sorted(by_id.values(), key=lambda m: (m["position"], m["created"]))
    chains = [c for m in ms if m["position"] <= p and (c := _chain(by_id, m)) is not None]
    for base in [*sorted(chains, key=lambda c: (-c[-1]["position"], len(c))), []]:
        at = base[-1]["position"] if base else 0
        if at == p:
            return base, None
        tails = [m for m in ms if m.get("since", 0) <= at and m["position"] >= p]
        if tails:
            return base, min(tails, key=lambda m: (m["position"], m["kind"] != "full"))
    newest = ms[-1]["position"]
    if p > newest:
        raise errors.RestoreError(f"position {p} is after the newest backup (position {newest})",
                                  hint="take a backup, or restore until an earlier point")
    broken = [m for m in ms if _chain(by_id, m) is None]
    raise (_missing_parent(by_id, broken[0]) if broken else
           errors.RestoreError(f"no backup holds the changes up to position {p}"))


def _position(ms: list[Manifest], until: Any, unpacker: _Unpacker) -> int:
    """The change-log position ``until`` names (the newest backup's when None)."""
    newest = max(ms, key=lambda m: (m["position"], m["created"]))
    if until is None:
        return int(newest["position"])
    if isinstance(until, int) and not isinstance(until, bool):
        if until < 1:
            raise errors.ValidationError(f"until must be a change-log position of 1 or more, not {until}",
                                         path="until")
        return until
    if not isinstance(until, datetime):
        raise errors.ValidationError(f"until must be a position (int) or a datetime, not {type(until).__name__}",
                                     path="until")
    if until.tzinfo is None:
        until = until.astimezone()  # a naive time is local time, as datetime.now() gives it
    t = int(until.astimezone(UTC).timestamp() * 1_000_000)
    before = [m["position"] for m in ms if m.get("position_at") is not None and m["position_at"] <= t]
    lo = max(before, default=0)
    after = [m for m in ms if m.get("position_at") is not None and m["position_at"] > t and m.get("since", 0) <= lo]
    if not after:
        if lo == 0:
            raise errors.RestoreError(f"{until.isoformat()} is before the first change any backup holds")
        return lo
    tail = min(after, key=lambda m: m["position"])
    p = unpacker.source(tail).position_at(lo, tail["position"], t)
    if p == 0:
        raise errors.RestoreError(f"{until.isoformat()} is before the first change any backup holds")
    return p


# -- building the store ---------------------------------------------------------------------

class _Unpacker:
    """Unpacks (decrypts, decompresses, checks) each backup's database file once, into ``work``."""

    def __init__(self, dest: str, work: str, key: Any) -> None:
        self.dest, self.work, self.key = dest, work, key
        self._paths: dict[str, str] = {}
        self._sources: dict[str, Source] = {}
        self._ciphers: dict[str, Cipher | None] = {}
        self.used: list[Manifest] = []

    def __enter__(self) -> _Unpacker:
        return self

    def __exit__(self, *exc: Any) -> None:
        for s in self._sources.values():
            s.close()

    def cipher(self, m: Manifest) -> Cipher | None:
        if m["id"] not in self._ciphers:
            sealed = m.get("encryption")
            self._ciphers[m["id"]] = None if sealed is None else Cipher.open(self.key, sealed, m["id"])
        return self._ciphers[m["id"]]

    def database(self, m: Manifest, target: str | None = None) -> str:
        """The backup's database file (the full copy or the changes), unpacked and checked."""
        if m["id"] in self._paths and target is None:
            return self._paths[m["id"]]
        problems = files.check_files(self.dest, m)
        if problems:
            raise errors.RestoreError("; ".join(problems), hint="try an older backup (kuradb backups list)")
        cipher = self.cipher(m)
        entry = next((f for f in m["files"] if f["path"] in (files.DB_NAME, files.CHANGES_NAME)), None)
        if entry is None:
            raise errors.RestoreError(f"backup {m['id']}: its manifest names no database file")
        path = target or os.path.join(self.work, m["id"] + ".db")
        files.unpack(os.path.join(self.dest, m["id"], entry["path"]), path, entry, f"backup {m['id']}: "
                     f"{entry['path']}", cipher)
        self.used.append(m)
        if target is None:
            self._paths[m["id"]] = path
        return path

    def store_key(self, m: Manifest) -> Any:
        """The key of the store ``m`` was taken from, when it was encrypted."""
        if not m.get("store_encrypted"):
            return None
        if self.key is None:
            raise errors.PermissionDenied(f"backup {m['id']} is of an encrypted store; give its encryption_key")
        return self.key

    def source(self, m: Manifest) -> Source:
        if m["id"] not in self._sources:
            path = self.database(m)
            try:
                self._sources[m["id"]] = Source(path, m["id"], self.store_key(m))
            except errors.PermissionDenied as e:
                raise errors.PermissionDenied(f"backup {m['id']}: {e.message}") from e
        return self._sources[m["id"]]

    def blob(self, h: str, target: str) -> bool:
        """Place blob file ``h`` from any backup used so far; False when none holds it."""
        for m in reversed(self.used):
            entry = next((f for f in m["files"] if f["path"] == f"blobs/{h}"), None)
            if entry is None:
                continue
            source = os.path.join(self.dest, m["id"], entry["path"])
            where = f"backup {m['id']}: blobs/{h}"
            cipher = self.cipher(m)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if cipher is None:
                shutil.copyfile(source, target)
            else:
                cipher.open_file(source, target, where)
            if not m.get("store_encrypted") and sha256_file(target) != (h, entry.get("content", entry)["size"]):
                raise errors.RestoreError(f"{where} does not match its hash")   # sealed ones: by store.verify()
            return True
        return False


def _into_server(target: str, store_dir: str, base: list[Manifest], tail: Manifest | None, p: int,
                 unpacker: _Unpacker, progress: Callable[[float], None] | None) -> int:
    """Restore into the new or empty PostgreSQL schema ``target``: the store is built and checked in
    ``store_dir`` as for a directory, then copied into the schema (transfer.py), which is checked again
    (verify, the same audit head). On failure the schema made is dropped again."""
    from ..store import open as open_store

    half = None if progress is None else (lambda f: progress(f / 2))
    p, key = _build(store_dir, base, tail, p, unpacker, half)
    store, undo = transfer.claim(target, key, "restore")
    try:
        with open_store(store_dir, encryption_key=key, read_only=True) as built:
            transfer.fill(built, store, None if progress is None else (lambda f: progress(0.5 + f / 2)))
        store.close()
    except BaseException as e:
        store.close()
        undo()
        if isinstance(e, errors.CorruptedData):
            raise errors.RestoreError(f"{_names([*base, *([tail] if tail else [])])}: {e.message}") from e
        raise
    return p


def _build(store_dir: str, base: list[Manifest], tail: Manifest | None, p: int, unpacker: _Unpacker,
           progress: Callable[[float], None] | None) -> tuple[int, Any]:
    """Make the store at ``store_dir``; returns the position it is at and the key it is encrypted with."""
    os.makedirs(os.path.join(store_dir, "blobs"))
    plan = [*base, *([tail] if tail is not None else [])]
    if len({bool(m.get("store_encrypted")) for m in plan}) > 1:
        raise errors.RestoreError("this point needs backups taken before and after the store was encrypted",
                                  hint="restore a point covered by backups of one kind (kuradb backups list)")
    key = unpacker.store_key(plan[0]) if plan else None
    try:
        return _build_store(store_dir, base, tail, p, unpacker, progress, plan, key), key
    except errors.CorruptedData as e:
        # A damaged backup: what it holds cannot be read (the restored store's own verify names the rest).
        found = e.message
        raise errors.RestoreError(f"{_names(plan)} cannot be restored, its data is damaged: {found}{_marked(plan)}",
                                  hint="try an older backup (kuradb backups list)") from e


def _names(plan: list[Manifest]) -> str:
    if not plan:
        return "the restore"
    return "backup " + plan[-1]["id"] + (f" (with {len(plan) - 1} it builds on)" if len(plan) > 1 else "")


def _marked(plan: list[Manifest]) -> str:
    """What the backups of ``plan`` taken of a damaged store (``allow_damaged``) recorded, if any."""
    marked = [m for m in plan if m.get("damaged")]
    return "".join(f"; backup {m['id']} was taken of a damaged store: {m['damaged'][0]}" for m in marked)


def _build_store(store_dir: str, base: list[Manifest], tail: Manifest | None, p: int, unpacker: _Unpacker,
                 progress: Callable[[float], None] | None, plan: list[Manifest], key: Any) -> int:
    from ..store import open as open_store

    if base:
        unpacker.database(base[0], os.path.join(store_dir, "kura.db"))
    steps = len(base) + (tail is not None) + 1
    try:
        store = open_store(store_dir, encryption_key=key, create=True)
    except errors.PermissionDenied as e:
        raise errors.PermissionDenied(f"backup {plan[0]['id']}: {e.message}") from e
    with store:
        for i, m in enumerate(base[1:], 2):
            replay.replay(store.backend, unpacker.source(m), m["since"], m["position"])
            if progress is not None:
                progress(i / steps)
        expected: str | None = base[-1].get("audit_head") if base else None
        if tail is not None:
            source = unpacker.source(tail)
            p = replay.committed(source, p)
            at = base[-1]["position"] if base else 0
            if p > at:
                replay.replay(store.backend, source, at, p)
            entry = source.entry(p)
            expected = None if entry is None else entry.hash.hex()
        _place_blobs(store, unpacker)
        problems = _check(store, p, expected)
        if problems:
            raise errors.RestoreError(f"{_names(plan)}: the restored store fails verification:"
                                      f" {'; '.join(problems[:5])}{_marked(plan)}",
                                      hint="try an older backup (kuradb backups list)")
    if progress is not None:
        progress(1.0)
    return p


def _place_blobs(store: Store, unpacker: _Unpacker) -> None:
    for h in store.backend.reader().file_blobs():
        path = store.blobs.path(h)
        if not os.path.exists(path) and not unpacker.blob(h, path):
            raise errors.RestoreError(f"blob {h} is referenced but its file is in no backup of this restore")


def _check(store: Store, position: int, head: str | None) -> list[str]:
    """The restored store's own verify, and its audit chain ending where the backups recorded."""
    problems = store.verify().problems
    have, last = store.backend.reader().last()
    digest = last or audit.GENESIS
    if have != position or (head is not None and digest.hex() != head):
        problems.append(f"its change log ends at position {have} with hash {digest.hex()[:12]}…, not where the"
                        f" backups recorded ({position}, {str(head)[:12]}…)")
    return problems
