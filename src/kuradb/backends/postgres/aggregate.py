"""Aggregation stages as one PostgreSQL statement: a CTE per stage that changes the rows.

The same stages and meaning as the SQLite backend's aggregate.py. ``$match`` and
``$sort`` carry through (the rows' order is a list of ORDER BY terms); ``$skip``
and ``$limit`` materialize; ``$group`` computes each accumulator in SQL;
``$count`` counts. Rows read by the first stages are the collection's live
records, later ones JSON documents.

Documents a stage makes are ``json`` (text kept as written), not ``jsonb``: jsonb
keeps a number's value but not its spelling, and ``1e16`` or a float sum must come
out as a float, as on SQLite. Fields are read from ``jsonb`` for comparing and
sorting and from ``json`` for the values that go out:

- group keys group by the jsonb value (JSON null as NULL: missing and null together,
  ``1`` with ``1.0``), come out as one member's JSON and sort in kuradb's total order;
- ``$sum``/``$avg`` add as ``numeric`` (exact): an integer while every number was one
  and the sum fits in 64 bits, else the float nearest the exact sum (infinite past the
  float range, written ``9e999`` as SQLite does); ``$avg`` is a float;
- ``$min``/``$max`` take the first value in the total order (null and missing skipped),
  ``$push`` the values in the rows' order (missing skipped, null kept), ``$first``/``$last``
  the first and last row's value (missing as null).

Parameters are named (``%(pN)s``): a stage's SQL is written before the conditions of
the stages around it are placed.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...errors import QueryError
from ...query.aggregate import Stage, leading
from ...query.indexes import ID_INDEX, Meta
from ...query.planner import Plan, choose
from ...query.syntax import ENVELOPE, TRUE, Path, canonical
from .compiler import (
    COLUMNS,
    MAX_PARAMS,
    Compiler,
    Source,
    at,
    container_text,
    document,
    literal,
    path_array,
    sort_terms,
    typeof,
)
from .queries import LIVE_FROM, live, source

_INT64 = (-(2**63), 2**63 - 1)
_FLOAT_EDGE = 2**1024 - 2**970   # sums at or past it round to an infinite float
_NUMBER_COLUMNS = ("version", "created", "modified")
# A records relation carries these (envelope columns, the text, and its jsonb) into a CTE.
_CARRIED = ("id", "type", "version", "created", "at", "author", "body", "doc")

Order = list[tuple[str, str]]   # (expression, direction suffix)


class Params:
    """One statement's parameters by name."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any, cast: str = "") -> str:
        if len(self.values) >= MAX_PARAMS:
            raise QueryError(f"the query needs more than {MAX_PARAMS} values in one statement",
                             hint="many values of one field belong in one $in")
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"%({name})s{cast}"


class _Compiler(Compiler):
    def __init__(self, source: Source, params: Params, plan: Plan | None = None) -> None:
        index = None if plan is None or plan.index is ID_INDEX else plan.index
        super().__init__(source, keyed=plan.keyed if plan else frozenset(), index=index)
        self._named = params

    def param(self, value: Any, cast: str = "") -> str:
        return self._named.add(value, cast)


@dataclass
class Rel:
    """The rows a stage reads: FROM, pending conditions, how to see each row, and their order."""

    from_sql: str
    src: Source                        # jsonb document and envelope columns, for the compiler
    jv: Callable[[Path], str]          # a field's value as json (NULL when missing)
    out: str                           # what a row emits (records: ignored, see final())
    order: Order
    records: bool
    where: list[str] = field(default_factory=list)
    prefix: str = ""                   # records: the qualifier of the envelope columns and body


def _split(term: str) -> tuple[str, str]:
    for suffix in (" DESC NULLS LAST", " NULLS FIRST", " DESC"):
        if term.endswith(suffix):
            return term[:-len(suffix)], suffix
    return term, ""


def float_text(s: str) -> str:
    """SQL of the JSON text of the float nearest the numeric ``s`` (a '.0' where PostgreSQL writes none)."""
    return (f"CASE WHEN abs({s}) >= {_FLOAT_EDGE} THEN CASE WHEN {s} > 0 THEN '9e999' ELSE '-9e999' END"
            f" ELSE regexp_replace(({s})::float8::text, '^(-?[0-9]+)$', '\\1.0') END")


class PipelineSQL:
    """Builds the statement for a run of SQL stages."""

    def __init__(self, coll: int, meta: Meta) -> None:
        self.coll = coll
        self.meta = meta
        self.params = Params()
        self.ctes: list[str] = []

    def compiler(self, rel: Rel, plan: Plan | None = None) -> _Compiler:
        return _Compiler(rel.src, self.params, plan)

    def base(self, stages: list[Stage]) -> tuple[Rel, int]:
        """The collection's records, the leading $match stages planned onto an index as ``find`` does."""
        node, sort, i = leading(stages)
        plan = choose(node, sort, self.meta)
        rel = self._records(LIVE_FROM, source(self.meta), "l.", [live(self.coll)])
        if i and node != TRUE:
            rel.where.append(self.compiler(rel, plan).where(node))
        return rel, i

    def _records(self, from_sql: str, src: Source, prefix: str, where: list[str]) -> Rel:
        return Rel(from_sql, src, lambda p: self._record_json(prefix, src, p), "", [(f"{prefix}id", "")], True,
                   where, prefix)

    @staticmethod
    def _record_json(prefix: str, src: Source, path: Path) -> str:
        column = src.columns.get(path.text) if path.column else None
        if column:
            return f"coalesce(to_json({column}), 'null'::json)"
        return f"({document(prefix + 'body', 'json')} #> {path_array(path.segments)})"

    def from_docs(self, docs: list[dict[str, Any]]) -> Rel:
        name = self._cte_name()
        try:
            text = orjson.dumps(docs).decode()
        except orjson.JSONEncodeError as e:  # a $project nested a $literal past what JSON can hold
            raise QueryError(f"the documents a $project or $unwind made cannot go on to the next stage: {e}") from e
        docs_sql = self.params.add(text, "::json")
        self.ctes.append(f"{name}(doc, j, o1) AS (SELECT value, {document('value::text')}, n"
                         f" FROM json_array_elements({docs_sql}) WITH ORDINALITY AS t(value, n))")
        return self._docs(name, [(f"{name}.o1", "")])

    def _docs(self, name: str, order: Order) -> Rel:
        as_json = document(f"{name}.doc::text", "json")
        return Rel(name, Source(f"{name}.j"), lambda p: f"({as_json} #> {path_array(p.segments)})",
                   f"{name}.doc", order, False)

    def _cte_name(self) -> str:
        return f"s{len(self.ctes) + 1}"

    @staticmethod
    def _where(rel: Rel) -> str:
        return f" WHERE {' AND '.join(rel.where)}" if rel.where else ""

    @staticmethod
    def _order(order: Order) -> str:
        return f" ORDER BY {', '.join(e + s for e, s in order)}" if order else ""

    def materialize(self, rel: Rel, tail: str) -> Rel:
        """Wrap a relation into a CTE that carries its rows, their order, and ``tail`` (LIMIT/OFFSET)."""
        name = self._cte_name()
        ocols = [f"o{i + 1}" for i in range(len(rel.order))]
        if rel.records:
            cols = [f"{rel.prefix}{c}" if c != "doc" else rel.src.doc for c in _CARRIED]
            names = list(_CARRIED)
        else:
            cols, names = [rel.out, rel.src.doc], ["doc", "j"]
        select = [*cols, *(e for e, _ in rel.order)]
        self.ctes.append(f"{name}({', '.join([*names, *ocols])}) AS (SELECT {', '.join(select)}"
                         f" FROM {rel.from_sql}{self._where(rel)}{self._order(rel.order)}{tail})")
        order = [(f"{name}.{oc}", s) for (_, s), oc in zip(rel.order, ocols, strict=True)]
        if rel.records:
            columns = {k: f"{name}.{COLUMNS[v]}" for k, v in ENVELOPE.items()}
            src = Source(f"{name}.doc", columns, rel.src.catalog, text=f"{name}.body")
            new = self._records(name, src, f"{name}.", [])
            new.order = order
            return new
        return self._docs(name, order)

    def stage(self, rel: Rel, st: Stage) -> Rel:
        if st.op == "$match":
            rel.where.append(self.compiler(rel).where(st.arg))
            return rel
        if st.op == "$sort":
            keys = [_split(t) for t in self.compiler(rel).order_by(st.arg, None)]
            seen = {e for e, _ in keys}
            rel.order = keys + [(e, s) for e, s in rel.order if e not in seen]
            return rel
        if st.op in ("$skip", "$limit"):
            n = self.params.add(st.arg)
            return self.materialize(rel, f" LIMIT {n}" if st.op == "$limit" else f" OFFSET {n}")
        if st.op == "$count":
            name = self._cte_name()
            self.ctes.append(f"{name}(doc, j) AS (SELECT json_build_object({literal(st.arg)}, count(*)),"
                             f" jsonb_build_object({literal(st.arg)}, count(*))"
                             f" FROM {rel.from_sql}{self._where(rel)} HAVING count(*) > 0)")
            return self._docs(name, [])
        if st.op == "$group":
            return self._group(rel, st.arg)
        raise AssertionError(st.op)  # pragma: no cover

    # -- $group --------------------------------------------------------------------------

    def _key(self, rel: Rel, path: Path) -> tuple[list[str], str, list[str]]:
        """(GROUP BY expressions, the JSON for the output, the ORDER BY terms) of a key part.

        Values group by jsonb equality, objects and arrays also by their text (a record's canonical JSON:
        ``[1]`` and ``[1.0]`` apart, as on SQLite), and sort by it. A group of numbers shows its first row's (``1``
        or ``1.0``, as on SQLite); any other group's members are spelled alike."""
        column = rel.src.columns.get(path.text) if path.column else None
        if column:
            return [column], f"coalesce(to_json({column}), 'null'::json)", [column + " NULLS FIRST"]
        x = at(rel.src.doc, path.segments)
        key = f"(CASE WHEN {typeof(x)} = 'null' THEN NULL ELSE {x} END)"
        jv = rel.jv(path)
        order = self._order(rel.order)
        first = _zero(f"(array_agg({jv}{order}) FILTER (WHERE {typeof(x)} = 'number'))[1]")
        out = f"coalesce({first}, min(({jv})::text COLLATE \"C\")::json, 'null'::json)"
        canonical = rel.src.json(path)
        text = container_text(x) if canonical is None else \
            f"(CASE WHEN {typeof(x)} IN ('object', 'array') THEN ({canonical})::text END)"
        return [key, text], out, sort_terms(key, text=text)

    def _group(self, rel: Rel, spec: dict[str, Any]) -> Rel:
        keys: list[str] = []
        order: list[str] = []

        def key_json(part: Any) -> str:
            if isinstance(part, Path):
                k, out, terms = self._key(rel, part)
                keys.extend(k)
                order.extend(terms)
                return out
            return self.params.add(canonical(part[1]), "::json")

        key = spec["key"]
        if isinstance(key, dict):
            id_sql = "json_build_object(" + ", ".join(f"{literal(k)}, {key_json(v)}" for k, v in key.items()) + ")"
        else:
            id_sql = key_json(key)
        fields = [f"'_id', {id_sql}"]
        for name, (acc, arg) in spec["accumulators"].items():
            fields.append(f"{literal(name)}, {self._accumulator(rel, acc, arg)}")
        doc = "json_build_object(" + ", ".join(fields) + ")"
        name = self._cte_name()
        ocols = [f"o{i + 1}" for i in range(len(order))]
        split = [_split(t) for t in order]
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        select = ", ".join([doc, *(e for e, _ in split)])
        self.ctes.append(f"{name}({', '.join(['doc', *ocols])}) AS (SELECT {select}"
                         f" FROM {rel.from_sql}{self._where(rel)}{group} HAVING count(*) > 0)")
        # the jsonb of each document, for the stages after
        typed = self._cte_name()
        self.ctes.append(f"{typed}(doc, j, {', '.join(ocols) or 'o0'}) AS"
                         f" (SELECT doc, {document('doc::text')}, {', '.join(ocols) or '0'} FROM {name})")
        return self._docs(typed, [(f"{typed}.{oc}", s) for oc, (_, s) in zip(ocols, split, strict=True)])

    def _number(self, rel: Rel, arg: Path) -> tuple[str, str]:
        """(the numeric value of a field where it is a number, whether it is written as a float)."""
        column = rel.src.columns.get(arg.text) if arg.column else None
        if column:
            return (f"({column})::numeric" if arg.column in _NUMBER_COLUMNS else "NULL::numeric"), "false"
        x = at(rel.src.doc, arg.segments)
        number = f"(CASE WHEN {typeof(x)} = 'number' THEN ({x})::numeric END)"
        return number, f"(({rel.jv(arg)})::text ~ '[.eE]')"

    def _accumulator(self, rel: Rel, acc: str, arg: Any) -> str:
        order = self._order(rel.order)
        if acc == "$count":
            return "count(*)"
        if acc == "$sum" and not isinstance(arg, Path):
            total = f"({self.params.add(arg, '::numeric')} * count(*))"
            return _typed_sum(total, "true" if isinstance(arg, float) else "false")
        if acc in ("$sum", "$avg"):
            number, is_float = self._number(rel, arg)
            if acc == "$avg":
                return f"(CASE WHEN count({number}) = 0 THEN 'null' ELSE {float_text(f'avg({number})')} END)::json"
            return _typed_sum(f"sum({number})", f"coalesce(bool_or({is_float}) FILTER (WHERE {number} IS NOT NULL),"
                                                f" false)")
        value = rel.jv(arg)
        if acc in ("$min", "$max"):
            column = rel.src.columns.get(arg.text) if arg.column else None
            if column:
                present = f"{column} IS NOT NULL"
                terms = [column + (" DESC" if acc == "$max" else "")]
            else:
                x = at(rel.src.doc, arg.segments)
                present = f"{typeof(x)} IS DISTINCT FROM 'null'"
                terms = sort_terms(x, acc == "$max", rel.src.json(arg))
            ties = ", ".join(e + s for e, s in rel.order)
            by = ", ".join(terms + ([ties] if ties else []))
            found = f"(array_agg({value} ORDER BY {by}) FILTER (WHERE {value} IS NOT NULL AND {present}))[1]"
            return f"coalesce({_zero(found)}, 'null'::json)"
        if acc == "$push":
            return f"coalesce(json_agg({value}{order}) FILTER (WHERE {value} IS NOT NULL), '[]'::json)"
        agg = f"array_agg(coalesce({value}, 'null'::json){order})"
        return f"({agg})[1]" if acc == "$first" else f"({agg})[count(*)]"

    def final(self, rel: Rel) -> str:
        with_ = f"WITH {', '.join(self.ctes)} " if self.ctes else ""
        out = f"{rel.prefix}body, {rel.prefix}id" if rel.records else f"({rel.out})::text"
        return f"{with_}SELECT {out} FROM {rel.from_sql}{self._where(rel)}{self._order(rel.order)}"


def _zero(v: str) -> str:
    """A number a group key, $min or $max shows: -0.0 as 0.0, as SQLite writes its floats."""
    return f"(SELECT CASE WHEN z::text = '-0.0' THEN '0.0'::json ELSE z END FROM (SELECT {v} AS z) AS n)"


def _typed_sum(total: str, any_float: str) -> str:
    """A $sum's JSON: 0 for no numbers, an integer while it fits in 64 bits and no number was a
    float, else the float nearest it."""
    lo, hi = _INT64
    return (f"(CASE WHEN {total} IS NULL THEN '0' WHEN NOT {any_float} AND {total} BETWEEN {lo} AND {hi}"
            f" THEN ({total})::text ELSE {float_text(total)} END)::json")


def run(reader: Any, coll: int, meta: Meta, stages: list[Stage],
        docs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The documents a run of SQL stages gives, over the collection (``docs`` None) or over ``docs``."""
    b = PipelineSQL(coll, meta)
    if docs is None:
        rel, i = b.base(stages)
    else:
        rel, i = b.from_docs(docs), 0
    for st in stages[i:]:
        rel = b.stage(rel, st)
    rows = reader.rows(b.final(rel), b.params.values)
    if rel.records:
        out = []
        for body, id in rows:
            d = orjson.loads(body)
            d["_id"] = id
            out.append(d)
        return out
    return [_load(r[0]) for r in rows]


def _load(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:   # an infinite float sum, written 9e999: the standard library reads it
        return json.loads(text)
