"""The on-disk format of a backup directory: manifests, listing, and the file streams.

``DEST/<id>/manifest.json`` names the backup's kind, its parent, the change-log
range it covers, and every file with its size and SHA-256 (of the bytes on disk,
so ``verify`` checks them without a key). Files are zstd-compressed and, when the
backup is encrypted, sealed with AES-256-GCM in 1 MiB chunks (``crypto.py``).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson

from .. import errors

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: partials are not locked, prune removes day-old ones
    fcntl = None  # type: ignore[assignment]

FORMAT = 2          # 2 adds incremental/differential kinds, the range start and encryption
FORMATS = (1, 2)    # manifests this version reads
MANIFEST = "manifest.json"
VERIFIED = "verified.json"        # beside the manifest: the outcome of the last backups.verify (not hashed)
DB_NAME = "kura.db.zst"           # full: the database
CHANGES_NAME = "changes.db.zst"   # incremental/differential: the changes since the parent
PARTIAL = ".partial-"
PARTIAL_LOCK = ".writing"       # in a partial folder: flocked by the process writing it
CREATING = ".creating-"         # a partial folder before its lock is taken (see Partial.create)
CHUNK = 1 << 20
LEVEL = 1  # zstd level: level 3 compresses no better and is 1.4x slower (DECISIONS.md)
KINDS = ("full", "incremental", "differential")


@dataclass(frozen=True)
class BackupInfo:
    """One backup: its state is the store's at change-log ``position``.

    ``since`` is where the changes it holds start (0 for a full backup: it holds all of them).
    """

    id: str
    kind: str
    parent: str | None
    position: int
    created: datetime
    size: int
    since: int = 0
    encrypted: bool = False
    damaged: tuple[str, ...] = ()   # taken with allow_damaged=True of a store found damaged: what was found

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "created": self.created.isoformat()}


def zstd() -> Any:
    try:
        import zstandard
    except ImportError as e:
        raise errors.BackupError("backups need the zstandard package",
                                 hint="pip install 'kuradb[backup]'") from e
    return zstandard


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def info(m: dict[str, Any]) -> BackupInfo:
    return BackupInfo(m["id"], m["kind"], m["parent"], m["position"], datetime.fromisoformat(m["created"]),
                      sum(f["size"] for f in m["files"]), m.get("since", 0),
                      m.get("encryption") is not None or bool(m.get("store_encrypted")), tuple(m.get("damaged") or ()))


def read_manifest(dest: str, bid: str) -> dict[str, Any]:
    path = os.path.join(dest, bid, MANIFEST)
    try:
        with open(path, "rb") as f:
            m = orjson.loads(f.read())
    except FileNotFoundError as e:
        raise errors.NotFound(f"no backup {bid!r} in {dest!r}") from e
    except (OSError, orjson.JSONDecodeError) as e:
        raise errors.CorruptedData(f"backup {bid}: {MANIFEST} cannot be read ({e})") from e
    if isinstance(m, dict) and m.get("format", 0) >= 2 and m.get("checksum") != _checksum(m):
        raise errors.CorruptedData(f"backup {bid}: {MANIFEST} does not match its own checksum (it was changed"
                                   " or damaged)")
    if not isinstance(m, dict) or m.get("format") not in FORMATS or m.get("id") != bid or not isinstance(
            m.get("files"), list) or m.get("kind") not in KINDS or not isinstance(m.get("position"), int):
        raise errors.CorruptedData(f"backup {bid}: {MANIFEST} is not a kuradb backup manifest this version reads"
                                   f" (formats {', '.join(map(str, FORMATS))})")
    return m


def _checksum(m: dict[str, Any]) -> str:
    """SHA-256 of the manifest without its checksum: a flipped byte anywhere in it is caught."""
    return hashlib.sha256(orjson.dumps({k: v for k, v in m.items() if k != "checksum"},
                                       option=orjson.OPT_SORT_KEYS)).hexdigest()


def write_manifest(work: str, m: dict[str, Any]) -> None:
    m["checksum"] = _checksum(m)
    with open(os.path.join(work, MANIFEST), "wb") as f:
        f.write(orjson.dumps(m, option=orjson.OPT_INDENT_2))
        f.flush()
        os.fsync(f.fileno())


def record_verified(dest: str, bid: str, problems: list[str]) -> None:
    """Keep what ``backups.verify`` found of backup ``bid`` beside its manifest (prune reads it).
    Best effort: a backup directory on read-only media is verified all the same."""
    path = os.path.join(dest, bid, VERIFIED)
    try:
        with open(path + ".tmp", "wb") as f:
            f.write(orjson.dumps({"at": time.time(), "ok": not problems, "problems": problems[:20]}))
        os.replace(path + ".tmp", path)
    except OSError:
        pass


def failed_verification(dest: str, bid: str) -> bool:
    """Whether the last ``backups.verify`` of backup ``bid`` found it cannot be restored."""
    try:
        with open(os.path.join(dest, bid, VERIFIED), "rb") as f:
            return orjson.loads(f.read()).get("ok") is False
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return False


def newest_name(dest: str) -> str | None:
    """The newest backup folder in ``dest`` (ids are time-ordered), readable or not."""
    names = [n for n in os.listdir(dest) if not n.startswith(".") and os.path.isfile(os.path.join(dest, n, MANIFEST))]
    return max(names, default=None)


def manifests(dest: str) -> list[dict[str, Any]]:
    """The readable manifests of the complete backups in ``dest``, oldest first."""
    if not os.path.isdir(dest):
        raise errors.NotFound(f"no backup directory {dest!r}")
    out = []
    for name in sorted(os.listdir(dest)):
        if name.startswith(".") or not os.path.isfile(os.path.join(dest, name, MANIFEST)):
            continue
        try:
            out.append(read_manifest(dest, name))
        except errors.CorruptedData:
            continue  # shown by verify, not offered for restore
    return out


def sha256_of(path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def check_files(dest: str, m: dict[str, Any]) -> list[str]:
    """Every file of the backup is there with the size and hash its manifest says."""
    problems = []
    for f in m["files"]:
        path = os.path.join(dest, m["id"], f["path"])
        try:
            digest, size = sha256_of(path)
        except FileNotFoundError:
            problems.append(f"backup {m['id']}: {f['path']} is missing")
            continue
        if (digest, size) != (f["sha256"], f["size"]):
            problems.append(f"backup {m['id']}: {f['path']} does not match its hash in the manifest")
    return problems


class Hashing:
    """A file wrapper that hashes and counts what is written through it."""

    def __init__(self, f: Any) -> None:
        self.f, self.digest, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return int(self.f.write(data))


def pack(raw: str, target: str, sealer: Any = None) -> dict[str, Any]:
    """zstd ``raw`` (all cores) into ``target``, sealed when ``sealer`` is given; hashes both sides; fsynced.

    Returns the manifest's file entry (without its path)."""
    z = zstd()
    digest, size = hashlib.sha256(), 0
    with open(target, "wb") as out:
        sink = Hashing(out)
        stream: Any = sealer.writer(sink) if sealer is not None else sink
        with open(raw, "rb") as src, z.ZstdCompressor(level=LEVEL, threads=-1).stream_writer(
                stream, closefd=False) as w:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                w.write(chunk)
        if sealer is not None:
            stream.close()
        out.flush()
        os.fsync(out.fileno())
    return {"size": sink.size, "sha256": sink.digest.hexdigest(), "content": {"size": size,
                                                                           "sha256": digest.hexdigest()}}


def unpack(source: str, target: str, entry: dict[str, Any], where: str, opener: Any = None) -> None:
    """The inverse of ``pack``: ``target`` gets the original bytes, checked against their hash."""
    z = zstd()
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as out:
        stream: Any = opener.reader(src, where) if opener is not None else src
        try:
            reader = z.ZstdDecompressor().stream_reader(stream)
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        except z.ZstdError as e:
            raise errors.RestoreError(f"{where} does not decompress ({e})") from e
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != entry["content"]["sha256"]:
        raise errors.RestoreError(f"{where}: the restored bytes do not match their hash in the manifest")


class Partial:
    """``DEST/.partial-<id>`` while a backup is written into it, flocked so a dead writer's is told from a live one's.

    ``create()`` makes it under a staging name, takes the lock inside and only
    then renames it to ``.partial-<id>``, so a partial folder never exists
    without its lock. ``commit(final)`` renames it into place (the lock file is
    unlinked first: a finished backup holds only its own files); ``discard()``
    removes it.
    """

    def __init__(self, dest: str, bid: str) -> None:
        self.path = os.path.join(dest, PARTIAL + bid)
        self._staging = os.path.join(dest, CREATING + bid)
        self._fd: int | None = None

    def create(self) -> None:
        if fcntl is None:
            os.makedirs(os.path.join(self.path, "blobs"))
            return
        os.makedirs(os.path.join(self._staging, "blobs"))
        self._fd = os.open(os.path.join(self._staging, PARTIAL_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.rename(self._staging, self.path)

    def commit(self, final: str) -> None:
        if self._fd is not None:
            os.unlink(os.path.join(self.path, PARTIAL_LOCK))
        os.rename(self.path, final)
        self._release()

    def discard(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)
        shutil.rmtree(self.path, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def remove_stale_partials(dest: str) -> list[str]:
    """Remove the ``.partial-*`` folders in ``dest`` whose writer is gone (killed, crashed); returns their names.

    A partial whose lock is held is being written now and stays. One without a
    lock file was left by an older kuradb and stays too (``prune`` removes those
    once they are a day old). A staging folder lives for microseconds: one an
    hour old is from a process killed in them.
    """
    if fcntl is None:
        return []
    removed = []
    for name in sorted(os.listdir(dest)):
        path = os.path.join(dest, name)
        if name.startswith(CREATING):
            try:
                if time.time() - os.path.getmtime(path) > 3600:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(name)
            except OSError:
                pass
            continue
        if not name.startswith(PARTIAL):
            continue
        try:
            fd = os.open(os.path.join(path, PARTIAL_LOCK), os.O_RDWR)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue   # its writer is alive
            if os.fstat(fd).st_nlink == 0:
                continue   # its writer finished (committed or discarded it) just now
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
        finally:
            os.close(fd)
    return removed


def keys_needed(dest: str) -> set[str]:
    """Which keys the backups in ``dest`` need: ``"store"`` for backups of an encrypted store (they open with
    the store's key), ``"backup"`` for encrypted backups of a plain store (their own key)."""
    return {"store" if m.get("store_encrypted") else "backup" for m in manifests(dest)
            if m.get("store_encrypted") or m.get("encryption") is not None}
