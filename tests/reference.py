"""A pure-Python reference evaluator of kuradb's filter and sort language (docs/QUERIES.md).

Written from the documented semantics, independently of kuradb.query: it walks
Python values where kuradb compiles SQL. The property tests check that
``find`` returns exactly what this returns, in the same order.
"""
from __future__ import annotations

import re
from typing import Any

import orjson

MISSING = object()
ENVELOPE = {"_id": "id", "_type": "type", "_version": "version", "_author": "author"}


def is_index(segment: str) -> bool:
    return segment.isdigit() and segment.isascii() and (segment == "0" or not segment.startswith("0")) \
        and len(segment) <= 9


def candidates(doc: Any, path: str) -> list[Any]:
    """Every value a filter path reaches: object keys, and through arrays both positions and
    the same key in each object element."""
    values = [doc]
    for s in path.split("."):
        reached = []
        for v in values:
            if isinstance(v, dict):
                if s in v:
                    reached.append(v[s])
            elif isinstance(v, list):
                if is_index(s) and int(s) < len(v):
                    reached.append(v[int(s)])
                reached += [e[s] for e in v if isinstance(e, dict) and s in e]
        values = reached
    return values


def single(doc: Any, path: str) -> Any:
    """The one value a sort key or projection reads: no fan-out over arrays."""
    v = doc
    for s in path.split("."):
        if isinstance(v, dict) and s in v:
            v = v[s]
        elif isinstance(v, list) and is_index(s) and int(s) < len(v):
            v = v[int(s)]
        else:
            return MISSING
    return v


def canonical(v: Any) -> bytes:
    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS)


def kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    if isinstance(v, str):
        return "str"
    return "arr" if isinstance(v, list) else "obj"


def equal(a: Any, b: Any) -> bool:
    if kind(a) != kind(b):
        return False
    if kind(a) in ("arr", "obj"):
        return canonical(a) == canonical(b)
    return a == b


def compare(op: str, v: Any, x: Any) -> bool:
    if kind(v) != kind(x) or kind(x) not in ("num", "str", "bool"):
        return False
    return {"$gt": v > x, "$gte": v >= x, "$lt": v < x, "$lte": v <= x}[op]


def positive(op: str, arg: Any, options: str, v: Any) -> bool:
    if op == "$eq":
        return equal(v, arg)
    if op == "$in":
        return any(equal(v, a) for a in arg)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return compare(op, v, arg)
    if op == "$contains":
        return isinstance(v, str) and arg in v
    if op == "$startswith":
        return isinstance(v, str) and v.startswith(arg)
    if op == "$regex":
        return isinstance(v, str) and regex_search(arg, options, v)
    raise AssertionError(op)


_WORD = "0-9A-Za-z_"
_ASCII = {"d": "0-9", "w": _WORD, "s": "\\t\\n\\x0b\\x0c\\r "}
_BOUNDARY = f"(?:(?<![{_WORD}])(?=[{_WORD}])|(?<=[{_WORD}])(?![{_WORD}]))"
_NOT_BOUNDARY = f"(?:(?<![{_WORD}])(?![{_WORD}])|(?<=[{_WORD}])(?=[{_WORD}]))"


def regex_search(pattern: str, options: str, text: str) -> bool:
    """$regex as documented, with Python's re: ``\\d \\w \\s \\b`` are ASCII, and without ``m`` a
    ``$`` is the very end of the text (Python's also matches before a final newline). The pattern
    is rewritten to say so; enough for the patterns the tests use (no ``(?m:...)``, no ``\\D`` in a
    class). Under ``i`` Python's re folds the dotless ı to i, which $regex does not: the tests keep
    it out of the texts they compare with this."""
    flags = sum({"i": re.I, "m": re.M, "s": re.S, "x": re.X}[c] for c in options)
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            e = pattern[i + 1]
            i += 2
            if e.lower() in _ASCII:
                if in_class:
                    assert e.islower(), "a negated class inside a class"
                    out.append(_ASCII[e])
                else:
                    out.append(f"[{'^' if e.isupper() else ''}{_ASCII[e.lower()]}]")
            elif e in "bB" and not in_class:
                out.append(_BOUNDARY if e == "b" else _NOT_BOUNDARY)
            else:
                out.append(c + e)
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        elif c == "$" and not in_class and "m" not in options:
            c = "\\Z"
        out.append(c)
        i += 1
    return re.search("".join(out), text, flags) is not None


def field_matches(values: list[Any], op: str, arg: Any, options: str, member: bool) -> bool:
    if op == "$exists":
        return bool(values) == arg
    if op == "$size":
        return any(isinstance(v, list) and len(v) == arg for v in values)
    if op in ("$ne", "$nin"):
        return not field_matches(values, "$eq" if op == "$ne" else "$in", arg, options, member)
    if op == "$not":
        return not all(field_matches(values, o, a, arg.get("$options", ""), member)
                       for o, a in arg.items() if o != "$options")
    for v in values:
        if positive(op, arg, options, v):
            return True
        if member and isinstance(v, list) and any(positive(op, arg, options, e) for e in v):
            return True
    return False


def envelope(record: Any, name: str) -> Any:
    return getattr(record, ENVELOPE[name])


def matches(record: Any, content: dict[str, Any], filter: dict[str, Any]) -> bool:
    for key, cond in filter.items():
        if key == "$and":
            ok = all(matches(record, content, f) for f in cond)
        elif key == "$or":
            ok = any(matches(record, content, f) for f in cond)
        elif key == "$nor":
            ok = not any(matches(record, content, f) for f in cond)
        elif key == "$not":
            ok = not matches(record, content, cond)
        else:
            if key in ENVELOPE:
                value = envelope(record, key)
                values, member = [value], False
            else:
                values, member = candidates(content, key), True
            if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
                options = cond.get("$options", "")
                ok = all(field_matches(values, op, arg, options, member) for op, arg in cond.items()
                         if op != "$options")
            else:
                ok = field_matches(values, "$eq", cond, "", member)
        if not ok:
            return False
    return True


def sort_key(v: Any) -> tuple[int, Any]:
    """kuradb's total order: missing = null < numbers < strings < objects < arrays < false < true."""
    if v is MISSING or v is None:
        return (0, 0)
    k = kind(v)
    if k == "num":
        return (1, v)
    if k == "str":
        return (2, v)
    if k == "obj":
        return (3, canonical(v))
    if k == "arr":
        return (4, canonical(v))
    return (5, v)


def find(records: list[Any], filter: dict[str, Any] | None, sort: list[str] | None) -> list[str]:
    """Ids of the live records matching, in kuradb's order (ties by id ascending)."""
    hits = [r for r in records if matches(r, r.content, filter or {})]
    hits.sort(key=lambda r: r.id)
    for key in reversed(sort or []):
        desc = key.startswith("-")
        path = key.lstrip("-")

        def value(r: Any, path: str = path) -> tuple[int, Any]:
            return sort_key(envelope(r, path) if path in ENVELOPE else single(r.content, path))

        hits.sort(key=value, reverse=desc)
    return [r.id for r in hits]
