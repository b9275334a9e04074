"""SQL for values inside JSON documents, in SQLite's dialect.

This module is the one place that knows SQLite's JSON functions. The compiler
asks it for a value's SQL (``v``), its JSON type (``t``), its sort key
(``key``) and the like; a PostgreSQL dialect would answer the same questions
over ``jsonb``.

The sort key is one SQL value per JSON value whose native SQLite ordering is
kuradb's documented total order (docs/QUERIES.md):

    missing, null  ->  NULL                     (smallest)
    numbers        ->  INTEGER / REAL           (1 and 1.0 are equal)
    strings        ->  TEXT                     (by code point: UTF-8 byte order)
    objects        ->  BLOB 0x01 + canonical JSON
    arrays         ->  BLOB 0x02 + canonical JSON
    false, true    ->  BLOB 0x03, 0x04          (largest)

so one expression index on it serves equality, ranges, prefixes and sorting,
and a comparison can never match across types.
"""
from __future__ import annotations

from typing import Any

from ...query.syntax import is_index

TRUE_KEY = b"\x04"
FALSE_KEY = b"\x03"
OBJECT_PREFIX = b"\x01"
ARRAY_PREFIX = b"\x02"
# Bounds of each type class in key order, for range scans that stay inside it.
STR_LOW, STR_HIGH = "''", "x''"      # every string key is >= '' and < any blob
NUM_HIGH = "''"                      # every number key is < any string
NUMBER_TYPES = "('integer','real')"


def literal(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def object_path(segments: tuple[str, ...], prefix: str = "$") -> str:
    """The JSON path that follows object keys only: ``$."a"."b"``."""
    return prefix + "".join(f'."{s}"' for s in segments)


def key_of_type(t: str, v: str) -> str:
    """The sort key of a value whose JSON type is the SQL ``t`` and SQL value ``v``."""
    return (f"CASE {t} WHEN 'true' THEN x'04' WHEN 'false' THEN x'03'"
            f" WHEN 'object' THEN CAST(char(1)||{v} AS BLOB)"
            f" WHEN 'array' THEN CAST(char(2)||{v} AS BLOB) ELSE {v} END")


def key_param(kind: str, py: Any, text: str | None) -> Any:
    """The sort key of an operand, as a parameter (see the module docstring)."""
    if kind == "bool":
        return TRUE_KEY if py else FALSE_KEY
    if kind == "obj":
        return OBJECT_PREFIX + text.encode()  # type: ignore[union-attr]
    if kind == "arr":
        return ARRAY_PREFIX + text.encode()  # type: ignore[union-attr]
    return py  # null -> None, num, str


class SQLValue:
    """A JSON value in SQL: ``v`` (its SQL value), ``t`` (its JSON type), ``alen``; and its sort ``key``."""

    __slots__ = ()

    @property
    def v(self) -> str:
        raise NotImplementedError

    @property
    def t(self) -> str:
        raise NotImplementedError

    @property
    def key(self) -> str:
        return key_of_type(self.t, self.v)


class Field(SQLValue):
    """A value at a JSON path in a document expression (``body``, ``doc``, ``e1.value``).

    ``path`` is SQL: a literal, or an expression choosing a path per row.
    """

    __slots__ = ("doc", "path")

    def __init__(self, doc: str, path: str) -> None:
        self.doc, self.path = doc, path

    @property
    def v(self) -> str:
        """The SQL value: numbers, text; arrays and objects as JSON text; true/false as 1/0."""
        return f"json_extract({self.doc}, {self.path})"

    @property
    def t(self) -> str:
        """The JSON type name ('null', 'true', 'integer', 'text', 'array'...), NULL when missing."""
        return f"json_type({self.doc}, {self.path})"

    @property
    def alen(self) -> str:
        return f"json_array_length({self.doc}, {self.path})"

    @property
    def json(self) -> str:
        """The value as JSON text (NULL when missing), keeping its JSON type."""
        return f"({self.doc} -> {self.path})"

    def each(self, alias: str) -> str:
        return f"json_each({self.doc}, {self.path}) AS {alias}"


class Element(SQLValue):
    """A row of ``json_each``: an array element (or a member) seen as a value."""

    __slots__ = ("alias",)

    def __init__(self, alias: str) -> None:
        self.alias = alias

    @property
    def v(self) -> str:
        return f"{self.alias}.value"

    @property
    def t(self) -> str:
        return f"{self.alias}.type"

    @property
    def alen(self) -> str:
        return f"json_array_length({self.alias}.value)"


def single_path(doc: str, segments: tuple[str, ...], prefix: str = "$") -> str:
    """SQL for the path of a *single* value: object keys, and numeric parts index arrays.

    Sort keys, index keys and projections resolve paths this way: no fan-out
    over arrays. ``tags.0`` is ``tags[0]`` when tags is an array and the member
    "0" when it is an object, chosen per row.
    """
    for i, s in enumerate(segments):
        if is_index(s):
            here = literal(prefix)
            as_array = single_path(doc, segments[i + 1:], f"{prefix}[{int(s)}]")
            as_object = single_path(doc, segments[i + 1:], f'{prefix}."{s}"')
            return f"(CASE json_type({doc}, {here}) WHEN 'array' THEN {as_array} ELSE {as_object} END)"
        prefix += f'."{s}"'
    return literal(prefix)


def single(doc: str, segments: tuple[str, ...]) -> Field:
    return Field(doc, single_path(doc, segments))


def regexp(pattern: str, flags: str, value: str) -> str:
    """A $regex per row (query/regex.py; registered as kura_regexp on every connection)."""
    return f"kura_regexp({pattern}, {flags}, {value})"
