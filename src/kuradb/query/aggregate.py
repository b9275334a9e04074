"""Aggregation pipelines: the stages, checked, and the run that alternates engine and Python stages.

``$match $group $sort $skip $limit $count`` compile to one statement of the
backend's dialect (for SQLite a CTE per stage that changes the rows,
kuradb/backends/sqlite/aggregate.py); ``$project`` and ``$unwind`` run in Python
(pipeline.py) and the stages after them read their output back. Leading
``$match`` stages (and a ``$sort`` right after them) are planned like ``find``:
they use the collection's indexes.

Until the first ``$group``/``$count``/``$project``/``$unwind``, rows are
records: filters and keys may use the envelope (``_id``, ``_type``...), and a
record comes out as its content plus ``_id``. After it, rows are plain
documents and ``_id`` is an ordinary field.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import QueryError
from .indexes import load_meta
from .pipeline import Project, Unwind
from .syntax import (
    And,
    Node,
    Path,
    SortKey,
    check_count,
    check_json,
    check_text,
    parse_filter,
    parse_path,
    parse_sort,
    show,
    simplify,
)

if TYPE_CHECKING:
    from .engine import Target

SQL_STAGES = ("$match", "$group", "$sort", "$skip", "$limit", "$count")
PYTHON_STAGES = ("$project", "$unwind")
ACCUMULATORS = ("$sum", "$avg", "$min", "$max", "$count", "$push", "$first", "$last")


@dataclass
class Stage:
    op: str
    arg: Any
    where: str


def parse(pipeline: Any) -> list[Stage]:
    if not isinstance(pipeline, list):
        raise QueryError(f"a pipeline must be a list of stages, not {type(pipeline).__name__}")
    stages = []
    records = True
    for i, stage in enumerate(pipeline):
        where = f"pipeline[{i}]"
        if not isinstance(stage, dict) or len(stage) != 1:
            raise QueryError(f"{where} must be an object with one stage, like {{'$match': {{...}}}}, not {show(stage)}")
        (op, arg), = stage.items()
        if op not in SQL_STAGES + PYTHON_STAGES:
            raise QueryError(f"{where}: unknown stage {show(op)}",
                             hint=f"stages are {', '.join(SQL_STAGES + PYTHON_STAGES)}")
        st = Stage(op, arg, f"{where}.{op}")
        _check(st, records)
        records = records and op in ("$match", "$sort", "$skip", "$limit")
        stages.append(st)
    return stages


def _check(st: Stage, records: bool) -> None:
    """Validate a stage's argument now, so a bad pipeline fails before any work."""
    if st.op == "$match":
        st.arg = parse_filter(st.arg, envelope=records, where=st.where)
    elif st.op == "$sort":
        st.arg = parse_sort(st.arg, envelope=records, where=st.where)
    elif st.op in ("$skip", "$limit"):
        check_count(st.arg, st.where, allow_none=False)
    elif st.op == "$count":
        if not isinstance(st.arg, str) or not st.arg or st.arg.startswith("$") or "." in st.arg:
            raise QueryError(f"{st.where} needs a field name, not {show(st.arg)}")
        check_text(st.arg, st.where)
    elif st.op == "$group":
        st.arg = _parse_group(st.arg, st.where, records)
    elif st.op == "$project":
        st.arg = Project(st.arg, st.where)
    elif st.op == "$unwind":
        st.arg = Unwind(st.arg, st.where)


def _ref(value: Any, where: str, records: bool) -> Path | None:
    if isinstance(value, str) and value.startswith("$"):
        return parse_path(value[1:], where, envelope=records)
    return None


def _parse_group(arg: Any, where: str, records: bool) -> dict[str, Any]:
    if not isinstance(arg, dict) or "_id" not in arg:
        raise QueryError(f"{where} needs an object with an _id (the group key; null for one group)")
    key = arg["_id"]
    parts: Any
    if isinstance(key, dict):
        parts = {}
        for k, v in key.items():
            if not isinstance(k, str):
                raise QueryError(f"{where}._id: key {show(k)} is not a string")
            at = f"{where}._id.{check_text(k, f'{where}._id')}"
            parts[k] = _ref(v, at, records) or ("literal", check_json(v, at))
    else:
        parts = _ref(key, f"{where}._id", records) or ("literal", check_json(key, f"{where}._id"))
    accs: dict[str, tuple[str, Any]] = {}
    for name, spec in arg.items():
        if name == "_id":
            continue
        if not isinstance(name, str):
            raise QueryError(f"{where}: output field {show(name)} is not a string")
        at = f"{where}.{check_text(name, where)}"
        if "." in name or name.startswith("$"):
            raise QueryError(f"{at}: an output field name cannot contain '.' or start with '$'")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ACCUMULATORS:
            raise QueryError(f"{at} needs one accumulator like {{'$sum': '$field'}}",
                             hint=f"accumulators are {', '.join(ACCUMULATORS)}")
        (acc, value), = spec.items()
        if acc == "$count":
            if value != {}:
                raise QueryError(f"{at}.$count takes {{}}")
            accs[name] = (acc, None)
        elif acc == "$sum" and type(value) in (int, float):
            accs[name] = (acc, check_json(value, f"{at}.$sum"))
        else:
            ref = _ref(value, f"{at}.{acc}", records)
            if ref is None:
                raise QueryError(f"{at}.{acc} needs a field path like '$score'"
                                 + (" or a number" if acc == "$sum" else "") + f", not {show(value)}")
            accs[name] = (acc, ref)
    return {"key": parts, "accumulators": accs}


def leading(stages: list[Stage]) -> tuple[Node, tuple[SortKey, ...], int]:
    """What a run of stages over the collection's records asks of an index: its leading ``$match``
    stages as one filter, the ``$sort`` right after them (if any), and the number of ``$match`` stages.
    Each dialect plans them with planner.choose, as ``find`` would."""
    matches = []
    i = 0
    while i < len(stages) and stages[i].op == "$match":
        matches.append(stages[i].arg)
        i += 1
    sort: tuple[SortKey, ...] = stages[i].arg if i < len(stages) and stages[i].op == "$sort" else ()
    return simplify(And(tuple(matches))), sort, i


def run(target: Target, pipeline: Any) -> list[dict[str, Any]]:
    stages = parse(pipeline)
    dialect = target.backend.dialect
    with target.backend.read() as r:
        meta = load_meta(r, target.coll)
        docs: list[dict[str, Any]] | None = None
        i = 0
        while i < len(stages) or docs is None:
            j = i
            while j < len(stages) and stages[j].op in SQL_STAGES:
                j += 1
            if j > i or docs is None:
                docs = dialect.aggregate(r, target.coll, meta, stages[i:j], docs)
            i = j
            while i < len(stages) and stages[i].op in PYTHON_STAGES:
                docs = stages[i].arg(docs)
                i += 1
    return docs
