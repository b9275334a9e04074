"""Full backups of a store that are verified, listed, restored and pruned (``kuradb.backups``).

A backup directory ``DEST`` holds one folder per backup, named by its id
(time-ordered), each with a ``manifest.json`` and its files::

    DEST/<id>/manifest.json      id, kind, parent, position, created, format, and every file's size and SHA-256
    DEST/<id>/kura.db.zst        a consistent copy of the database (SQLite's online backup API), zstd
    DEST/<id>/blobs/<hash>       the blob files (already addressed by their SHA-256), as they are

A backup is written under ``DEST/.partial-<id>``, fsynced, and renamed into
place only when complete, so a failed backup never looks like a good one.
Restoring checks every hash before it writes anything, restores into a
temporary directory beside the target, runs ``store.verify()`` there, and
only then renames it into place: a damaged backup raises ``RestoreError`` and
leaves nothing behind.

Issue #5's incremental and differential backups, point-in-time restore,
encryption and scheduling build on this format (``kind``, ``parent``).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import apsw
import orjson

from . import audit, errors
from .encoding import sha256_file
from .ids import new_id
from .integrity import Report

if TYPE_CHECKING:
    from .store import Store

FORMAT = 1
MANIFEST = "manifest.json"
DB_NAME = "kura.db.zst"
_PARTIAL = ".partial-"
_CHUNK = 1 << 20
_LEVEL = 1  # zstd level for the database copy: level 3 compresses no better and is 1.4x slower (DECISIONS.md)


@dataclass(frozen=True)
class BackupInfo:
    """One backup: ``position`` is the change-log position its state is at."""

    id: str
    kind: str
    parent: str | None
    position: int
    created: datetime
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "created": self.created.isoformat()}


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as e:
        raise errors.BackupError("backups need the zstandard package",
                                 hint="pip install 'kuradb[backup]'") from e
    return zstandard


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- taking a backup ------------------------------------------------------------------

def backup(store: Store, dest: str | os.PathLike[str], *, kind: str = "full",
           encryption_key: Any = None, progress: Callable[[float], None] | None = None) -> BackupInfo:
    """Back up ``store`` into ``dest`` while writers keep writing; consistent at one position."""
    if kind != "full":
        raise errors.BackupError(f"kind={kind!r} backups are not available in this version; use kind='full'")
    if encryption_key is not None:
        raise errors.BackupError("encrypted backups are not available in this version")
    zstd = _zstd()
    dest = os.fspath(dest)
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as e:
        raise errors.BackupError(f"cannot create the backup directory {dest!r}: {e.strerror}") from e
    bid = new_id()
    work = os.path.join(dest, _PARTIAL + bid)
    try:
        os.makedirs(os.path.join(work, "blobs"))
        raw = os.path.join(work, "kura.db")
        _copy_database(store, raw)
        conn = apsw.Connection(raw)
        try:
            position, head = audit.head(conn)
            files = _copy_blobs(store, conn, work, progress)
            conn.execute("PRAGMA journal_mode=DELETE").fetchall()
        finally:
            conn.close()
        compressed = os.path.join(work, DB_NAME)
        (db_hash, db_size), (z_hash, z_size) = _compress(zstd, raw, compressed)
        os.unlink(raw)
        files.insert(0, {"path": DB_NAME, "size": z_size, "sha256": z_hash,
                         "content": {"size": db_size, "sha256": db_hash}})
        created = datetime.now(UTC)
        manifest = {"format": FORMAT, "id": bid, "kind": kind, "parent": None, "position": position,
                    "audit_head": head.hex(),
                    "created": created.isoformat(), "store": os.path.abspath(store.directory), "files": files}
        with open(os.path.join(work, MANIFEST), "wb") as f:
            f.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(os.path.join(work, "blobs"))
        _fsync_dir(work)
        os.rename(work, os.path.join(dest, bid))
        _fsync_dir(dest)
    except BaseException as e:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(e, errors.KuraError):
            raise
        if isinstance(e, OSError):
            raise errors.BackupError(f"backup to {dest!r} failed: {e.strerror or e}",
                                     hint="nothing was kept of this backup") from e
        raise
    if progress is not None:
        progress(1.0)
    return _info(manifest)


class _Hashing:
    """A file wrapper that hashes and counts what is written through it."""

    def __init__(self, f: Any) -> None:
        self.f, self.digest, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return int(self.f.write(data))


def _compress(zstd: Any, raw: str, target: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """zstd ``raw`` into ``target`` in one pass (all cores), hashing both sides; fsynced."""
    digest, size = hashlib.sha256(), 0
    with open(raw, "rb") as src, open(target, "wb") as out:
        sink = _Hashing(out)
        with zstd.ZstdCompressor(level=_LEVEL, threads=-1).stream_writer(sink, closefd=False) as w:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                w.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return (digest.hexdigest(), size), (sink.digest.hexdigest(), sink.size)


def _copy_database(store: Store, target: str) -> None:
    """A page copy of the database as of one moment (one backup step holds one read snapshot)."""
    source = store._backend._connect()
    try:
        dest = apsw.Connection(target)
        try:
            with dest.backup("main", source, "main") as b:
                while not b.done:
                    b.step(-1)
        finally:
            dest.close()
    except apsw.Error as e:
        raise errors.BackupError(f"copying the database failed: {e}") from e
    finally:
        with store._backend._conns_lock:
            store._backend._conns.discard(source)
        source.close()


def _copy_blobs(store: Store, conn: apsw.Connection, work: str,
                progress: Callable[[float], None] | None) -> list[dict[str, Any]]:
    """The files of the copy's file blobs. A file gc removed after the copy was taken is garbage in the
    copy too (no version refers to it): its row is dropped from the copy. A referenced one missing fails."""
    rows: list[Any] = conn.execute("SELECT hash, size FROM blobs WHERE data IS NULL").fetchall()
    out = []
    for i, (h, size) in enumerate(rows):
        src = store.blobs._path(h)
        target = os.path.join(work, "blobs", h)
        try:
            shutil.copyfile(src, target)
        except FileNotFoundError:
            if conn.execute("SELECT 1 FROM blob_refs WHERE hash=? LIMIT 1", (h,)).fetchone() is None:
                conn.execute("DELETE FROM blobs WHERE hash=?", (h,))
                continue
            raise errors.BackupError(f"blob {h}: its file {src!r} is missing from the store",
                                     hint="run kuradb verify on the store") from None
        digest, length = sha256_file(target)
        if digest != h or length != size:
            raise errors.BackupError(f"blob {h}: the store's file {src!r} does not match its hash",
                                     hint="run kuradb verify on the store")
        with open(target, "rb") as f:
            os.fsync(f.fileno())
        out.append({"path": f"blobs/{h}", "size": size, "sha256": h})
        if progress is not None and i % 100 == 0:
            progress(min(0.9 * i / max(len(rows), 1), 0.9))
    return out


# -- reading backups ----------------------------------------------------------------------

def _info(manifest: dict[str, Any]) -> BackupInfo:
    return BackupInfo(manifest["id"], manifest["kind"], manifest["parent"], manifest["position"],
                      datetime.fromisoformat(manifest["created"]), sum(f["size"] for f in manifest["files"]))


def _manifest(dest: str, bid: str) -> dict[str, Any]:
    path = os.path.join(dest, bid, MANIFEST)
    try:
        with open(path, "rb") as f:
            m = orjson.loads(f.read())
    except FileNotFoundError as e:
        raise errors.NotFound(f"no backup {bid!r} in {dest!r}") from e
    except (OSError, orjson.JSONDecodeError) as e:
        raise errors.CorruptedData(f"backup {bid}: {MANIFEST} cannot be read ({e})") from e
    if not isinstance(m, dict) or m.get("format") != FORMAT or m.get("id") != bid or not isinstance(
            m.get("files"), list):
        raise errors.CorruptedData(f"backup {bid}: {MANIFEST} is not a kuradb backup manifest of format {FORMAT}")
    return m


def list_backups(dest: str | os.PathLike[str]) -> list[BackupInfo]:
    """The complete backups in ``dest``, oldest first (half-written ones are not listed)."""
    dest = os.fspath(dest)
    if not os.path.isdir(dest):
        raise errors.NotFound(f"no backup directory {dest!r}")
    out = []
    for name in sorted(os.listdir(dest)):
        if name.startswith(".") or not os.path.isfile(os.path.join(dest, name, MANIFEST)):
            continue
        try:
            out.append(_info(_manifest(dest, name)))
        except errors.CorruptedData:
            continue  # shown by verify, not offered for restore
    return out


def _pick(dest: str, bid: str | None) -> str:
    if bid is not None:
        return bid
    found = list_backups(dest)
    if not found:
        raise errors.NotFound(f"{dest!r} holds no backup")
    return found[-1].id


def _check_files(dest: str, m: dict[str, Any], report: Report) -> None:
    for f in m["files"]:
        path = os.path.join(dest, m["id"], f["path"])
        try:
            digest, size = sha256_file(path)
        except FileNotFoundError:
            report.add(f"backup {m['id']}: {f['path']} is missing")
            continue
        if (digest, size) != (f["sha256"], f["size"]):
            report.add(f"backup {m['id']}: {f['path']} does not match its hash in the manifest")


def verify(dest: str | os.PathLike[str], id: str | None = None) -> Report:
    """Check every file's hash, then restore into a temporary directory and run the store's verify."""
    dest = os.fspath(dest)
    if not os.path.isdir(dest):
        raise errors.NotFound(f"no backup directory {dest!r}")
    report = Report()
    ids = [id] if id is not None else [b for b in sorted(os.listdir(dest)) if not b.startswith(".")
                                         and os.path.isdir(os.path.join(dest, b))]
    for bid in ids:
        try:
            m = _manifest(dest, bid)
        except (errors.CorruptedData, errors.NotFound) as e:
            report.add(e.message)
            continue
        before = len(report.problems)
        _check_files(dest, m, report)
        if len(report.problems) == before:
            with tempfile.TemporaryDirectory(prefix="kuradb-verify-") as tmp:
                try:
                    _restore_files(dest, m, os.path.join(tmp, "store"))
                    from .store import open as open_store

                    with open_store(os.path.join(tmp, "store"), read_only=True) as s:
                        for p in _check_restored(s, m):
                            report.add(f"backup {bid}: restored store: {p}")
                except errors.KuraError as e:
                    report.add(f"backup {bid}: {e.message}")
        report.checked["backups"] = report.checked.get("backups", 0) + 1
    return report


# -- restoring ---------------------------------------------------------------------------

def _check_restored(store: Store, m: dict[str, Any]) -> list[str]:
    """The restored store's own verify, and its audit chain ending where the manifest says."""
    problems = store.verify().problems
    position, head = audit.head(store._backend.reader())
    if (position, head.hex()) != (m["position"], m.get("audit_head")):
        problems.append(f"its change log ends at position {position} with hash {head.hex()[:12]}…, not where the"
                        f" manifest recorded ({m['position']}, {str(m.get('audit_head'))[:12]}…)")
    return problems


def _restore_files(dest: str, m: dict[str, Any], target: str) -> None:
    """Write the backup's files as a store at ``target`` (which must not exist), checking every hash."""
    zstd = _zstd()
    os.makedirs(os.path.join(target, "blobs"))
    db = next(f for f in m["files"] if f["path"] == DB_NAME)
    raw = os.path.join(target, "kura.db")
    digest = hashlib.sha256()
    with open(os.path.join(dest, m["id"], DB_NAME), "rb") as src, open(raw, "wb") as out:
        try:
            reader = zstd.ZstdDecompressor().stream_reader(src)
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        except zstd.ZstdError as e:
            raise errors.RestoreError(f"backup {m['id']}: {DB_NAME} does not decompress ({e})") from e
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != db["content"]["sha256"]:
        raise errors.RestoreError(f"backup {m['id']}: the restored database does not match its hash")
    for f in m["files"]:
        if f["path"].startswith("blobs/"):
            h = f["path"].split("/", 1)[1]
            os.makedirs(os.path.join(target, "blobs", h[:2]), exist_ok=True)
            shutil.copyfile(os.path.join(dest, m["id"], f["path"]), os.path.join(target, "blobs", h[:2], h))


def restore(dest: str | os.PathLike[str], target: str | os.PathLike[str], *, until: Any = None,
            id: str | None = None) -> BackupInfo:
    """Restore a backup (the newest, or ``id``) as a new store at ``target``, which must not exist or be empty.

    Every file is checked against the manifest first and the restored store is
    verified before it appears at ``target``; any problem raises RestoreError
    and leaves ``target`` as it was.
    """
    dest, target = os.fspath(dest), os.fspath(target)
    m = _manifest(dest, _pick(dest, id))
    if until is not None and until != m["position"]:
        raise errors.RestoreError(f"point-in-time restore (until={until!r}) is not available in this version",
                                  hint=f"backup {m['id']} restores the state at position {m['position']}")
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise errors.RestoreError(f"{target!r} exists and is not empty; kuradb restores only into a new place")
    report = Report()
    _check_files(dest, m, report)
    if not report.ok:
        raise errors.RestoreError("; ".join(report.problems), hint="try an older backup (kuradb backups list)")
    parent = os.path.dirname(os.path.abspath(target)) or "."
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".kuradb-restore-", dir=parent)
    try:
        store_dir = os.path.join(work, "store")
        _restore_files(dest, m, store_dir)
        from .store import open as open_store

        with open_store(store_dir) as s:
            problems = _check_restored(s, m)
        if problems:
            raise errors.RestoreError(f"backup {m['id']}: the restored store fails verification: {problems[0]}",
                                      hint="try an older backup (kuradb backups list)")
        if os.path.isdir(target):
            os.rmdir(target)
        os.rename(store_dir, target)
        _fsync_dir(parent)
    except OSError as e:
        raise errors.RestoreError(f"restoring into {target!r} failed: {e.strerror or e}") from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _info(m)


# -- pruning ------------------------------------------------------------------------------

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


def prune(dest: str | os.PathLike[str], *, keep_last: int | None = None, keep_daily: int | None = None,
          keep_weekly: int | None = None) -> list[str]:
    """Delete the backups no rule keeps (and day-old half-written leftovers); returns the ids removed."""
    dest = os.fspath(dest)
    for name, value in (("keep_last", keep_last), ("keep_daily", keep_daily), ("keep_weekly", keep_weekly)):
        if value is not None and (type(value) is not int or value < 0):
            raise errors.ValidationError(f"{name} must be a non-negative integer, not {value!r}", path=name)
    if not any((keep_last, keep_daily, keep_weekly)):
        raise errors.ValidationError("prune needs keep_last, keep_daily or keep_weekly; it would delete everything",
                                     path="keep_last")
    backups = list_backups(dest)
    keep = _keep(backups, keep_last, keep_daily, keep_weekly)
    removed = [b.id for b in backups if b.id not in keep]
    for bid in removed:
        shutil.rmtree(os.path.join(dest, bid))
    for name in os.listdir(dest):  # a backup running now has a young .partial- folder: leave it
        path = os.path.join(dest, name)
        if name.startswith(_PARTIAL) and time.time() - os.path.getmtime(path) > 86_400:
            shutil.rmtree(path, ignore_errors=True)
    return removed


def __getattr__(name: str) -> Any:
    """``kuradb.backups.list(dest)``, as API.md names it, without shadowing the builtin in this module."""
    if name == "list":
        return list_backups
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
