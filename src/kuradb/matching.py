"""Equality filters compiled to SQL over JSONB content (the query engine extends this language)."""
from __future__ import annotations

import re
from typing import Any

from .errors import QueryError

_PATH_RE = re.compile(r"[^.\[\]\"$]+(\.[^.\[\]\"$]+)*")

# json_type() names per Python type, so that 1 never equals true and "1" never equals 1.
_JSON_TYPES = {bool: ("true", "false"), int: ("integer", "real"), float: ("integer", "real"),
               str: ("text",)}


def json_path(path: str) -> str:
    if not isinstance(path, str) or not _PATH_RE.fullmatch(path):
        raise QueryError(f"filter path {path!r} is invalid", hint="use dotted field names like 'a.b'")
    return "$." + ".".join(f'"{part}"' for part in path.split("."))


def compile_equality(filter: dict[str, Any]) -> tuple[str, list[Any]]:
    """``{"a.b": value}`` -> SQL ``AND ...`` clauses over ``body``; arrays match by membership."""
    if not isinstance(filter, dict):
        raise QueryError(f"a filter must be a dict, not {type(filter).__name__}")
    clauses: list[str] = []
    args: list[Any] = []
    for path, value in filter.items():
        if isinstance(path, str) and path.startswith("$"):
            raise QueryError(f"operator {path!r} needs the query engine; only equality is supported here")
        p = json_path(path)
        if value is None:
            clauses.append("json_type(body, ?) = 'null'")
            args.append(p)
            continue
        types = _JSON_TYPES.get(type(value))
        if types is None:
            raise QueryError(f"filter value for {path!r} must be a scalar, not {type(value).__name__}")
        sql_value = int(value) if isinstance(value, bool) else value
        marks = ", ".join("?" * len(types))
        clauses.append(
            f"((json_type(body, ?) IN ({marks}) AND json_extract(body, ?) = ?) OR"
            f" (json_type(body, ?) = 'array' AND EXISTS (SELECT 1 FROM json_each(body, ?)"
            f" WHERE type IN ({marks}) AND value = ?)))")
        args += [p, *types, p, sql_value, p, p, *types, sql_value]
    return "".join(f" AND {c}" for c in clauses), args
