"""The one exception hierarchy of kuradb, with a stable code per class.

    KuraError
     ├── NotFound              not_found
     ├── AlreadyExists         already_exists
     ├── ConflictError         conflict_detected   (.current: the Record now stored, or None)
     │    └── DuplicateKey     duplicate_key
     ├── ValidationError       invalid_data        (.path: where in the document)
     ├── QueryError            invalid_query
     ├── CorruptedData         corrupted_data
     ├── StorageFull           storage_full
     ├── PermissionDenied      permission_denied
     ├── ReadOnly              read_only
     ├── Busy                  busy                (another writer held the lock past the timeout)
     ├── UnsupportedVersion    unsupported_version (made by a newer kuradb; never reinterpreted)
     │    └── MigrationRequired migration_required (an older layout to migrate: kuradb migrate DIR)
     ├── SyncError             sync_failed
     ├── BackupError           backup_failed
     ├── RestoreError          restore_failed
     └── Closed                closed

The HTTP server and the CLI map these codes one to one onto status codes and
exit codes (see ``EXIT_CODES``); the core never knows about either.
"""
from __future__ import annotations

from typing import Any


class KuraError(Exception):
    """Base of every kuradb error: a message saying what and where, and a hint."""

    code = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class NotFound(KuraError):
    code = "not_found"


class AlreadyExists(KuraError):
    code = "already_exists"


class ConflictError(KuraError):
    code = "conflict_detected"

    def __init__(self, message: str, *, current: Any = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.current = current


class DuplicateKey(ConflictError):
    code = "duplicate_key"


class ValidationError(KuraError, ValueError):
    code = "invalid_data"

    def __init__(self, message: str, *, path: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class QueryError(KuraError, ValueError):
    code = "invalid_query"


class CorruptedData(KuraError):
    code = "corrupted_data"


class StorageFull(KuraError):
    code = "storage_full"


class PermissionDenied(KuraError):
    code = "permission_denied"


class ReadOnly(KuraError):
    code = "read_only"


class Busy(KuraError, TimeoutError):
    code = "busy"


class UnsupportedVersion(KuraError):
    code = "unsupported_version"


class MigrationRequired(UnsupportedVersion):
    code = "migration_required"


class SyncError(KuraError):
    code = "sync_failed"


class BackupError(KuraError):
    code = "backup_failed"


class RestoreError(KuraError):
    code = "restore_failed"


class Closed(KuraError):
    code = "closed"


class Unavailable(KuraError):
    """The database server cannot be reached (down, refusing, or the connection was lost mid-operation)."""

    code = "unavailable"


ALL: tuple[type[KuraError], ...] = (
    NotFound, AlreadyExists, ConflictError, DuplicateKey, ValidationError, QueryError,
    CorruptedData, StorageFull, PermissionDenied, ReadOnly, Busy, UnsupportedVersion,
    SyncError, BackupError, RestoreError, Closed, MigrationRequired, Unavailable,
)

# Process exit codes for the CLI: 1 is reserved for unexpected failures, 2 for usage errors.
EXIT_CODES: dict[str, int] = {cls.code: 10 + i for i, cls in enumerate(ALL)}
