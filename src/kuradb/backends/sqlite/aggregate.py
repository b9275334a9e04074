"""Aggregation stages as one SQLite statement: a CTE per stage that changes the rows.

``$match``, ``$sort`` and the rows' order carry through; ``$skip``/``$limit``
materialize; ``$group`` computes each accumulator in SQL (``$push``, ``$first``
and ``$last`` through ``json_group_array`` in the rows' order); ``$count``
counts. Rows read by the first stages are the collection's live records (log
rows), later ones JSON documents.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import apsw
import orjson

from ...errors import QueryError
from ...query.aggregate import Stage, leading
from ...query.indexes import ID_INDEX, Meta
from ...query.planner import choose
from ...query.syntax import TRUE, Path, canonical
from .compiler import Compiler, Source
from .errors import READ_ERRORS
from .indexes import ID_INDEX as ID_SQL_INDEX
from .indexes import live, sql_name
from .queries import source
from .sql import literal, single

RECORD_FIELDS = ("body", "id", "type", "version", "created", "at", "author")
_ENVELOPE_JSON = {"id": "json_quote({c})", "type": "coalesce(json_quote({c}), json('null'))",
                  "author": "coalesce(json_quote({c}), json('null'))", "version": "{c}", "created": "{c}",
                  "modified": "{c}"}


def _from_key(k: str) -> str:
    """The JSON value of a sort key (dialect.py's encoding), keeping its JSON type."""
    return (f"CASE typeof({k}) WHEN 'null' THEN json('null') WHEN 'integer' THEN {k} WHEN 'real' THEN {k}"
            f" WHEN 'text' THEN json_quote({k}) ELSE CASE {k} WHEN x'03' THEN json('false')"
            f" WHEN x'04' THEN json('true') ELSE json(CAST(substr({k}, 2) AS TEXT)) END END")


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


class PipelineSQL:
    """Builds the statement for a run of SQL stages."""

    def __init__(self, coll: int, meta: Meta, wide_sums: bool = False) -> None:
        self.coll = coll
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
        node, sort, i = leading(stages)
        plan = choose(node, sort, self.meta)
        src = source(self.meta)
        if plan.index is not ID_INDEX:
            how = f"INDEXED BY {sql_name(self.coll, plan.index.name)}"
        else:
            how = f"INDEXED BY {ID_SQL_INDEX}" if "filter" in plan.serves or node == TRUE else "NOT INDEXED"
        rel = Rel(f"log {how}", src, "json_set(body, '$._id', id)", RECORD_FIELDS, ["id"], True, [live(self.coll)])
        if i:
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


def compile_sql(coll: int, meta: Meta, stages: list[Stage],
                docs: list[dict[str, Any]] | None, wide_sums: bool = False) -> tuple[PipelineSQL, str]:
    """SQL for a run of SQL stages over the collection (``docs`` None) or over Python-made documents."""
    b = PipelineSQL(coll, meta, wide_sums)
    if docs is None:
        rel, i = b.base(stages)
    else:
        rel, i = b.from_docs(docs), 0
    for st in stages[i:]:
        rel = b.stage(rel, st)
    return b, b.final(rel)


def run(reader: Any, coll: int, meta: Meta, stages: list[Stage],
        docs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The documents a run of SQL stages gives, over the collection (``docs`` None) or over ``docs``."""
    b, sql = compile_sql(coll, meta, stages, docs)
    try:
        try:
            rows: list[Any] = reader.cur.execute(sql, b.params).fetchall()
        except apsw.SQLError as e:
            if "integer overflow" not in str(e):
                raise
            # Some group's integer $sum went past 64 bits, which SQLite's sum() refuses. Sum again (in
            # the same snapshot) in a way that cannot overflow and keeps every other group's integers.
            b, sql = compile_sql(coll, meta, stages, docs, wide_sums=True)
            rows = reader.cur.execute(sql, b.params).fetchall()
    except READ_ERRORS as e:
        raise reader.backend.failed(e, "aggregate") from e
    return [_load(r[0]) for r in rows]


def _load(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # A float sum past the float range, which SQLite writes as 9.0e+999: orjson refuses
        # it; the standard library reads it as infinity.
        return json.loads(text)
