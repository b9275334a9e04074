"""Aggregation pipelines.

``$match $group $sort $skip $limit $count`` compile to one SQL statement (a CTE
per stage that changes the rows); ``$project`` and ``$unwind`` run in Python
(pipeline.py) and the SQL after them reads their output back as one JSON
parameter. Leading ``$match`` stages (and a ``$sort`` right after them) are
planned like ``find``: they use the collection's indexes.

Until the first ``$group``/``$count``/``$project``/``$unwind``, rows are
records: filters and keys may use the envelope (``_id``, ``_type``...), and a
record comes out as its content plus ``_id``. After it, rows are plain
documents and ``_id`` is an ordinary field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import apsw
import orjson

from ..errors import QueryError
from .compiler import Compiler, Source
from .dialect import literal, single
from .engine import failed, source
from .indexes import Meta, live, load_meta
from .pipeline import Project, Unwind
from .planner import choose
from .syntax import (
    And,
    Node,
    Path,
    SortKey,
    canonical,
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
    from ..collection import Collection

SQL_STAGES = ("$match", "$group", "$sort", "$skip", "$limit", "$count")
PYTHON_STAGES = ("$project", "$unwind")
ACCUMULATORS = ("$sum", "$avg", "$min", "$max", "$count", "$push", "$first", "$last")
RECORD_FIELDS = ("body", "id", "type", "version", "created", "modified", "author")
_ENVELOPE_JSON = {"id": "json_quote({c})", "type": "coalesce(json_quote({c}), json('null'))",
                  "author": "coalesce(json_quote({c}), json('null'))", "version": "{c}", "created": "{c}",
                  "modified": "{c}"}


def _from_key(k: str) -> str:
    """The JSON value of a sort key (dialect.py's encoding), keeping its JSON type."""
    return (f"CASE typeof({k}) WHEN 'null' THEN json('null') WHEN 'integer' THEN {k} WHEN 'real' THEN {k}"
            f" WHEN 'text' THEN json_quote({k}) ELSE CASE {k} WHEN x'03' THEN json('false')"
            f" WHEN x'04' THEN json('true') ELSE json(CAST(substr({k}, 2) AS TEXT)) END END")


@dataclass
class Stage:
    op: str
    arg: Any
    where: str


@dataclass
class Rel:
    """The rows a stage reads: a table or CTE, pending conditions, and how to see each row."""

    from_sql: str
    src: Source
    doc: str                         # SQL of the JSON document a row emits
    columns: tuple[str, ...]         # carried into a CTE besides the order columns
    order: list[str]                 # ORDER BY terms over this relation
    records: bool                    # rows are records (envelope available)
    where: list[str] = field(default_factory=list)


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


class PipelineSQL:
    """Builds the statement for a run of SQL stages."""

    def __init__(self, collection: str, meta: Meta, wide_sums: bool = False) -> None:
        self.collection = collection
        self.meta = meta
        self.wide_sums = wide_sums  # $sum that cannot overflow (slower; after SQLite's sum() has)
        self.params: list[Any] = []
        self.ctes: list[str] = []
        self.python_notes: list[str] = []
        self._n = 0

    def compiler(self, rel: Rel, keyed: frozenset[tuple[str, ...]] = frozenset()) -> Compiler:
        self._n += 1
        return Compiler(rel.src, keyed=keyed, params=self.params, namespace=f"p{self._n}_")

    def base(self, stages: list[Stage]) -> tuple[Rel, int]:
        """The collection's records with the leading $match stages planned onto an index."""
        matches = []
        i = 0
        while i < len(stages) and stages[i].op == "$match":
            matches.append(stages[i].arg)
            i += 1
        node: Node = simplify(And(tuple(matches)))
        sort: tuple[SortKey, ...] = stages[i].arg if i < len(stages) and stages[i].op == "$sort" else ()
        plan = choose(node, sort, self.meta, self.collection)
        src = source(self.meta)
        rel = Rel(f"docs INDEXED BY {plan.sql_index}", src, "json_set(body, '$._id', id)", RECORD_FIELDS,
                  ["id"], True, [live(self.collection)])
        if matches:
            c = self.compiler(rel, plan.keyed)
            rel.where.append(c.where(node))
            self.python_notes += c.python
        return rel, i

    def from_docs(self, docs: list[dict[str, Any]]) -> Rel:
        name = self._cte_name()
        try:
            self.params.append(orjson.dumps(docs).decode())
        except orjson.JSONEncodeError as e:  # a $project nested a $literal past what JSON can hold
            raise QueryError(f"the documents a $project or $unwind made cannot go on to the next stage: {e}") from e
        self.ctes.append(f"{name}(doc, o1) AS (SELECT value, key FROM json_each(?{len(self.params)}))")
        return Rel(name, Source("doc"), "doc", ("doc",), ["o1"], False)

    def _cte_name(self) -> str:
        return f"s{len(self.ctes) + 1}"

    def _where(self, rel: Rel) -> str:
        return f" WHERE {' AND '.join(rel.where)}" if rel.where else ""

    def materialize(self, rel: Rel, tail: str = "") -> Rel:
        """Wrap a relation into a CTE that carries its columns and its order."""
        name = self._cte_name()
        ocols = [f"o{i + 1}" for i in range(len(rel.order))]
        select = [*(f"{c} AS {c}" if rel.records else f"{rel.doc} AS doc" for c in rel.columns),
                  *(f"{o.removesuffix(' DESC')} AS {oc}" for o, oc in zip(rel.order, ocols, strict=True))]
        order = f" ORDER BY {', '.join(rel.order)}" if rel.order and tail else ""
        self.ctes.append(f"{name}({', '.join([*rel.columns, *ocols])}) AS"
                         f" (SELECT {', '.join(select)} FROM {rel.from_sql}{self._where(rel)}{order}{tail})")
        new_order = [oc + (" DESC" if o.endswith(" DESC") else "") for o, oc in zip(rel.order, ocols, strict=True)]
        if rel.records:
            src = Source("body", {k: v for k, v in rel.src.columns.items()}, rel.src.catalog)
            return Rel(name, src, rel.doc, rel.columns, new_order, True)
        return Rel(name, Source("doc"), "doc", ("doc",), new_order, False)

    def stage(self, rel: Rel, st: Stage) -> Rel:
        if st.op == "$match":
            c = self.compiler(rel)
            rel.where.append(c.where(st.arg))
            self.python_notes += c.python
            return rel
        if st.op == "$sort":
            c = self.compiler(rel)
            keys = c.order_by(st.arg, None)
            rel.order = keys + [o for o in rel.order if o.removesuffix(" DESC") not in
                                {k.removesuffix(" DESC") for k in keys}]
            return rel
        if st.op in ("$skip", "$limit"):
            n = self._param(st.arg)
            tail = f" LIMIT {n}" if st.op == "$limit" else f" LIMIT -1 OFFSET {n}"
            return self.materialize(rel, tail)
        if st.op == "$count":
            name = self._cte_name()
            self.ctes.append(f"{name}(doc) AS (SELECT json_object({literal(st.arg)}, count(*))"
                             f" FROM {rel.from_sql}{self._where(rel)} HAVING count(*) > 0)")
            return Rel(name, Source("doc"), "doc", ("doc",), [], False)
        if st.op == "$group":
            return self._group(rel, st.arg)
        raise AssertionError(st.op)  # pragma: no cover

    def _param(self, value: Any) -> str:
        self.params.append(value)
        return f"?{len(self.params)}"

    def _value_key(self, rel: Rel, path: Path) -> tuple[str, str]:
        """(sort key SQL, JSON value SQL) of a path in a row of ``rel``."""
        column = rel.src.columns.get(path.text) if path.column else None
        if column:
            return column, _ENVELOPE_JSON[path.column].format(c=column)  # type: ignore[index]
        f = single(rel.src.doc, path.segments)
        return f.key, f.json

    def _group(self, rel: Rel, spec: dict[str, Any]) -> Rel:
        keys: list[str] = []

        def key_json(part: Any) -> str:
            if isinstance(part, Path):
                k, _ = self._value_key(rel, part)
                keys.append(k)
                return _from_key(k)
            return f"json({self._param(canonical(part[1]))})"

        key = spec["key"]
        if isinstance(key, dict):
            id_sql = "json_object(" + ", ".join(f"{literal(k)}, {key_json(v)}" for k, v in key.items()) + ")"
        else:
            id_sql = key_json(key)
        fields = [f"'_id', {id_sql}"]
        order = f" ORDER BY {', '.join(rel.order)}" if rel.order else ""
        for name, (acc, arg) in spec["accumulators"].items():
            fields.append(f"{literal(name)}, {self._accumulator(rel, acc, arg, order)}")
        name = self._cte_name()
        ocols = [f"o{i + 1}" for i in range(len(keys))]
        # One group of everything: plain aggregates; with no accumulator either, the HAVING below
        # still needs an aggregate query, which GROUP BY NULL makes.
        group = f" GROUP BY {', '.join(keys)}" if keys else "" if spec["accumulators"] else " GROUP BY NULL"
        cols = ", ".join(["json_object(" + ", ".join(fields) + ")", *keys])
        self.ctes.append(f"{name}({', '.join(['doc', *ocols])}) AS (SELECT {cols}"
                         f" FROM {rel.from_sql}{self._where(rel)}{group} HAVING count(*) > 0)")
        return Rel(name, Source("doc"), "doc", ("doc",), ocols, False)

    def _accumulator(self, rel: Rel, acc: str, arg: Any, order: str) -> str:
        if acc == "$count":
            return "count(*)"
        if acc == "$sum" and not isinstance(arg, Path):
            return f"({self._param(arg)} * count(*))"
        column = rel.src.columns.get(arg.text) if arg.column else None
        if acc in ("$sum", "$avg"):
            if column:
                number = column if arg.column in ("version", "created", "modified") else "NULL"
                integer, real = number, "NULL"
            else:
                f = single(rel.src.doc, arg.segments)
                number = f"CASE WHEN {f.t} IN ('integer','real') THEN {f.v} END"
                integer, real = f"CASE WHEN {f.t} = 'integer' THEN {f.v} END", f"CASE WHEN {f.t} = 'real' THEN 1 END"
            if acc == "$avg":
                return f"avg({number})"
            return wide_sum(integer, real, number) if self.wide_sums else f"coalesce(sum({number}), 0)"
        k, value = self._value_key(rel, arg)
        if acc in ("$min", "$max"):
            return _from_key(f"{acc[1:]}({k})")
        if acc == "$push":
            return f"json_group_array({value}{order}) FILTER (WHERE {value} IS NOT NULL)"
        at = "'$[0]'" if acc == "$first" else "'$[#-1]'"
        return f"(json_group_array(coalesce({value}, json('null')){order}) -> {at})"

    def final(self, rel: Rel) -> str:
        order = f" ORDER BY {', '.join(rel.order)}" if rel.order else ""
        with_ = f"WITH {', '.join(self.ctes)} " if self.ctes else ""
        return f"{with_}SELECT {rel.doc} FROM {rel.from_sql}{self._where(rel)}{order}"


def wide_sum(integer: str, real: str, number: str) -> str:
    """A group's $sum that cannot overflow: an integer while the exact sum fits in 64 bits, else
    the float nearest it; a float (SQLite's total()) if the group summed any float.

    The integers are summed in two halves, ``i >> 32`` and ``i & 0xFFFFFFFF``, neither of which
    can overflow below 2**31 rows; the exact sum is ``hi * 2**32 + lo``.
    """
    hi, lo = f"sum(({integer}) >> 32)", f"sum(({integer}) & 4294967295)"
    high, low = f"({hi} + ({lo} >> 32))", f"({lo} & 4294967295)"
    return (f"CASE WHEN count({real}) > 0 THEN total({number}) WHEN {hi} IS NULL THEN 0"
            f" WHEN {high} BETWEEN -2147483648 AND 2147483647 THEN ({high} << 32) + {low}"
            f" ELSE {high} * 4294967296.0 + {low} END")


def compile_sql(collection: str, meta: Meta, stages: list[Stage],
                docs: list[dict[str, Any]] | None, wide_sums: bool = False) -> tuple[PipelineSQL, str]:
    """SQL for a run of SQL stages over the collection (``docs`` None) or over Python-made documents."""
    b = PipelineSQL(collection, meta, wide_sums)
    if docs is None:
        rel, i = b.base(stages)
    else:
        rel, i = b.from_docs(docs), 0
    for st in stages[i:]:
        rel = b.stage(rel, st)
    return b, b.final(rel)


def run(coll: Collection, pipeline: Any) -> list[dict[str, Any]]:
    stages = parse(pipeline)
    try:
        with coll._backend.read() as cur:
            meta = load_meta(cur, coll.name)
            docs: list[dict[str, Any]] | None = None
            i = 0
            while i < len(stages) or docs is None:
                j = i
                while j < len(stages) and stages[j].op in SQL_STAGES:
                    j += 1
                if j > i or docs is None:
                    docs = _run_sql(cur, coll.name, meta, stages[i:j], docs)
                i = j
                while i < len(stages) and stages[i].op in PYTHON_STAGES:
                    docs = stages[i].arg(docs)
                    i += 1
    except apsw.Error as e:
        raise failed(e, coll.name) from e
    return docs


def _run_sql(cur: apsw.Cursor, collection: str, meta: Meta, stages: list[Stage],
             docs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    b, sql = compile_sql(collection, meta, stages, docs)
    try:
        rows: list[Any] = cur.execute(sql, b.params).fetchall()
    except apsw.SQLError as e:
        if "integer overflow" not in str(e):
            raise
        # Some group's integer $sum went past 64 bits, which SQLite's sum() refuses. Sum again (in
        # the same snapshot) in a way that cannot overflow and keeps every other group's integers.
        b, sql = compile_sql(collection, meta, stages, docs, wide_sums=True)
        rows = cur.execute(sql, b.params).fetchall()
    return [_load(r[0]) for r in rows]


def _load(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # A float sum past the float range, which SQLite writes as 9.0e+999: orjson refuses
        # it; the standard library reads it as infinity.
        return json.loads(text)
