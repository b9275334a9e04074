"""Blobs: content-addressed (SHA-256), deduplicated, verified on read, collected only after commit.

Small blobs live inline in the database; larger ones are immutable files under
``DIR/blobs/``, written and renamed into place inside the write transaction
that records them, and deleted only by ``gc`` after the commit that removed
their row (habit 1 of STYLE.md, as python-diskcache does).
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from typing import IO, Any, BinaryIO

from . import errors
from .backend import Backend, NewEntry
from .changelog import ChangeLog
from .crypto import Cipher
from .encoding import BlobRef, blob_hash_of
from .opstats import OpStats, instrumented

INLINE_MAX = 64 * 1024  # the SQLite backend keeps blobs up to this size in the database (its blob_inline_max)
_CHUNK = 1024 * 1024
BLOB_KEY = "blob_key"   # meta row holding an encrypted store's blob key (hex), inside its encrypted database


def _os_error(e: OSError, what: str) -> errors.KuraError:
    """Translate a file-system error while writing blob files."""
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        return errors.StorageFull(f"the disk is full while writing {what}", hint="free space; nothing was stored")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return errors.PermissionDenied(f"cannot write {what}: {e.strerror}")
    return errors.KuraError(f"cannot write {what}: {e.strerror}")


def _hex_hash(value: Any) -> str:
    h = blob_hash_of(value) if not isinstance(value, str) else value
    if h is None or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise errors.ValidationError(f"{value!r} is not a blob hash or BlobRef", path="hash")
    return h


class _BlobReader(io.RawIOBase):
    """A blob file's content, seekable. Read in order from the start, it is checked against its hash
    at the end (CorruptedData); the first seek elsewhere checks the whole file first, once."""

    def __init__(self, open_plain: Callable[[], Any], hash: str, size: int) -> None:
        self._open, self._hash, self._size = open_plain, hash, size
        self._f = open_plain()
        self._h: Any = hashlib.sha256()   # None once the content is known good, or order was lost
        self._pos = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, b: Any) -> int:
        n = 0 if self._eof else (self._f.readinto(b) or 0)
        if self._h is not None:
            if n:
                self._h.update(memoryview(b)[:n])
            else:
                self._check(self._h, self._pos)
                self._h = None
        self._pos += n
        return n

    def _check(self, digest: Any, length: int) -> None:
        if length != self._size or digest.hexdigest() != self._hash:
            raise errors.CorruptedData(f"blob {self._hash}: file content does not match its hash",
                                       hint="restore the store from a backup")

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence] + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target == self._pos:
            return target
        if self._h is not None:     # random access from now on: check the whole content first
            digest, length = hashlib.sha256(), 0
            with self._open() as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    length += len(chunk)
            self._check(digest, length)
            self._h = None
        self._eof = target >= self._size
        if not self._eof:
            self._f.seek(target)
        self._pos = target
        return target

    def close(self) -> None:
        self._f.close()
        super().close()


_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
                           r"(\s*;[\x20-\x7e]*)?")


def check_content_type(value: Any) -> str | None:
    """A MIME type like ``image/png`` (RFC 6838 names, parameters allowed), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 255 or not _CONTENT_TYPE.fullmatch(value):
        raise errors.ValidationError(f"content_type must be a MIME type like 'image/png', not {value!r}",
                                     path="content_type")
    return value


class BlobStore:
    """``store.blobs``: put, get, open, stat, exists, gc."""

    def __init__(self, backend: Backend, log: ChangeLog, directory: str, ops: OpStats) -> None:
        self._backend = backend
        self._log = log
        self._ops = ops
        self.directory = directory
        # The largest blob kept in the database; None: every blob is (a server backend: every host must see it).
        self._inline_max: int | None = backend.blob_inline_max
        self._cipher: Cipher | None = None   # see cipher()

    def path(self, h: str) -> str:
        """Where blob ``h`` is kept when it is a file (it may not be one)."""
        return os.path.join(self.directory, h[:2], h)

    # -- writing -----------------------------------------------------------------------

    @instrumented("blobs.put")
    def put(self, source: Any, *, content_type: str | None = None) -> BlobRef:
        """Store bytes, a binary file object or a file path; returns its BlobRef (deduplicated).

        The same bytes are stored once, with the content type of the put that stored them:
        a later put of those bytes naming another content type raises ConflictError.
        """
        content_type = check_content_type(content_type)
        data: bytes | None
        tmp: str | None
        if isinstance(source, (bytes, bytearray, memoryview)):
            raw = bytes(source)
            h, size, tmp, data = hashlib.sha256(raw).hexdigest(), len(raw), None, raw
            if self._inline_max is not None and size > self._inline_max:
                tmp, data = self._write_temp(raw), None
        elif isinstance(source, (str, os.PathLike)):
            try:
                with open(source, "rb") as f:
                    data, h, size, tmp = self._spool(f)
            except (UnicodeError, ValueError) as e:    # a path with a lone surrogate or a NUL
                raise errors.ValidationError(f"blob source {source!r} is not a usable path ({e})", path="data") from e
            except OSError as e:
                raise errors.NotFound(f"cannot read blob source {os.fspath(source)!r}: {e.strerror}") from e
        elif hasattr(source, "read"):
            data, h, size, tmp = self._spool(source)
        else:
            raise errors.ValidationError(
                f"a blob must be bytes, a binary file or a path, not {type(source).__name__}", path="data")
        try:
            with self._backend.write() as tx:
                row = tx.blob(h)
                if row is not None:
                    if content_type is not None and row[1] != content_type:
                        raise errors.ConflictError(
                            f"blob {h} is stored with content type {row[1]!r}, not {content_type!r}",
                            current=BlobRef(h, row[0], row[1]),
                            hint="the same bytes are stored once, with the content type of the put that"
                            " stored them; put them without content_type to refer to them")
                    return BlobRef(h, row[0], row[1])
                if tmp is not None:
                    self._place(tmp, h)
                    tmp = None
                tx.put_blob(h, size, content_type, time.time_ns() // 1000, data)
                self._log.append(tx, [NewEntry("blob", "put", None, None, h)])
                return BlobRef(h, size, content_type)
        finally:
            if tmp is not None:
                os.unlink(tmp)

    def _spool(self, f: IO[bytes]) -> tuple[bytes | None, str, int, str | None]:
        """Read a stream while hashing; small ones stay in memory, large ones go to a temp file."""
        h = hashlib.sha256()
        buf = bytearray()
        out: Any = None
        sink: Any = None
        size = 0
        try:
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    break
                if not isinstance(chunk, (bytes, bytearray)):
                    raise errors.ValidationError("a blob file must be opened in binary mode", path="data")
                h.update(chunk)
                size += len(chunk)
                if out is None:
                    buf += chunk
                    if self._inline_max is not None and len(buf) > self._inline_max:
                        out = self._temp()
                        sink = self._sealing(out)
                        sink.write(buf)
                        buf = bytearray()
                else:
                    sink.write(chunk)
            if out is None:
                return bytes(buf), h.hexdigest(), size, None
            if sink is not out:
                sink.close()
            self._sync(out)
            out.close()
            return None, h.hexdigest(), size, out.name
        except BaseException as e:
            if out is not None:
                out.close()
                _unlink(out.name)
            if isinstance(e, OSError):
                raise _os_error(e, "a blob") from e
            raise

    def _write_temp(self, data: bytes) -> str:
        out = self._temp()
        try:
            with out:
                sink = self._sealing(out)
                sink.write(data)
                if sink is not out:
                    sink.close()
                self._sync(out)
        except OSError as e:
            _unlink(out.name)
            raise _os_error(e, "a blob") from e
        return out.name

    def cipher(self, create: bool = False) -> Cipher | None:
        """What seals the blob files of an encrypted store (None for a plain one). Its key lives in
        the encrypted database, made by the first blob file written (``create``)."""
        if self._cipher is None and self._backend.key is not None:
            value = self._backend.reader().meta(BLOB_KEY)
            if value is not None:
                self._cipher = Cipher.of(bytes.fromhex(value))
            elif create:
                with self._backend.write() as tx:
                    value = tx.meta(BLOB_KEY)
                    if value is None:
                        value = os.urandom(32).hex()
                        tx.set_meta(BLOB_KEY, value)
                    self._cipher = Cipher.of(bytes.fromhex(value))
        return self._cipher

    def _sealing(self, out: Any) -> Any:
        """``out`` itself, or a writer sealing into it when the store is encrypted."""
        cipher = self.cipher(create=True)
        return out if cipher is None else cipher.writer(out)

    def _file(self, h: str, path: str | None = None) -> Any:
        """The plaintext stream of blob file ``h`` (opened, unverified); FileNotFoundError if missing."""
        f = open(path or self.path(h), "rb")
        cipher = self.cipher()
        if cipher is None:
            return f
        try:
            return cipher.reader(f, f"blob {h}", errors.CorruptedData)
        except BaseException:
            f.close()
            raise

    def file_digest(self, h: str, path: str | None = None) -> tuple[str, int]:
        """SHA-256 and length of blob file ``h``'s content (decrypted when sealed); ``path``: a copy of it."""
        digest, size = hashlib.sha256(), 0
        with self._file(h, path) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def _temp(self) -> Any:
        tmpdir = os.path.join(self.directory, "tmp")
        try:
            os.makedirs(tmpdir, exist_ok=True)
            return tempfile.NamedTemporaryFile(dir=tmpdir, delete=False, prefix="put-")
        except OSError as e:
            raise _os_error(e, "a blob") from e

    def _sync(self, f: Any) -> None:
        if self._backend.durability != "off":
            f.flush()
            os.fsync(f.fileno())

    def _place(self, tmp: str, h: str) -> None:
        path = self.path(h)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(tmp, path)
            if self._backend.durability == "full":
                fd = os.open(os.path.dirname(path), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as e:
            raise _os_error(e, f"blob {h}") from e

    # -- reading -----------------------------------------------------------------------

    def _row(self, ref: Any, data: bool = False) -> tuple[str, Any]:
        """The blob's hash and its row (size, content type, and the inline bytes if ``data``); NotFound if absent."""
        h = _hex_hash(ref)
        row = self._backend.reader().blob(h, data)
        if row is None:
            raise errors.NotFound(f"blob {h} does not exist")
        return h, row

    def stat(self, ref: Any) -> BlobRef:
        h, row = self._row(ref)
        return BlobRef(h, row[0], row[1])

    def exists(self, ref: Any) -> bool:
        try:
            self._row(ref)
        except errors.NotFound:
            return False
        return True

    @instrumented("blobs.get")
    def get(self, ref: Any) -> bytes:
        """The blob's bytes, verified against its hash (CorruptedData on mismatch)."""
        with self.open(ref) as f:
            return f.read()

    @instrumented("blobs.open")
    def open(self, ref: Any) -> BinaryIO:
        """A seekable binary stream of the blob. Read in order, it raises CorruptedData when the end
        shows a mismatch; the first seek elsewhere checks the whole content first."""
        h, (size, _, data) = self._row(ref, data=True)  # one read: an inline blob's bytes come with it
        if data is not None:
            if len(data) != size or hashlib.sha256(data).hexdigest() != h:
                raise errors.CorruptedData(f"blob {h}: stored bytes do not match their hash")
            return io.BytesIO(data)
        try:
            raw = _BlobReader(lambda: self._file(h), h, size)
        except FileNotFoundError as e:
            raise errors.CorruptedData(f"blob {h}: its file {self.path(h)!r} is missing",
                                       hint="restore from a backup") from e
        return io.BufferedReader(raw, _CHUNK)  # type: ignore[return-value]

    # -- garbage collection ------------------------------------------------------------

    @instrumented("blobs.gc")
    def gc(self, *, grace: timedelta = timedelta(hours=1)) -> int:
        """Remove blobs no record version refers to, older than ``grace``; returns how many.

        Rows go in one transaction; their files are deleted only after it
        committed, under the write lock, after checking no new row appeared.
        Files without a row (from rolled-back puts or crashes) are removed too.
        """
        if not isinstance(grace, timedelta) or grace < timedelta(0):
            raise errors.ValidationError(f"grace must be a timedelta of 0 or more, not {grace!r}", path="grace",
                                         hint="e.g. grace=timedelta(hours=1)")
        cutoff = time.time_ns() // 1000 - int(grace.total_seconds() * 1_000_000)
        with self._backend.transaction() as tx:
            rows = tx.delete_unreferenced_blobs(cutoff)
            if rows:
                self._log.append(tx, [NewEntry("blob", "delete", None, None, h) for h, _ in rows])
            # Files go only once the outermost transaction has committed.
            files = [h for h, in_file in rows if in_file]
            tx.after_commit.append(lambda: self._delete_files(files, cutoff / 1_000_000))
        return len(rows)

    def _delete_files(self, hashes: list[str], cutoff: float) -> None:
        """Unlink collected files, under the write lock, unless a new row appeared meanwhile."""
        with self._backend.transaction() as tx:
            for h in hashes:
                if tx.blob(h) is None:
                    _unlink(self.path(h))
            self._remove_orphans(tx, cutoff)

    def _remove_orphans(self, tx: Any, cutoff: float) -> None:
        if not os.path.isdir(self.directory):
            return
        for entry in os.scandir(self.directory):
            if not entry.is_dir():
                continue
            for f in os.scandir(entry.path):
                if f.stat().st_mtime >= cutoff:
                    continue
                if entry.name == "tmp" or tx.blob(f.name) is None:
                    _unlink(f.path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
