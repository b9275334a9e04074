"""Encryption at rest: ``kuradb.open(dir, encryption_key=...)``.

The database and its WAL are encrypted page by page by SQLite3 Multiple Ciphers
(the ``apsw-sqlite3mc`` build of apsw) with AEGIS-256, which authenticates
every page (a flipped byte is an error, not wrong data). A 32-byte key is given to it raw; a passphrase goes
through its own key derivation (PBKDF2-SHA256), ~20 ms per connection.

Blob files are sealed with AES-256-GCM (``backups/crypto.py``'s chunked format)
under a random blob key kept in the encrypted database, so changing the store's
key (``rekey``) rewrites no blob file. Content-addressed names stay: a blob
file's name is the SHA-256 of its plaintext, which tells someone holding a
candidate file that the store has it, and nothing else.

A wrong or missing key raises ``PermissionDenied`` before anything is written:
the file header says whether a database is encrypted (a plain one starts with
``SQLite format 3``), and a keyed connection reads one page before it is used.
"""
from __future__ import annotations

import os
from typing import Any

import apsw

from ... import errors

PLAIN_HEADER = b"SQLite format 3\x00"
CIPHER = "aegis"        # AEGIS-256, authenticated: single put 0.91x plain, against 0.61x for ChaCha20 (DECISIONS.md)
BLOB_KEY = "blob_key"   # meta row holding the blob key (hex), inside the encrypted database


def available() -> bool:
    return hasattr(apsw, "mc_version")


def check_key(key: Any) -> None:
    if isinstance(key, str):
        if not key:
            raise errors.ValidationError("an encryption passphrase must not be empty", path="encryption_key")
    elif not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise errors.ValidationError("encryption_key must be 32 bytes or a passphrase str", path="encryption_key")
    if not available():
        raise errors.KuraError("encryption at rest needs the SQLite3 Multiple Ciphers build of apsw, and this"
                               " apsw is the plain one (another package installed apsw over it)",
                               hint="pip install --force-reinstall --no-deps apsw-sqlite3mc")
    from ...crypto import _aesgcm

    _aesgcm()   # blob files are sealed with AES-256-GCM: say so before anything is opened


def pragma(key: Any, verb: str = "key") -> str:
    """The ``PRAGMA key`` (or ``rekey``) statement for ``key``: raw for bytes, a passphrase for str."""
    if isinstance(key, (bytes, bytearray)):
        return f"PRAGMA {verb}=\"x'{bytes(key).hex()}'\""
    return f"PRAGMA {verb}='{key.replace(chr(39), chr(39) * 2)}'"


def key_value(key: Any) -> str:
    """``key`` as the value of ``ATTACH ... KEY ?`` (the same key as ``pragma(key)``)."""
    return f"x'{bytes(key).hex()}'" if isinstance(key, (bytes, bytearray)) else str(key)


def connect(path: str, key: Any, flags: int | None = None) -> apsw.Connection:
    """A connection to ``path`` (a store's database or a copy of one), unlocked when ``key`` is given."""
    conn = apsw.Connection(path) if flags is None else apsw.Connection(path, flags=flags)
    # Plans never depend on bound values. Without this, a statement whose planning looked at a
    # parameter (a partial index's WHERE, an ORDER BY an index serves) is prepared again on every
    # execution: 16 us instead of 3.4 for an indexed find with no hits (docs/PERFORMANCE.md).
    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_QPSG, 1)
    if key is not None:
        try:
            unlock(conn, key, path)
        except BaseException:
            conn.close()
            raise
    return conn


def _head(path: str) -> bytes:
    """The first page's worth of the database file (empty when there is none)."""
    try:
        with open(path, "rb") as f:
            return f.read(4096)
    except (FileNotFoundError, NotADirectoryError):
        return b""
    except OSError as e:
        raise errors.PermissionDenied(f"cannot read {path!r}: {e.strerror}") from e


def _looks_encrypted(head: bytes) -> bool:
    """An encrypted page is indistinguishable from random bytes; a file that is neither a plain
    database nor random-looking is "not encrypted" (and fails as corrupt when opened)."""
    return not head.startswith(PLAIN_HEADER) and len(head) >= 512 and len(set(head)) > min(200, len(head) // 4)


def is_encrypted(path: str) -> bool | None:
    """True/False for an existing database file, None when there is none (or it is empty)."""
    head = _head(path)
    return _looks_encrypted(head) if head else None


def before_open(path: str, key: Any) -> None:
    """Refuse a key/store mismatch before a connection could touch the files."""
    if key is not None:
        check_key(key)
    head = _head(path)
    if key is None and _looks_encrypted(head):
        raise errors.PermissionDenied(f"the store at {os.path.dirname(path)!r} is encrypted (or its database"
                                      " is random bytes)",
                                      hint="open it with encryption_key= (on the command line: kuradb --key-file F)")
    if key is not None and head.startswith(PLAIN_HEADER):
        raise errors.PermissionDenied(f"the store at {os.path.dirname(path)!r} is not encrypted",
                                      hint="kuradb rekey DIR --new-key-file F encrypts it; or open it without a key")


def unlock(conn: apsw.Connection, key: Any, path: str) -> None:
    """Give ``conn`` its key and prove it by reading the schema page."""
    conn.execute(f"PRAGMA cipher='{CIPHER}'")
    conn.execute(pragma(key))
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except apsw.NotADBError as e:
        raise errors.PermissionDenied(f"wrong encryption key for the store at {os.path.dirname(path)!r}") from e


def blob_key(conn: Any) -> bytes:
    """The store's blob key, made on first use (inside the caller's write transaction)."""
    row = conn.execute("SELECT value FROM meta WHERE key=?", (BLOB_KEY,)).fetchone()
    if row is not None:
        return bytes.fromhex(row[0])
    key = os.urandom(32)
    conn.execute("INSERT INTO meta(key, value) VALUES(?, ?)", (BLOB_KEY, key.hex()))
    return key


def rekey(directory: str, old: Any, new: Any) -> int:
    """Change the key of the store in ``directory`` from ``old`` to ``new`` (``old`` None: encrypt a plain
    store). Offline: no other process may have the store open. Returns how many blob files were sealed.

    SQLite3 Multiple Ciphers rekeys the database in rollback-journal mode, in one
    transaction: a crash leaves the old key or the new one, never a mix. Blob files
    are sealed under a blob key kept inside the database, so only encrypting a plain
    store touches them (each one replaced atomically; running rekey again after a
    crash finishes the job).
    """
    from ...crypto import MAGIC, Cipher

    if new is None:
        raise errors.ValidationError("rekey needs a new key; kuradb does not decrypt a store in place",
                                     path="encryption_key", hint="restore a backup into a store opened without one")
    check_key(new)
    path = os.path.join(directory, "kura.db")
    if is_encrypted(path) is None:
        raise errors.NotFound(f"no kuradb store at {directory!r}")
    before_open(path, old)
    conn = connect(path, old, apsw.SQLITE_OPEN_READWRITE)
    sealed = 0
    try:
        busy = errors.PermissionDenied(f"the store at {directory!r} is open elsewhere; close it before rekey")
        try:
            mode = conn.execute("PRAGMA journal_mode=DELETE").fetchall()[0][0]
            conn.execute("BEGIN EXCLUSIVE")
        except apsw.BusyError as e:
            raise busy from e
        if str(mode).lower() != "delete":   # another connection keeps it in WAL mode
            conn.execute("ROLLBACK")
            raise busy
        try:
            if old is None:
                cipher = Cipher.of(blob_key(conn))
                blobs = os.path.join(directory, "blobs")
                for d, _, names in os.walk(blobs):
                    for name in names:
                        if len(name) != 64 or os.path.basename(d) == "tmp":
                            continue
                        file = os.path.join(d, name)
                        if _opens(cipher, file, MAGIC):
                            continue    # sealed by a rekey that was cut short
                        cipher.seal_file(file, file + ".sealing")
                        os.replace(file + ".sealing", file)
                        sealed += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute(f"PRAGMA cipher='{CIPHER}'")
        conn.execute(pragma(new, "rekey"))
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
    finally:
        conn.close()
    connect(path, new, apsw.SQLITE_OPEN_READONLY).close()   # proves the new key opens it
    return sealed


def _opens(cipher: Any, file: str, magic: bytes) -> bool:
    """Whether ``file`` is already sealed under ``cipher`` (a plain blob may start with the magic too)."""
    with open(file, "rb") as f:
        if f.read(len(magic)) != magic:
            return False
        f.seek(0)
        try:
            with cipher.reader(f, file, errors.CorruptedData) as r:
                while r.read(1 << 20):
                    pass
        except errors.CorruptedData:
            return False
    return True
