"""Backups on a schedule: ``store.backup_every(dest, every=...)`` and ``kuradb backup --every``.

A daemon thread takes a backup right away and then every ``every`` seconds,
and after each one prunes ``dest`` by the keep rules. With ``kind="incremental"``
(or ``"differential"``) and ``full_every``, a run takes a full backup instead
when the newest full one in ``dest`` is older than ``full_every``, so chains stay
short and old ones can be pruned whole. A failed run is kept in
``last_error`` (and shows in ``store.health()`` as an ageing last backup); the
schedule goes on. ``stop()``, or closing the store, ends it after the run in
progress. ``run()`` runs the same loop in the calling thread instead: ``kuradb
backup --every`` does, so that a signal interrupts the backup in progress (which
then removes its partial folder) rather than waiting for it.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import backups, errors

if TYPE_CHECKING:
    from .backups import BackupInfo
    from .store import Store

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_duration(text: Any, path: str = "every") -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"1d"``, ``"1w"`` (or a number of seconds) -> seconds."""
    if isinstance(text, timedelta):
        seconds = text.total_seconds()
    elif type(text) in (int, float):
        seconds = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text))
        if m is None:
            raise errors.ValidationError(f"{path}: {text!r} is not a duration", path=path,
                                         hint="write it like 30s, 15m, 1h, 1d or 1w")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not seconds > 0:
        raise errors.ValidationError(f"a backup interval must be positive, not {text!r}", path=path)
    return seconds


class BackupSchedule:
    def __init__(self, store: Store, dest: str, every: Any, *, keep_last: int | None = None,
                 keep_daily: int | None = None, keep_weekly: int | None = None,
                 on_backup: Callable[[BackupInfo], Any] | None = None, kind: str = "full",
                 full_every: Any = None, encryption_key: Any = None,
                 on_error: Callable[[BaseException], Any] | None = None) -> None:
        self.store, self.dest, self.every = store, dest, parse_duration(every)
        for name, value in (("keep_last", keep_last), ("keep_daily", keep_daily), ("keep_weekly", keep_weekly)):
            if value is not None and (type(value) is not int or value < 1):
                raise errors.ValidationError(f"{name} must be a positive integer, not {value!r}", path=name)
        if kind not in backups.files.KINDS:
            raise errors.ValidationError(f"kind must be one of {', '.join(backups.files.KINDS)}, not {kind!r}",
                                         path="kind")
        self.kind, self.encryption_key = kind, encryption_key
        self.full_every = None if full_every is None else parse_duration(full_every, "full_every")
        self.keep = {"keep_last": keep_last, "keep_daily": keep_daily, "keep_weekly": keep_weekly}
        self.on_backup, self.on_error = on_backup, on_error
        self.runs = 0
        self.last: BackupInfo | None = None
        self.last_error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=f"kuradb-backup-{dest}", daemon=True)

    def start(self) -> BackupSchedule:
        """Run the schedule in a daemon thread."""
        self._thread.start()
        return self

    def run(self) -> None:
        """Run the schedule in the calling thread until ``stop()`` (or an exception such as KeyboardInterrupt)."""
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.every)

    def run_once(self) -> None:
        try:
            info = self.store.backup(self.dest, kind=self.kind_now(), encryption_key=self.encryption_key)
            if any(v is not None for v in self.keep.values()):
                backups.prune(self.dest, **self.keep)
        except (errors.KuraError, OSError) as e:
            if isinstance(e, errors.Closed):
                self._stop.set()
            self.last_error = e
            if self.on_error is not None:
                self.on_error(e)
            return
        finally:
            self.runs += 1
        self.last, self.last_error = info, None
        if self.on_backup is not None:
            self.on_backup(info)

    def kind_now(self) -> str:
        """The kind of the next run: ``full`` when the newest full backup is ``full_every`` old."""
        if self.kind == "full" or self.full_every is None:
            return self.kind
        try:
            fulls = [b.created for b in backups.list_backups(self.dest) if b.kind == "full"]
        except errors.NotFound:
            return "full"
        if not fulls or (datetime.now(UTC) - max(fulls)).total_seconds() >= self.full_every:
            return "full"
        return self.kind

    def stop(self, timeout: float | None = None) -> None:
        """End the schedule after the run in progress; waits up to ``timeout`` seconds for it."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
