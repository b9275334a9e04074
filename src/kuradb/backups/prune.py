"""Deleting old backups by retention rules, never one a kept backup needs."""
from __future__ import annotations

import os
import shutil
import time
from typing import Any

from .. import errors
from . import files
from .files import BackupInfo


def _keep(backups: list[BackupInfo], keep_last: int | None, keep_daily: int | None,
          keep_weekly: int | None) -> set[str]:
    keep: set[str] = set()
    newest_first = sorted(backups, key=lambda b: b.created, reverse=True)
    if keep_last:
        keep.update(b.id for b in newest_first[:keep_last])
    for count, bucket in ((keep_daily, lambda d: d.date()), (keep_weekly, lambda d: d.isocalendar()[:2])):
        if not count:
            continue
        seen: list[Any] = []
        for b in newest_first:  # the newest backup of each day / week
            key = bucket(b.created)
            if key not in seen:
                seen.append(key)
                if len(seen) > count:
                    break
                keep.add(b.id)
    by_id = {b.id: b for b in backups}
    for bid in [*keep]:  # a kept backup keeps the chain it needs
        parent = by_id[bid].parent
        while parent is not None and parent in by_id:
            keep.add(parent)
            parent = by_id[parent].parent
    return keep


def _restorable(dest: str, backups: list[BackupInfo]) -> list[BackupInfo]:
    """The backups not known to be unrestorable: not taken of a damaged store (``allow_damaged``), not
    failed by ``backups.verify``, and with every backup they build on present and restorable too."""
    by_id = {b.id: b for b in backups}
    bad = {b.id for b in backups if b.damaged or files.failed_verification(dest, b.id)}
    for b in sorted(backups, key=lambda b: (b.created, b.id)):   # parents are older than their children
        if b.parent is not None and (b.parent in bad or b.parent not in by_id):
            bad.add(b.id)
    return [b for b in backups if b.id not in bad]


def prune(dest: str | os.PathLike[str], *, keep_last: int | None = None, keep_daily: int | None = None,
          keep_weekly: int | None = None) -> list[str]:
    """Delete the backups no rule keeps (and day-old half-written leftovers); returns the ids removed.

    A backup that a kept one builds on (its parent, and theirs) is kept too. Backups known not to
    restore (marked damaged, or failed by ``backups.verify``) do not count: the rules also keep the
    good backups they would keep if those were not there."""
    dest = os.fspath(dest)
    for name, value in (("keep_last", keep_last), ("keep_daily", keep_daily), ("keep_weekly", keep_weekly)):
        if value is not None and (type(value) is not int or value < 0):
            raise errors.ValidationError(f"{name} must be a non-negative integer, not {value!r}", path=name)
    if not any((keep_last, keep_daily, keep_weekly)):
        raise errors.ValidationError("prune needs keep_last, keep_daily or keep_weekly; it would delete everything",
                                     path="keep_last")
    backups = [files.info(m) for m in files.manifests(dest)]
    good = _restorable(dest, backups)
    # The rules over all backups, and over the good ones alone: a good backup never ages out behind
    # newer ones that cannot be restored (those still age out by the rules like any other).
    keep = _keep(backups, keep_last, keep_daily, keep_weekly) | _keep(good, keep_last, keep_daily, keep_weekly)
    removed = [b.id for b in backups if b.id not in keep]
    for bid in sorted(removed, reverse=True):   # children before their parents
        shutil.rmtree(os.path.join(dest, bid))
    files.remove_stale_partials(dest)   # those of killed writers; a locked one is being written now
    for name in os.listdir(dest):       # an older kuradb's partials hold no lock: a day-old one is abandoned
        path = os.path.join(dest, name)
        if (name.startswith(files.PARTIAL) and not os.path.exists(os.path.join(path, files.PARTIAL_LOCK))
                and time.time() - os.path.getmtime(path) > 86_400):
            shutil.rmtree(path, ignore_errors=True)
    return removed
