"""Backups that are verified, listed, restored to any point and pruned (``kuradb.backups``).

A backup directory ``DEST`` holds one folder per backup, named by its id
(time-ordered), each with a ``manifest.json`` and its files::

    DEST/<id>/manifest.json      id, kind, parent, change-log range, created, format, every file's size and SHA-256
    DEST/<id>/kura.db.zst        full: a consistent copy of the database as a SQLite store's kura.db, zstd
                                 (SQLite's online backup API; a PostgreSQL store's snapshot replayed into one)
    DEST/<id>/changes.db.zst     incremental/differential: the change log since the parent, with its content
    DEST/<id>/blobs/<hash>       the blob files the backup adds

A backup is written under ``DEST/.partial-<id>``, fsynced, and renamed into
place only when complete, so a failed backup never looks like a good one.
``take.py`` takes them, ``restore.py`` plans and builds a restore (replaying the
change log, ``replay.py``), ``crypto.py`` seals encrypted ones, ``prune.py``
applies retention, ``transfer.py`` copies a store into a new one of either backend
(``kuradb.copy``). The format is the same whatever the store's backend: a backup of
a SQLite store restores into PostgreSQL and back.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

from .. import errors
from ..integrity import Report
from . import files
from .files import BackupInfo
from .prune import _keep, prune
from .restore import restore
from .take import backup

__all__ = ["BackupInfo", "backup", "list_backups", "prune", "restore", "verify", "_keep"]


def list_backups(dest: str | os.PathLike[str]) -> list[BackupInfo]:
    """The complete backups in ``dest``, oldest first (half-written ones are not listed)."""
    return [files.info(m) for m in files.manifests(os.fspath(dest))]


def verify(dest: str | os.PathLike[str], id: str | None = None, *, encryption_key: Any = None,
           progress: Callable[[float], None] | None = None) -> Report:
    """Check every file's hash and every chain, then restore each backup into a temporary
    directory and run the store's own verify there. An encrypted backup needs its key.

    Each backup's outcome is kept beside its manifest (``verified.json``): ``prune``
    does not count a backup that failed as one of those it keeps."""
    dest = os.fspath(dest)
    if not os.path.isdir(dest):
        raise errors.NotFound(f"no backup directory {dest!r}")
    report = Report()
    ids = [id] if id is not None else [b for b in sorted(os.listdir(dest)) if not b.startswith(".")
                                         and os.path.isdir(os.path.join(dest, b))]
    good = {m["id"] for m in files.manifests(dest)}
    for i, bid in enumerate(ids):
        if progress is not None:
            progress(i / max(len(ids), 1))
        try:
            m = files.read_manifest(dest, bid)
        except (errors.CorruptedData, errors.NotFound) as e:
            report.add(e.message)
            continue
        report.checked["backups"] = report.checked.get("backups", 0) + 1
        problems = files.check_files(dest, m)
        if m["parent"] is not None and m["parent"] not in good:
            problems.append(f"backup {bid}: its parent backup {m['parent']} is missing or unreadable")
        if not problems and (m.get("encryption") is not None or m.get("store_encrypted")) and encryption_key is None:
            report.add(f"backup {bid} is encrypted: give its encryption_key to check that it restores")
            continue
        if not problems:
            with tempfile.TemporaryDirectory(prefix="kuradb-verify-") as tmp:
                try:
                    restore(dest, os.path.join(tmp, "store"), id=bid, encryption_key=encryption_key)
                except (errors.RestoreError, errors.CorruptedData) as e:
                    problems.append(e.message if bid in e.message else f"backup {bid}: {e.message}")
                except errors.KuraError as e:   # not the backup's fault (a full disk, a wrong key): not recorded
                    report.add(f"backup {bid}: {e.message}")
                    continue
        for p in problems:
            report.add(p)
        files.record_verified(dest, bid, problems)
    if progress is not None:
        progress(1.0)
    return report


def __getattr__(name: str) -> Any:
    """``kuradb.backups.list(dest)``, as API.md names it, without shadowing the builtin in this module."""
    if name == "list":
        return list_backups
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
