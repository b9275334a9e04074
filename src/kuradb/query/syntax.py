"""The filter and sort language: parsing and validation into the typed tree the compiler reads.

Everything a user can get wrong is caught here, before any SQL exists, and
raised as ``QueryError`` naming the part (``score.$in``, ``$or[1].name``).
docs/QUERIES.md is the user-facing description of what is parsed here.
"""
from __future__ import annotations

import math
import re
import reprlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ..encoding import INT_MAX, INT_MIN, BlobRef
from ..errors import QueryError
from ..records import to_us as exact_us
from . import regex

# Envelope fields: path -> docs column.
ENVELOPE = {"_id": "id", "_type": "type", "_version": "version", "_created": "created",
            "_modified": "modified", "_author": "author"}
MAX_PATH_SEGMENTS = 32
# Nesting of $and/$or/$nor/$not (a field's operator object counts as one level). The SQL of the
# deepest filter must stay within SQLite's expression depth (1000); long lists are fine at any depth.
MAX_DEPTH = 100
# Nesting of arrays and objects in an operand: as deep as orjson (so canonical()) encodes, which
# no stored document exceeds.
MAX_VALUE_DEPTH = 254
_BAD_SEGMENT = re.compile(r'["\x00-\x1f\x7f]')
_INDEX_SEGMENT = re.compile(r"0|[1-9][0-9]{0,8}")


@dataclass(frozen=True, slots=True)
class Path:
    """A dotted path: into the content, or an envelope field (``column`` set)."""

    text: str
    segments: tuple[str, ...]
    column: str | None = None


_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict = 3, 60, 60, 8, 6


def show(value: Any) -> str:
    """A short repr of user input for messages: bounded in length and depth (a plain repr of a
    deeply nested value raises RecursionError)."""
    return _SHOW.repr(value)


def next_string(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound): a
    ``$startswith`` is the range ``[prefix, next_string(prefix))`` of code points on every backend."""
    chars = list(prefix)
    while chars:
        c = ord(chars.pop()) + 1
        if c == 0xD800:
            c = 0xE000  # no string holds a surrogate; skip the gap
        if c <= 0x10FFFF:
            return "".join(chars) + chr(c)
    return None


def check_text(text: str, where: str) -> str:
    """A string in a query must be Unicode text: a lone surrogate is neither stored nor comparable."""
    try:
        text.encode()
    except UnicodeEncodeError as e:
        where = where.encode("utf-8", "backslashreplace").decode()  # the message itself must be text
        raise QueryError(f"{where}: {show(text)} holds a lone surrogate {text[e.start]!r} at position {e.start}",
                         hint="strings must be valid Unicode (surrogates come in pairs)") from None
    return text


def is_index(segment: str) -> bool:
    """Whether a path segment also addresses an array position (``tags.0``)."""
    return _INDEX_SEGMENT.fullmatch(segment) is not None


def parse_path(text: Any, where: str, *, envelope: bool = True) -> Path:
    """Check a dotted path. With ``envelope``, a top-level ``_name`` must be an envelope field."""
    if not isinstance(text, str) or not text:
        raise QueryError(f"{where}: a field path must be a non-empty string, not {show(text)}")
    check_text(text, where)
    segments = tuple(text.split("."))
    if len(segments) > MAX_PATH_SEGMENTS:
        raise QueryError(f"{where}: path {show(text)} has more than {MAX_PATH_SEGMENTS} parts")
    for s in segments:
        if not s:
            raise QueryError(f"{where}: path {text!r} has an empty part", hint="write paths like 'a.b.c'")
        if s.startswith("$"):
            raise QueryError(f"{where}: path {text!r} has a part starting with '$'",
                             hint="operators go inside the field's value: {'score': {'$gt': 1}}")
        if _BAD_SEGMENT.search(s):
            raise QueryError(f"{where}: path {text!r} contains a double quote or control character")
    if envelope and text.startswith("_"):
        column = ENVELOPE.get(text)
        if column is None:
            raise QueryError(f"{where}: unknown envelope field {text!r}",
                             hint=f"envelope fields are {', '.join(ENVELOPE)}; content keys cannot start with '_'")
        return Path(text, segments, column)
    return Path(text, segments)


# -- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Value:
    """A filter operand. ``kind``: null bool num str arr obj time; ``text``: canonical JSON of arr/obj."""

    kind: str
    py: Any
    text: str | None = None


_COMPARABLE = ("num", "str", "bool", "time")


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    """Nested operands must be JSON values, like document content."""
    t = type(value)
    if value is None or t is bool:
        return
    if t is str:
        check_text(value, where)
        return
    if t is int:
        if not INT_MIN <= value <= INT_MAX:
            raise QueryError(f"{where}: integer {show(value)} is outside the 64-bit range")
        return
    if t is float:
        if not math.isfinite(value):
            raise QueryError(f"{where}: {value!r} is not a finite number")
        return
    if isinstance(value, (list, dict)) and depth >= MAX_VALUE_DEPTH:
        raise QueryError(f"{where}: the value nests arrays and objects more than {MAX_VALUE_DEPTH} levels deep")
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise QueryError(f"{where}: key {show(k)} is not a string")
            check_text(k, where)
            _check_json(v, f"{where}.{k}", depth + 1)
        return
    if isinstance(value, BlobRef):
        return
    raise QueryError(f"{where}: a {t.__name__} is not a JSON value",
                     hint="use a list instead of a tuple" if isinstance(value, tuple) else None)


def check_json(value: Any, where: str) -> Any:
    """A literal of a pipeline (a group key, a $literal): a JSON value, like document content."""
    _check_json(value, where)
    return value


def _default(value: Any) -> Any:
    if isinstance(value, BlobRef):
        return value.to_json()
    raise TypeError


def canonical(value: Any) -> str:
    """The canonical JSON text of an array or object operand (as stored: sorted keys, compact)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_SORT_KEYS).decode()


def to_us(value: datetime | str, where: str) -> int:
    """A timezone-aware datetime or ISO 8601 string -> microseconds since the epoch."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as e:
            raise QueryError(f"{where}: {show(value)} is not an ISO 8601 date-time") from e
    if value.tzinfo is None:
        raise QueryError(f"{where}: the date-time {value.isoformat()} has no timezone",
                         hint="use an aware datetime, e.g. datetime.now(timezone.utc)")
    return exact_us(value)


def parse_value(value: Any, where: str, *, time: bool = False) -> Value:
    """An equality operand. ``time``: the path is _created/_modified, which take date-times."""
    if time:
        if isinstance(value, (datetime, str)):
            return Value("time", to_us(value, where))
        raise QueryError(f"{where}: compare _created/_modified with a datetime or ISO 8601 string,"
                         f" not {type(value).__name__}")
    if isinstance(value, datetime):
        raise QueryError(f"{where}: datetimes compare only with _created and _modified",
                         hint="store times in documents as ISO 8601 strings or numbers")
    if value is None:
        return Value("null", None)
    t = type(value)
    if t is bool:
        return Value("bool", value)
    if t is int or t is float:
        _check_json(value, where)
        return Value("num", value)
    if t is str:
        return Value("str", check_text(value, where))
    if isinstance(value, BlobRef):
        return Value("obj", value.to_json(), canonical(value))
    if isinstance(value, bool):
        return Value("bool", bool(value))
    if isinstance(value, int):
        return parse_value(int(value), where)
    if isinstance(value, float):
        return parse_value(float(value), where)
    if isinstance(value, str):
        return Value("str", check_text(str(value), where))
    if isinstance(value, list):
        _check_json(value, where)
        return Value("arr", value, canonical(value))
    if isinstance(value, dict):
        _check_json(value, where)
        return Value("obj", dict(value), canonical(value))
    _check_json(value, where)  # raises with a hint
    raise AssertionError("unreachable")  # pragma: no cover


# -- the filter tree ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cond:
    """``path op value``. ops: eq in gt gte lt lte exists contains startswith regex size.

    value: eq -> Value; in -> tuple[Value]; gt.. -> Value; exists -> True; contains,
    startswith -> str; regex -> (pattern, flags); size -> int.
    """

    path: Path
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Cond | And | Or | Not
TRUE = And(())
FALSE = Or(())

_RANGE = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}
_FIELD_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$contains",
              "$startswith", "$regex", "$options", "$size", "$not")
_EXPECTED = {"id": "str", "type": "str", "author": "str", "version": "num", "created": "time",
             "modified": "time"}


def parse_filter(filter: Any, *, envelope: bool = True, where: str = "filter") -> Node:
    """A filter dict -> Node. ``envelope``: ``_id``... name envelope fields (a collection's records).

    Constant parts are folded away (see ``simplify``), so the tree holds no
    constant except, possibly, the whole filter being TRUE or FALSE.
    """
    return simplify(_parse_filter(filter, envelope=envelope, where=where, depth=1))


def simplify(node: Node) -> Node:
    """Fold conditions that cannot depend on the record (an empty $in, ``$gt: true``,
    ``$exists`` on an envelope field) through $and, $or and $not; flatten an $and in an $and
    (an $or in an $or); and merge equalities on one path in an $or into one $in (their
    negations in an $and into one $nin).

    SQLite gives up on a forced index when a WHERE term is a constant false, so
    constants must not reach the SQL except as the whole filter. Merged, a
    thousand-branch $or is one condition: one ``IN`` that an index serves.
    """
    if isinstance(node, Cond):
        if node.op == "in" and not node.value:
            return FALSE
        if node.op in ("gt", "lt") and node.value.kind == "bool" and node.value.py is (node.op == "gt"):
            return FALSE  # nothing is > true or < false
        if node.op == "exists" and node.path.column is not None:
            return TRUE  # envelope fields always exist
        return node
    if isinstance(node, Not):
        inner = simplify(node.item)
        if isinstance(inner, Not):
            return inner.item  # a match is true or false, never unknown: not-not is the filter itself
        return FALSE if inner == TRUE else TRUE if inner == FALSE else Not(inner)
    kind = type(node)
    absorbing, neutral = (FALSE, TRUE) if kind is And else (TRUE, FALSE)
    items: list[Node] = []
    for item in (simplify(n) for n in node.items):
        if item == absorbing:
            return absorbing
        if type(item) is kind:
            items.extend(item.items)  # already simplified: no constants, no further nesting of its kind
        elif item != neutral:
            items.append(item)
    items = _merge_equalities(items, negated=kind is And)
    if not items:
        return neutral
    return items[0] if len(items) == 1 else kind(tuple(items))


def _merge_equalities(items: list[Node], *, negated: bool) -> list[Node]:
    """``a = 1 OR a = 2 OR a IN (3)`` -> ``a IN (1, 2, 3)``; with ``negated``, ``NOT a = 1 AND NOT a = 2``
    -> ``NOT a IN (1, 2)``. The merged condition takes the place of the first."""
    def equality(item: Node) -> Cond | None:
        c = item.item if negated and isinstance(item, Not) else None if negated else item
        return c if isinstance(c, Cond) and c.op in ("eq", "in") else None

    paths: dict[Path, list[Cond]] = {}
    for item in items:
        c = equality(item)
        if c is not None:
            paths.setdefault(c.path, []).append(c)
    if all(len(cs) == 1 for cs in paths.values()):
        return items
    out: list[Node] = []
    for item in items:
        c = equality(item)
        if c is None or len(paths[c.path]) == 1:
            out.append(item)
        elif c is paths[c.path][0]:
            values = [v for x in paths[c.path] for v in ((x.value,) if x.op == "eq" else x.value)]
            merged = Cond(c.path, "in", unique_values(values))
            out.append(Not(merged) if negated else merged)
    return out


def unique_values(values: list[Value] | tuple[Value, ...]) -> tuple[Value, ...]:
    """The distinct operands of an $in, in first-seen order (1 and 1.0 are one value)."""
    seen: dict[tuple[str, Any], Value] = {}
    for v in values:
        seen.setdefault((v.kind, v.py if v.text is None else v.text), v)
    return tuple(seen.values())


def _parse_filter(filter: Any, *, envelope: bool, where: str, depth: int) -> Node:
    if filter is None:
        return TRUE
    if not isinstance(filter, dict):
        raise QueryError(f"{where}: a filter must be a dict, not {type(filter).__name__}",
                         hint="e.g. {'owner': 'ann', 'score': {'$gte': 3}}")
    if depth > MAX_DEPTH:
        raise _too_deep(where)
    items: list[Node] = []
    for key, value in filter.items():
        if not isinstance(key, str):
            raise QueryError(f"{where}: key {show(key)} is not a string")
        at = key if where == "filter" else f"{where}.{key}"
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list) or not value:
                raise QueryError(f"{at} needs a non-empty list of filters, not {show(value)}")
            subs = tuple(_parse_filter(f, envelope=envelope, where=f"{at}[{i}]", depth=depth + 1)
                         for i, f in enumerate(value))
            items.append(And(subs) if key == "$and" else Or(subs) if key == "$or" else Not(Or(subs)))
        elif key == "$not":
            items.append(Not(_parse_filter(value, envelope=envelope, where=at, depth=depth + 1)))
        elif key.startswith("$"):
            raise QueryError(f"{at}: unknown operator {show(key)} at the top level",
                             hint="the top level takes field paths and $and, $or, $nor, $not")
        else:
            items.append(_parse_field(parse_path(key, at, envelope=envelope), value, at, depth))
    return items[0] if len(items) == 1 else And(tuple(items))


def _too_deep(where: str) -> QueryError:
    return QueryError(f"{where}: the filter nests $and/$or/$nor/$not more than {MAX_DEPTH} levels deep",
                      hint="lists take any number of conditions: use one $and or $or with many items")


def _parse_field(path: Path, value: Any, at: str, depth: int) -> Node:
    if isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$") for k in value):
        if not all(isinstance(k, str) and k.startswith("$") for k in value):
            raise QueryError(f"{at}: mixes operators and plain keys in {show(value)}",
                             hint="use only $-operators, or a plain object for exact equality")
        if "$blob" in value and len(value) == 1:
            return Cond(path, "eq", parse_value(value, at))  # a blob reference is a value
        return _parse_ops(path, value, at, depth)
    return Cond(path, "eq", _operand(path, value, at))


def _operand(path: Path, value: Any, at: str) -> Value:
    v = parse_value(value, at, time=path.column in ("created", "modified"))
    want = _EXPECTED.get(path.column or "")
    if want is not None and v.kind != want and not (v.kind == "null" and path.column in ("type", "author")):
        raise QueryError(f"{at}: {path.text} holds {'date-times' if want == 'time' else want + 's'},"
                         f" not {type(value).__name__}")
    return v


def _parse_ops(path: Path, ops: dict[str, Any], at: str, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise _too_deep(at)
    items: list[Node] = []
    if "$options" in ops and "$regex" not in ops:
        raise QueryError(f"{at}.$options goes with $regex")
    for op, arg in ops.items():
        where = f"{at}.{op}"
        if op not in _FIELD_OPS:
            raise QueryError(f"{where}: unknown operator {show(op)}", hint=f"operators are {', '.join(_FIELD_OPS)}")
        if op == "$eq":
            items.append(Cond(path, "eq", _operand(path, arg, where)))
        elif op == "$ne":
            items.append(Not(Cond(path, "eq", _operand(path, arg, where))))
        elif op in _RANGE:
            v = _operand(path, arg, where)
            if v.kind not in _COMPARABLE:
                raise QueryError(f"{where} needs a number, string or boolean, not {show(arg)}",
                                 hint="use $eq to compare with null, arrays or objects")
            items.append(Cond(path, _RANGE[op], v))
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list):
                raise QueryError(f"{where} needs a list of values, not {type(arg).__name__}")
            values = unique_values([_operand(path, v, f"{where}[{i}]") for i, v in enumerate(arg)])
            cond = Cond(path, "in", values)
            items.append(cond if op == "$in" else Not(cond))
        elif op == "$exists":
            if not isinstance(arg, bool):
                raise QueryError(f"{where} needs true or false, not {show(arg)}")
            cond = Cond(path, "exists", True)
            items.append(cond if arg else Not(cond))
        elif op in ("$contains", "$startswith"):
            if not isinstance(arg, str):
                raise QueryError(f"{where} needs a string, not {type(arg).__name__}")
            items.append(Cond(path, op[1:], check_text(arg, where)))
        elif op == "$regex":
            items.append(Cond(path, "regex", _parse_regex(arg, ops.get("$options"), where)))
        elif op == "$size":
            if type(arg) is not int or not 0 <= arg <= INT_MAX:
                raise QueryError(f"{where} needs a non-negative integer (64-bit), not {show(arg)}")
            if path.column is not None:
                raise QueryError(f"{where}: {path.text} is not an array")
            items.append(Cond(path, "size", arg))
        elif op == "$not":
            if isinstance(arg, re.Pattern):
                items.append(Not(Cond(path, "regex", _parse_regex(arg, None, where))))
            elif isinstance(arg, dict) and arg and all(isinstance(k, str) and k.startswith("$") for k in arg):
                items.append(Not(_parse_ops(path, arg, where, depth + 1)))
            else:
                raise QueryError(f"{where} needs an operator object like {{'$gt': 3}}, not {show(arg)}")
    return items[0] if len(items) == 1 else And(tuple(items))


def _parse_regex(arg: Any, options: Any, where: str) -> tuple[str, int]:
    if isinstance(arg, str):
        check_text(arg, where)
    return regex.check(arg, options, where)


# -- sorting -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortKey:
    path: Path
    descending: bool = False


ID_ORDER = (SortKey(Path("_id", ("_id",), "id")),)


def parse_sort(sort: Any, *, envelope: bool = True, where: str = "sort") -> tuple[SortKey, ...]:
    """``"score"``, ``"-score"``, a list of those, ``[("score", -1)]`` or ``{"score": -1}``."""
    if sort is None:
        return ()
    if isinstance(sort, str):
        sort = [sort]
    elif isinstance(sort, dict):
        sort = list(sort.items())
    if not isinstance(sort, (list, tuple)) or not sort:
        raise QueryError(f"{where} must be a field, a list of fields or a dict, not {show(sort)}",
                         hint="e.g. 'score', '-score' or ['owner', '-score']")
    keys: list[SortKey] = []
    for i, item in enumerate(sort):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            desc = item.startswith("-")
            path = item[1:] if desc or item.startswith("+") else item
        elif isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
            path = item[0]
            if item[1] not in (1, -1, "asc", "desc") or isinstance(item[1], bool):
                raise QueryError(f"{at}: direction must be 1, -1, 'asc' or 'desc', not {show(item[1])}")
            desc = item[1] in (-1, "desc")
        else:
            raise QueryError(f"{at}: expected a field like 'score' or '-score', not {show(item)}")
        keys.append(SortKey(parse_path(path, at, envelope=envelope), desc))
    if len({k.path.text for k in keys}) != len(keys):
        raise QueryError(f"{where}: a field appears twice in {show(sort)}")
    return tuple(keys)


def parse_fields(fields: Any, where: str = "fields") -> tuple[Path, ...] | None:
    """A projection: content paths to keep (the envelope always comes back)."""
    if fields is None:
        return None
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, (list, tuple)) or not fields:
        raise QueryError(f"{where} must be a non-empty list of field paths, not {show(fields)}")
    paths = tuple(parse_path(f, f"{where}[{i}]") for i, f in enumerate(fields))
    return tuple(p for p in paths if p.column is None)


def check_count(value: Any, name: str, *, allow_none: bool = True) -> int | None:
    """A limit or skip: SQLite counts in 64-bit integers, so a larger one is refused, not clamped."""
    if value is None and allow_none:
        return None
    if type(value) is not int or not 0 <= value <= INT_MAX:
        raise QueryError(f"{name} must be a non-negative integer of at most 2**63-1, not {show(value)}",
                         hint="leave the limit out (None) for no limit" if type(value) is int and value > 0
                         and name.endswith("limit") else None)
    return value
