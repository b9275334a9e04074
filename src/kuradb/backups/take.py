"""Taking a backup: ``full`` (the database and its blob files) or the changes since a parent.

Both read one snapshot of the store, so a backup is consistent at one change-log
position while writers go on (WAL). An ``incremental`` backup holds the changes
since the newest backup of any kind, a ``differential`` one those since the newest
full backup; both are small SQLite files of the change log's new entries (with
their content), the erasures made since the parent, the new blobs and their
references, and the store's small catalog tables. Everything is written under
``DEST/.partial-<id>``, fsynced, and renamed into place when complete.
"""
from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import errors, health
from ..backends import shown
from ..crypto import Cipher
from ..encoding import sha256_file
from ..ids import new_id
from . import files

if TYPE_CHECKING:
    from ..store import Store

Progress = Callable[[float], None] | None

def backup(store: Store, dest: str | os.PathLike[str], *, kind: str = "full", encryption_key: Any = None,
           progress: Progress = None, allow_damaged: bool = False) -> files.BackupInfo:
    """Back up ``store`` into ``dest`` while writers keep writing; consistent at one position.

    ``incremental``/``differential`` without a usable parent in ``dest`` (none yet, or
    the newest one is of another store or history) take a full backup instead; the
    returned ``kind`` says which was taken.

    The copy is checked before it is kept (for SQLite: ``quick_check`` and every body
    well-formed, kuradb/backends/sqlite/damage.py): a store that
    is damaged gives ``BackupError`` naming the damage, and health() turns failing.
    ``allow_damaged=True`` keeps it anyway, marked ``damaged`` in its manifest and
    BackupInfo (restore refuses it; prune does not count it as a good backup).
    """
    if kind not in files.KINDS:
        raise errors.ValidationError(f"kind must be one of {', '.join(files.KINDS)}, not {kind!r}", path="kind")
    if store.backend.key is not None and encryption_key is not None:
        raise errors.ValidationError("a backup of an encrypted store is encrypted with the store's own key",
                                     path="encryption_key", hint="leave encryption_key out")
    files.zstd()
    dest = os.fspath(dest)
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as e:
        raise errors.BackupError(f"cannot create the backup directory {dest!r}: {e.strerror}") from e
    parent = _parent(store, dest, kind) if kind != "full" else None
    if parent is None:
        kind = "full"
    cipher = _cipher(encryption_key, parent)
    files.remove_stale_partials(dest)   # those of backups killed midway
    bid = new_id()
    partial = files.Partial(dest, bid)
    work = partial.path
    try:
        partial.create()
        check = _Check(store, allow_damaged)
        if parent is None:
            entry, blobs, position, head, at = _full(store, work, cipher, progress, check)
            since = 0
        else:
            since = parent["position"]
            entry, blobs, position, head, at = _changes(store, work, since, parent.get("audit_head"), cipher,
                                                        progress, check)
        created = datetime.now(UTC)
        manifest = {"format": files.FORMAT, "id": bid, "kind": kind, "parent": parent["id"] if parent else None,
                    "since": since, "position": position, "audit_head": head.hex(), "position_at": at,
                    "created": created.isoformat(), "store": _where(store),
                    "encryption": cipher.params if cipher else None,
                    "store_encrypted": store.backend.key is not None, "files": [entry, *blobs],
                    **({"damaged": check.problems} if check.problems else {})}
        files.write_manifest(work, manifest)
        files.fsync_dir(os.path.join(work, "blobs"))
        files.fsync_dir(work)
        partial.commit(os.path.join(dest, bid))
        files.fsync_dir(dest)
    except BaseException as e:
        partial.discard()
        if isinstance(e, errors.StorageFull) or (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)):
            raise errors.StorageFull(f"the disk holding {dest!r} is full",
                                     hint="nothing was kept of this backup; free space, prune old backups"
                                     " (kuradb backups prune) or choose another DEST") from e
        if isinstance(e, errors.CorruptedData):   # a read of a damaged copy kept with allow_damaged
            raise _unreadable(store, e, f"backup to {dest!r}") from e
        if isinstance(e, errors.KuraError):
            raise
        if isinstance(e, OSError):
            raise errors.BackupError(f"backup to {dest!r} failed: {e.strerror or e}",
                                     hint="nothing was kept of this backup") from e
        raise
    if progress is not None:
        progress(1.0)
    return files.info(manifest)


def _where(store: Store) -> str:
    """The store a backup is of, as its manifest names it (a URL without its password)."""
    location = store.directory
    return shown(location) if "://" in location else os.path.abspath(location)


def _parent(store: Store, dest: str, kind: str) -> dict[str, Any] | None:
    """The backup an incremental (newest of any kind) or differential (newest full) builds on."""
    found = [m for m in files.manifests(dest) if kind == "incremental" or m["kind"] == "full"]
    encrypted = store.backend.key is not None    # a store encrypted (or decrypted) since starts a new chain
    found = [m for m in found if m.get("audit_head") and bool(m.get("store_encrypted")) == encrypted]
    if not found:
        return None
    m = max(found, key=lambda m: (m["position"], m["created"]))
    hash = store.backend.reader().entry_hash(m["position"])
    if hash is None or hash.hex() != m["audit_head"]:
        return None   # another store's, or a history this store no longer has: start over with a full
    return m


def _cipher(key: Any, parent: dict[str, Any] | None) -> Cipher | None:
    sealed = parent is not None and parent.get("encryption") is not None
    if parent is not None and sealed != (key is not None):
        raise errors.BackupError(f"backup {parent['id']}, the parent of this one, is "
                                 f"{'encrypted' if sealed else 'not encrypted'}; a backup of a chain is too",
                                 hint="give the same encryption_key, or take a full backup")
    if key is None:
        return None
    if parent is not None:
        Cipher.open(key, parent["encryption"], parent["id"])   # the same key opens the whole chain
    return Cipher.new(key)


class _Check:
    """What a backup does with damage its check of the copy found: refuse, or (``allow_damaged``) keep it."""

    def __init__(self, store: Store, allow_damaged: bool) -> None:
        self.store, self.allow_damaged = store, allow_damaged
        self.problems: list[str] = []
        # Damage already known (met by a read, found by verify) that the check of the copy may not see,
        # such as a checksum mismatch: a restore would refuse this backup, so it is not taken either.
        self.known = health.known_damage(store)

    def found(self, problems: list[str]) -> None:
        if not problems and self.known is not None:
            problems = [f"{self.known} (kuradb verify lists what)"]
        if not problems:
            return
        health.note_damage(self.store, problems[0])
        if not self.allow_damaged:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise errors.BackupError(
                f"the store is damaged, so no backup was taken: {'; '.join(problems[:3])}{more}",
                hint="run kuradb verify to see all of it and restore from an earlier backup; to keep what can"
                     " still be read, back up with allow_damaged=True (kuradb backup --allow-damaged), which marks"
                     " the backup damaged")
        self.problems += problems



def _unreadable(store: Store, e: errors.KuraError, what: str) -> errors.BackupError:
    """The error for a store (or its copy) that cannot be read where a backup must read it."""
    if isinstance(e, errors.CorruptedData):
        health.note_damage(store, e.message)
        return errors.BackupError(f"the store is damaged, so no backup was taken: {e.message}",
                                  hint="run kuradb verify to see all of it and restore from an earlier backup")
    return errors.BackupError(f"{what} failed: {e}", hint="nothing was kept of this backup")


def _full(store: Store, work: str, cipher: Cipher | None, progress: Progress,
          check: _Check) -> tuple[dict[str, Any], list[dict[str, Any]], int, bytes, int | None]:
    raw = os.path.join(work, "kura.db")
    try:
        copied = store.backend.copy_database(raw)
    except errors.CorruptedData as e:
        raise _unreadable(store, e, "copying the database") from e
    check.found(copied.problems)
    return *_blobs_and_pack(store, raw, work, files.DB_NAME, cipher, progress), copied.position, copied.head, copied.at


def _changes(store: Store, work: str, since: int, parent_head: str | None, cipher: Cipher | None,
             progress: Progress, check: _Check) -> tuple[dict[str, Any], list[dict[str, Any]], int, bytes, int | None]:
    raw = os.path.join(work, "changes.db")
    try:
        copied = store.backend.copy_changes(raw, since, parent_head)
    except errors.CorruptedData as e:
        raise _unreadable(store, e, f"reading the changes since position {since}") from e
    check.found(copied.problems)
    return (*_blobs_and_pack(store, raw, work, files.CHANGES_NAME, cipher, progress), copied.position, copied.head,
            copied.at)


def _blobs_and_pack(store: Store, raw: str, work: str, name: str, cipher: Cipher | None,
                    progress: Progress) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Copy the blob files the database copy ``raw`` refers to, then pack ``raw`` as ``name``:
    the manifest entries of both."""
    copy = store.backend.open_copy(raw)
    try:
        blobs = _copy_blobs(store, copy, work, cipher, progress)
    finally:
        copy.close()
    entry = files.pack(raw, os.path.join(work, name), cipher)
    os.unlink(raw)
    return {"path": name, **entry}, blobs


def _write_from_database(store: Store, h: str, target: str) -> None:
    """A blob the store keeps in its database written as the backup's file (FileNotFoundError: gone since)."""
    row = store.backend.reader().blob(h, data=True)
    if row is None or row[2] is None:
        raise FileNotFoundError(h)
    with open(target, "wb") as f:
        f.write(row[2])


def _copy_blobs(store: Store, copy: Any, work: str, cipher: Cipher | None,
                progress: Progress) -> list[dict[str, Any]]:
    """The files of the copy's file blobs. A file gc removed after the copy was taken is garbage in the
    copy too (no version refers to it): its row is dropped from the copy. A referenced one missing fails."""
    rows = copy.file_blobs()
    out = []
    in_database = store.backend.blob_inline_max is None   # the copy's file blobs are rows of the store's database
    for i, (h, size) in enumerate(rows):
        src = f"blob {h} of the database" if in_database else store.blobs.path(h)
        target = os.path.join(work, "blobs", h)
        try:
            if in_database:
                _write_from_database(store, h, target)
            else:
                shutil.copyfile(src, target)
        except FileNotFoundError:
            if not copy.referenced(h):
                copy.forget_blob(h)
                continue
            raise errors.BackupError(f"blob {h}: its file {src!r} is missing from the store",
                                     hint="run kuradb verify on the store") from None
        digest, length = store.blobs.file_digest(h, target)
        if digest != h or length != size:
            raise errors.BackupError(f"blob {h}: the store's file {src!r} does not match its hash",
                                     hint="run kuradb verify on the store")
        entry: dict[str, Any] = {"path": f"blobs/{h}", "size": size, "sha256": h}
        if store.blobs.cipher() is not None:   # sealed with the store's blob key: the manifest hashes the file
            digest, length = sha256_file(target)
            entry = {"path": f"blobs/{h}", "size": length, "sha256": digest, "content": {"size": size, "sha256": h}}
        if cipher is not None:
            cipher.seal_file(target, target + ".sealed")
            os.replace(target + ".sealed", target)
            digest, length = sha256_file(target)
            entry = {"path": f"blobs/{h}", "size": length, "sha256": digest, "content": {"size": size, "sha256": h}}
        else:
            with open(target, "rb") as f:
                os.fsync(f.fileno())
        out.append(entry)
        if progress is not None and i % 100 == 0:
            progress(min(0.9 * i / max(len(rows), 1), 0.9))
    return out
