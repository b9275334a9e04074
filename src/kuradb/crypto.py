"""AES-256-GCM in 1 MiB chunks: encrypted backups (a key per backup derived from the caller's) and blob files.

The caller's key is 32 raw bytes or a passphrase (``str``). Each backup draws a
random salt; its data key is HKDF-SHA256(raw key, salt), or scrypt(passphrase,
salt) for a passphrase. The manifest keeps the salt and an HMAC of a fixed
label under the data key, so a wrong key is refused (``PermissionDenied``)
before anything is decrypted, and nothing secret.

A sealed file is ``KURAENC1``, an 8-byte random nonce prefix, then chunks of
``4-byte length | ciphertext+tag``. Chunk ``i`` uses nonce ``prefix | i`` and
authenticates ``i`` and whether it is the last chunk, so a chunk that is
flipped, dropped, reordered or cut off fails to open.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import Any

from . import errors

MAGIC = b"KURAENC1"
_PLAIN = 1 << 20
_LEN = struct.Struct(">I")
_LABEL = b"kuradb backup key check v1"


def _aesgcm() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as e:
        raise errors.KuraError("encryption needs the cryptography package",
                               hint="pip install 'kuradb[encryption]'") from e
    return AESGCM


def _data_key(key: Any, params: dict[str, Any]) -> bytes:
    salt = bytes.fromhex(params["salt"])
    if params["kdf"] == "scrypt":
        if not isinstance(key, str):
            raise errors.PermissionDenied("this backup was encrypted with a passphrase; give it as a str")
        return hashlib.scrypt(key.encode(), salt=salt, n=1 << 15, r=8, p=1, maxmem=64 << 20, dklen=32)
    if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise errors.PermissionDenied("this backup was encrypted with a 32-byte key; give it as bytes")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return bytes(HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"kuradb backup").derive(bytes(key)))


def check_key_type(key: Any) -> None:
    if isinstance(key, str):
        if not key:
            raise errors.ValidationError("an encryption passphrase must not be empty", path="encryption_key")
    elif not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise errors.ValidationError("encryption_key must be 32 bytes (AES-256) or a passphrase str",
                                     path="encryption_key")


class Cipher:
    """The data key of one backup; ``writer``/``reader`` seal and open its files."""

    def __init__(self, data_key: bytes, params: dict[str, Any]) -> None:
        self._aead = _aesgcm()(data_key)
        self.params = params

    @classmethod
    def new(cls, key: Any) -> Cipher:
        check_key_type(key)
        _aesgcm()
        params: dict[str, Any] = {"cipher": "AES-256-GCM", "kdf": "scrypt" if isinstance(key, str) else "hkdf-sha256",
                                  "salt": os.urandom(16).hex()}
        data_key = _data_key(key, params)
        params["check"] = hmac.new(data_key, _LABEL, "sha256").hexdigest()
        return cls(data_key, params)

    @classmethod
    def open(cls, key: Any, params: dict[str, Any], bid: str) -> Cipher:
        if key is None:
            raise errors.PermissionDenied(f"backup {bid} is encrypted; give its encryption_key")
        data_key = _data_key(key, params)
        if not hmac.compare_digest(hmac.new(data_key, _LABEL, "sha256").hexdigest(), params.get("check", "")):
            raise errors.PermissionDenied(f"backup {bid}: wrong encryption key")
        return cls(data_key, params)

    def writer(self, sink: Any) -> _Writer:
        return _Writer(self._aead, sink)

    @classmethod
    def of(cls, data_key: bytes) -> Cipher:
        """A cipher for a key that is already a data key (a store's blob key)."""
        return cls(data_key, {})

    def reader(self, src: Any, where: str, error: type[errors.KuraError] = errors.RestoreError) -> _Reader:
        """Opens what ``writer`` sealed; damage raises ``error`` naming ``where``."""
        return _Reader(self._aead, src, where, error)

    def seal_file(self, source: str, target: str) -> None:
        with open(source, "rb") as src, open(target, "wb") as out:
            w = self.writer(out)
            while chunk := src.read(_PLAIN):
                w.write(chunk)
            w.close()
            out.flush()
            os.fsync(out.fileno())

    def open_file(self, source: str, target: str, where: str) -> None:
        with open(source, "rb") as src, open(target, "wb") as out:
            r = self.reader(src, where)
            while chunk := r.read(_PLAIN):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())


def _nonce(prefix: bytes, i: int) -> bytes:
    return prefix + struct.pack(">I", i)


class _Writer:
    def __init__(self, aead: Any, sink: Any) -> None:
        self._aead, self._sink = aead, sink
        self._prefix = os.urandom(8)
        self._buf = bytearray()
        self._i = 0
        sink.write(MAGIC + self._prefix)

    def _emit(self, plain: bytes, last: bool) -> None:
        if self._i >= 0xFFFFFFFF:
            raise errors.KuraError("a file over 4 PiB cannot be sealed")
        sealed = self._aead.encrypt(_nonce(self._prefix, self._i), plain, struct.pack(">I?", self._i, last))
        self._sink.write(_LEN.pack(len(sealed)) + sealed)
        self._i += 1

    def write(self, data: bytes) -> int:
        self._buf += data
        while len(self._buf) > _PLAIN:
            self._emit(bytes(self._buf[:_PLAIN]), False)
            del self._buf[:_PLAIN]
        return len(data)

    def close(self) -> None:
        self._emit(bytes(self._buf), True)
        self._buf.clear()

    def flush(self) -> None:
        pass


class _Reader:
    def __init__(self, aead: Any, src: Any, where: str, error: type[errors.KuraError]) -> None:
        self._aead, self._src, self._where, self._error = aead, src, where, error
        head = src.read(len(MAGIC) + 8)
        if len(head) != len(MAGIC) + 8 or head[:len(MAGIC)] != MAGIC:
            raise error(f"{where} is not a file kuradb encrypted")
        self._prefix = head[len(MAGIC):]
        self._i = 0
        self._buf = b""
        self._done = False

    def _next(self) -> None:
        n = self._src.read(_LEN.size)
        if len(n) != _LEN.size:
            raise self._error(f"{self._where} is cut short (chunk {self._i} missing)")
        sealed = self._src.read(_LEN.unpack(n)[0])
        from cryptography.exceptions import InvalidTag
        for last in (False, True):
            try:
                self._buf = self._aead.decrypt(_nonce(self._prefix, self._i), sealed,
                                               struct.pack(">I?", self._i, last))
            except InvalidTag:
                continue
            self._done = last
            self._i += 1
            return
        raise self._error(f"{self._where}: chunk {self._i} fails authentication (damaged or altered)")

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if not self._buf:
                if self._done:
                    break
                self._next()
                continue
            take = len(self._buf) if size < 0 else min(size - len(out), len(self._buf))
            out += self._buf[:take]
            self._buf = self._buf[take:]
        return bytes(out)

    def seek(self, pos: int) -> None:
        """Go to plaintext offset ``pos`` (before the end) of a seekable source: every chunk but the
        last holds exactly 1 MiB, so chunk ``pos // 1 MiB`` starts at a computed offset."""
        i = pos // _PLAIN
        self._src.seek(len(MAGIC) + 8 + i * (_LEN.size + _PLAIN + 16))
        self._i, self._buf, self._done = i, b"", False
        self._next()
        self._buf = self._buf[pos % _PLAIN:]

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        memoryview(b)[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
