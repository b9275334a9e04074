"""The aggregation stages that run in Python, ``$project`` and ``$unwind``, and path helpers.

SQLite builds JSON objects awkwardly when fields may be missing, so these two
stages reshape documents in Python; the stages around them stay in SQL (see
aggregate.py). ``explain``-style notes name them.
"""
from __future__ import annotations

import copy
from typing import Any

from ..errors import QueryError
from .syntax import Path, check_json, is_index, parse_path, show

MISSING: Any = object()


def get_single(value: Any, segments: tuple[str, ...]) -> Any:
    """The one value at a path: object keys, numeric parts index arrays, no fan-out (else MISSING).

    The same resolution as ``dialect.single`` in SQL (sort keys, projections).
    """
    for s in segments:
        if isinstance(value, dict):
            value = value.get(s, MISSING)
        elif isinstance(value, list) and is_index(s) and int(s) < len(value):
            value = value[int(s)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def with_value(doc: dict[str, Any], segments: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with ``value`` at the path, copying only the objects along it."""
    out = dict(doc)
    target = out
    for s in segments[:-1]:
        child = target.get(s)
        target[s] = dict(child) if isinstance(child, dict) else {}
        target = target[s]
    target[segments[-1]] = value
    return out


def _field_ref(value: Any, where: str) -> Path | None:
    if isinstance(value, str) and value.startswith("$"):
        return parse_path(value[1:], where, envelope=False)
    return None


class Project:
    """``{"$project": {"a": 1, "b.c": 1, "total": "$sum", "_id": 0, "k": {"$literal": 5}}}``."""

    def __init__(self, spec: Any, where: str) -> None:
        if not isinstance(spec, dict) or not spec:
            raise QueryError(f"{where} needs a non-empty object of fields, not {show(spec)}")
        self.include: list[Path] = []
        self.exclude: list[Path] = []
        self.computed: list[tuple[Path, Path | None, Any]] = []  # (target, source path, literal)
        self.keep_id = True
        for key, value in spec.items():
            at = f"{where}.{key}"
            path = parse_path(key, at, envelope=False)
            if key == "_id" and value in (0, False) and not isinstance(value, str):
                self.keep_id = False
            elif value is True or value == 1 and type(value) is int:
                self.include.append(path)
            elif value is False or value == 0 and type(value) is int:
                self.exclude.append(path)
            elif (ref := _field_ref(value, at)) is not None:
                self.computed.append((path, ref, None))
            elif isinstance(value, dict) and list(value) == ["$literal"]:
                self.computed.append((path, None, check_json(value["$literal"], f"{at}.$literal")))
            else:
                raise QueryError(f"{at}: use 1 (keep), 0 (drop), '$path' or {{'$literal': value}}, not {show(value)}")
        if self.exclude and (self.include or self.computed):
            raise QueryError(f"{where}: cannot mix kept and dropped fields (only _id may be dropped)")

    def __call__(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self._one(d) for d in docs]

    def _one(self, doc: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any]
        if self.exclude:
            out = copy.deepcopy(doc)
            for p in self.exclude:
                _remove(out, p.segments)
            if not self.keep_id:
                out.pop("_id", None)
            return out
        out = {}
        if self.keep_id and "_id" in doc:
            out["_id"] = doc["_id"]
        for p in self.include:
            v = get_single(doc, p.segments)
            if v is not MISSING:
                out = with_value(out, p.segments, v)
        for target, ref, literal in self.computed:
            v = literal if ref is None else get_single(doc, ref.segments)
            if v is not MISSING:
                out = with_value(out, target.segments, v)
        return out


def _remove(doc: Any, segments: tuple[str, ...]) -> None:
    for s in segments[:-1]:
        doc = doc.get(s) if isinstance(doc, dict) else None
    if isinstance(doc, dict):
        doc.pop(segments[-1], None)


class Unwind:
    """``{"$unwind": "$tags"}`` or ``{"$unwind": {"path": "$tags", "preserveNullAndEmptyArrays": true,
    "includeArrayIndex": "i"}}``: one document per array element."""

    def __init__(self, spec: Any, where: str) -> None:
        options = spec if isinstance(spec, dict) else {"path": spec}
        unknown = set(options) - {"path", "preserveNullAndEmptyArrays", "includeArrayIndex"}
        if unknown:
            raise QueryError(f"{where}: unknown option(s) {show(sorted(unknown, key=repr))}")
        path = _field_ref(options.get("path"), where)
        if path is None:
            raise QueryError(f"{where} needs a field path like '$tags', not {show(options.get('path'))}")
        self.path = path
        self.preserve = options.get("preserveNullAndEmptyArrays", False)
        if not isinstance(self.preserve, bool):
            raise QueryError(f"{where}.preserveNullAndEmptyArrays must be true or false")
        index = options.get("includeArrayIndex")
        self.index = None if index is None else parse_path(index, f"{where}.includeArrayIndex", envelope=False)

    def __call__(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        segs = self.path.segments
        for doc in docs:
            value = get_single(doc, segs)
            if isinstance(value, list) and value:
                for i, item in enumerate(value):
                    d = with_value(doc, segs, item)
                    out.append(d if self.index is None else with_value(d, self.index.segments, i))
            elif isinstance(value, list) or value is None or value is MISSING:
                if self.preserve:
                    out.append(doc if self.index is None else with_value(doc, self.index.segments, None))
            else:  # a single value is an array of one
                out.append(doc if self.index is None else with_value(doc, self.index.segments, None))
        return out
