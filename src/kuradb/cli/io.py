"""What the CLI reads and writes: JSON arguments, JSONL files, key files, and output as JSON or for a terminal.

Every failure to read or write a path the user named becomes a typed error
(``os_error``), never a traceback.
"""
from __future__ import annotations

import errno
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, TextIO

import orjson

from .. import errors


class Output:
    """stdout as JSON (piped, or with --json) or as a readable view (a terminal)."""

    def __init__(self, stream: TextIO, force_json: bool) -> None:
        self.stream = stream
        self.json = force_json or not stream.isatty()

    def emit(self, value: Any) -> None:
        option = 0 if self.json else orjson.OPT_INDENT_2
        self.stream.write(orjson.dumps(value, default=jsonable, option=option).decode() + "\n")

    def table(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        """A JSON list when piped; aligned columns (the keys ``columns`` names) on a terminal."""
        if self.json:
            self.emit(rows)
            return
        cells = [[cell(r.get(c)) for c in columns] for r in rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
        self.write("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        for row in cells:
            self.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())

    def write(self, line: str) -> None:
        self.stream.write(line + "\n")


def jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):  # Record, Change, Report
        return value.to_dict()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError


def cell(value: Any, width: int = 60) -> str:
    """A table cell: text as it is, times as ISO 8601 (as the JSON output has them), nothing for None."""
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = orjson.dumps(value, default=jsonable).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


# -- reading arguments ------------------------------------------------------------------


def read_json(text: str | bytes, where: str, hint: str | None = None) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise errors.ValidationError(f"{where} is not valid JSON: {e}", path=where, hint=hint) from e


def stdin_text() -> str:
    try:
        return sys.stdin.read()
    except (OSError, UnicodeDecodeError) as e:
        raise errors.ValidationError(f"cannot read stdin: {e}", path="stdin") from e


def json_arg(text: str | None, where: str, default: Any) -> Any:
    """A JSON argument; '-' reads it from stdin, omitted gives ``default``."""
    if text is None:
        return default
    return read_json(stdin_text() if text == "-" else text, where)


def list_arg(text: str | None) -> list[str] | None:
    """``--sort owner,-score`` / ``--fields a,b.c``: comma-separated paths."""
    return None if text is None else [part.strip() for part in text.split(",")]


def os_error(e: OSError, what: str) -> errors.KuraError:
    """The typed error for ``e``, raised while doing ``what`` ("cannot read 'x.jsonl'") to a path the user gave."""
    message = f"{what}: {e.strerror or e}"
    if isinstance(e, FileNotFoundError | NotADirectoryError):
        return errors.NotFound(message)
    if isinstance(e, PermissionError) or e.errno == errno.EROFS:
        return errors.PermissionDenied(message)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return errors.StorageFull(message)
    if isinstance(e, FileExistsError):   # a file where a directory was to be made
        return errors.AlreadyExists(message)
    if isinstance(e, IsADirectoryError) or e.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL):
        return errors.ValidationError(message, path=e.filename or "")
    return errors.KuraError(message)


def read_key(path: str | None, option: str) -> bytes | str | None:
    """The key in the file ``option`` names: 32 bytes are a raw key, anything else a UTF-8 passphrase."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise os_error(e, f"cannot read the key file {path!r} ({option})") from e
    if len(data) == 32:
        return data
    try:
        text = data.decode().rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise errors.ValidationError(f"{path} ({option}): a key file holds 32 raw bytes or a UTF-8 passphrase",
                                     path=option) from e
    if not text:
        raise errors.ValidationError(f"the key file {path} ({option}) is empty", path=option)
    return text


# -- JSONL in and out -------------------------------------------------------------------


def open_input(path: str | None) -> IO[Any]:
    """The JSONL source of an import: the file (bytes: orjson checks the UTF-8), or stdin for '-'/None."""
    if path in (None, "-"):
        return sys.stdin
    try:
        return open(path, "rb")  # noqa: SIM115 - the import closes it
    except OSError as e:
        raise os_error(e, f"cannot read {path!r}") from e


def jsonl(stream: IO[Any], name: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line; a bad line is named by its number."""
    n = 0
    try:
        for n, line in enumerate(stream, 1):  # noqa: B007 - n names the line a read error stopped at
            if line.strip():
                yield n, read_json(line, f"line {n}")
    except OSError as e:
        raise os_error(e, f"cannot read {name} after line {n}") from e
    except UnicodeDecodeError as e:   # stdin in text mode
        raise errors.ValidationError(f"line {n + 1} is not UTF-8: {e}", path=f"line {n + 1}") from e


class OutputFile:
    """``export -o FILE``: written beside FILE and renamed over it when complete, so an export that fails or
    is interrupted leaves FILE as it was. Where FILE is not a regular file (a pipe, /dev/stdout), it is
    written in place."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._target = os.path.realpath(path)
        self._tmp: str | None = None
        self.file: IO[bytes]

    def __enter__(self) -> IO[bytes]:
        try:
            if os.path.exists(self._target) and not os.path.isfile(self._target):
                self.file = open(self._target, "wb")  # noqa: SIM115 - closed by __exit__
            else:
                folder, name = os.path.split(self._target)
                fd, self._tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".partial")
                self.file = os.fdopen(fd, "wb")
        except OSError as e:
            raise os_error(e, f"cannot write {self.path!r}") from e
        return self.file

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            self.file.close()
            if self._tmp is None:
                return
            if exc_type is not None:
                os.unlink(self._tmp)
                return
            os.chmod(self._tmp, _mode_for(self._target))
            os.replace(self._tmp, self._target)
        except OSError as e:
            if self._tmp is not None and os.path.exists(self._tmp):
                os.unlink(self._tmp)
            if exc_type is None:
                raise os_error(e, f"cannot write {self.path!r}") from e


def _mode_for(path: str) -> int:
    """An existing file keeps its mode; a new one gets what open() would give it (0666 less the umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
