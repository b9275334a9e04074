"""Full-text search on PostgreSQL: per collection a table of FTS5's tokens of each live record, ranked by BM25.

The text index of the collection with id 5 is

    "kura_fts:5"       (position, col, token, offsets)   one row per token of a field of a live record
    "kura_fts:5:docs"  (position, size)                  one row per live record: how many tokens it has
    "kura_fts:5:stats" (rows, tokens)                    their count and sum, for BM25's average length

with the tokens of kuradb/query/tokenizers.py, which are FTS5's (the same splitting,
folding, diacritics, stemming and trigrams as the SQLite store's index), so a search
matches the same records as on SQLite. PostgreSQL's own parsers (``to_tsvector``)
split and fold differently, and a ``tsvector`` caps positions (16383) and lexemes
(2046 bytes), so they are not used. Tokens are looked up by their first 256
characters (``left(token, 256)``: a b-tree entry has a size limit) and then compared
whole, for equal words and for prefixes (``LIKE`` on a ``COLLATE "C"`` key).

A record's tokens are written by the write that makes it live (``index``, called
by the log's append in its savepoint); a trigger on ``log`` removes them in the
statement that makes it stop being live (superseded, deleted, purged, dropped), as
on SQLite. Both move with the write's transaction and savepoints.

Hits are ranked by BM25 computed as FTS5's ``bm25()`` does (k1 = 1.2, b = 0.75,
every field weighing 1, the IDF of a phrase from how many live records hold it,
floored at 1e-6; the length of a record is its count of tokens over all fields), so
scores and their order are SQLite's; equal scores go by ``_id``.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from ...backend import NewEntry
from ...query.engine import records
from ...query.fulltext import Hit, Terms
from ...query.indexes import IndexInfo, Meta
from ...query.syntax import TRUE, Node
from ...query.tokenizers import field_text, tokenizer
from .compiler import Compiler
from .queries import RECORD_COLUMNS, source

_KEY = 256             # characters of a token in its b-tree key
_K1, _B = "1.2::float8", "0.75::float8"
_UNHEAD = "kura_fts_unhead"


def table(coll: int) -> str:
    return f'"kura_fts:{int(coll)}"'


def docs(coll: int) -> str:
    return f'"kura_fts:{int(coll)}:docs"'


def stats(coll: int) -> str:
    return f'"kura_fts:{int(coll)}:stats"'


def _trigger(coll: int) -> str:
    return f'"kura_fts:{int(coll)}:unhead"'


def objects(coll: int) -> dict[str, str]:
    """The unquoted names of a text index's tables, indexes and trigger, and what each is."""
    c = int(coll)
    return {f"kura_fts:{c}": "table", f"kura_fts:{c}:docs": "table", f"kura_fts:{c}:stats": "table",
            f"kura_fts:{c}:token": "index",
            f"kura_fts:{c}:position": "index", f"kura_fts:{c}:unhead": "trigger"}


def tokens_of(content: Any, info: IndexInfo) -> tuple[int, list[tuple[int, str, str]]]:
    """A record's token count and its rows (field number, token, offsets as an array literal)."""
    tokenize = tokenizer(info.options.get("tokenize", ""))
    size, rows = 0, []
    for col, field in enumerate(info.fields):
        text = field_text(content, field)
        if text is None:
            continue
        where: dict[str, list[str]] = {}
        found = tokenize(text)
        for offset, token in enumerate(found):
            where.setdefault(token, []).append(str(offset))
        size += len(found)
        rows += [(col, token, "{" + ",".join(offsets) + "}") for token, offsets in where.items()]
    return size, rows


def _insert(cur: Any, coll: int, info: IndexInfo, found: Iterable[tuple[int, Any]]) -> None:
    """Write the index rows of records (position, content). The rows travel as one JSON text each
    statement (a parameter psycopg passes as it is; the server takes it apart)."""
    sizes, rows = [], []
    for position, content in found:
        size, tokens = tokens_of(content, info)
        sizes.append((position, size))
        rows += [(position, col, token, offsets) for col, token, offsets in tokens]
    if not sizes:
        return
    cur.execute(f"INSERT INTO {docs(coll)}(position, size) SELECT (e->>0)::bigint, (e->>1)::integer"
                " FROM json_array_elements(%s::json) AS e", (orjson.dumps(sizes).decode(),), prepare=False)
    cur.execute(f"UPDATE {stats(coll)} SET rows = rows + %s, tokens = tokens + %s",
                (len(sizes), sum(size for _, size in sizes)), prepare=False)
    if rows:
        cur.execute(f"INSERT INTO {table(coll)}(position, col, token, offsets) SELECT (e->>0)::bigint,"
                    " (e->>1)::smallint, e->>2, (e->>3)::integer[] FROM json_array_elements(%s::json) AS e",
                    (orjson.dumps(rows).decode(),), prepare=False)


def index(cur: Any, text_indexes: dict[int, IndexInfo], entries: list[NewEntry]) -> None:
    """Index the live versions among ``entries`` (the log's append, in its savepoint)."""
    by_coll: dict[int, list[tuple[int, Any]]] = {}
    for e in entries:
        if e.head == 1 and e.coll in text_indexes and e.body is not None:
            by_coll.setdefault(e.coll, []).append((e.position, orjson.loads(e.body)))
    for coll, found in by_coll.items():
        _insert(cur, coll, text_indexes[coll], found)


def declared(cur: Any) -> dict[int, IndexInfo]:
    """The text index of each collection that has one (read once per write transaction)."""
    return {coll: IndexInfo(name, tuple(orjson.loads(fields)), False, "text", orjson.loads(options))
            for coll, name, fields, options in cur.execute(
                "SELECT coll, name, fields, options FROM indexes WHERE kind = 'text'")}


def build(cur: Any, coll: int, info: IndexInfo) -> None:
    """Make the tables and the trigger of ``info`` and index the live records (create, repair)."""
    tokenizer(info.options.get("tokenize", ""))   # a tokenizer FTS5 would refuse: ValidationError, nothing made
    c = int(coll)
    cur.execute(f"CREATE OR REPLACE FUNCTION {_UNHEAD}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " EXECUTE format('DELETE FROM %I WHERE position = $1', TG_ARGV[0]) USING OLD.position;"
                " EXECUTE format('WITH d AS (DELETE FROM %I WHERE position = $1 RETURNING size) UPDATE %I SET"
                " rows = rows - (SELECT count(*) FROM d), tokens = tokens - (SELECT coalesce(sum(size), 0) FROM d)',"
                " TG_ARGV[0] || ':docs', TG_ARGV[0] || ':stats') USING OLD.position;"
                " RETURN NULL; END $$")
    cur.execute(f"CREATE TABLE {table(c)}(position bigint NOT NULL, col smallint NOT NULL,"
                ' token text COLLATE "C" NOT NULL, offsets integer[] NOT NULL)')
    cur.execute(f"CREATE TABLE {docs(c)}(position bigint PRIMARY KEY, size integer NOT NULL)")
    cur.execute(f"CREATE TABLE {stats(c)}(rows bigint NOT NULL, tokens bigint NOT NULL)")
    cur.execute(f"INSERT INTO {stats(c)} VALUES (0, 0)")
    for row in _live(cur, c):
        _insert(cur, c, info, row)
    cur.execute(f'CREATE INDEX "kura_fts:{c}:token" ON {table(c)}(left(token, {_KEY}), position)')
    cur.execute(f'CREATE INDEX "kura_fts:{c}:position" ON {table(c)}(position)')
    cur.execute(f"CREATE TRIGGER {_trigger(c)} AFTER UPDATE OF head ON log FOR EACH ROW"
                f" WHEN (OLD.coll = {c} AND OLD.head = 1 AND NEW.head IS DISTINCT FROM 1)"
                f" EXECUTE FUNCTION {_UNHEAD}('kura_fts:{c}')")
    cur.execute(f"ANALYZE {table(c)}")
    cur.execute(f"ANALYZE {docs(c)}")


def _live(cur: Any, coll: int, batch: int = 2000) -> Iterable[list[tuple[int, Any]]]:
    """The live records of a collection, ``batch`` at a time, in position order."""
    after = -1
    while True:
        rows = cur.execute("SELECT position, body FROM log WHERE coll = %s AND head = 1 AND position > %s"
                           " ORDER BY position LIMIT %s", (coll, after, batch)).fetchall()
        if not rows:
            return
        yield [(p, orjson.loads(body) if body is not None else None) for p, body in rows]
        after = rows[-1][0]


def drop(cur: Any, coll: int) -> None:
    cur.execute(f"DROP TRIGGER IF EXISTS {_trigger(coll)} ON log")
    cur.execute(f"DROP TABLE IF EXISTS {table(coll)}")
    cur.execute(f"DROP TABLE IF EXISTS {docs(coll)}")
    cur.execute(f"DROP TABLE IF EXISTS {stats(coll)}")


# -- search ------------------------------------------------------------------------------------------

def _phrases(terms: Terms, info: IndexInfo) -> tuple[list[list[tuple[str, bool]]], int, int]:
    """FTS5's phrases of a search (each its tokens, the last maybe a prefix), in FTS5's order: the
    required phrases, the words (any of them), the excluded ones; and where the words and exclusions start."""
    tokenize = tokenizer(info.options.get("tokenize", ""))

    def phrase(text: str, prefix: bool) -> list[tuple[str, bool]]:
        found = tokenize(text)
        return [(t, prefix and i == len(found) - 1) for i, t in enumerate(found)]
    out = [phrase(p, False) for p in terms.phrases]
    words = len(out)
    out += [phrase(w, prefix) for w, prefix in terms.words]
    excluded = len(out)
    out += [phrase(w, prefix) for w, prefix in terms.excluded]
    return out, words, excluded


def _like(prefix: str) -> str:
    return prefix[:_KEY].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _token_cond(c: Compiler, alias: str, token: str, prefix: bool) -> str:
    if prefix:
        return (f"left({alias}.token, {_KEY}) LIKE {c.param(_like(token))}"
                f" AND starts_with({alias}.token, {c.param(token)})")
    return f"left({alias}.token, {_KEY}) = {c.param(token[:_KEY])} AND {alias}.token = {c.param(token)}"


def _hits_sql(c: Compiler, tab: str, phrase: list[tuple[str, bool]]) -> str:
    """(position, frequency) of the live records holding a phrase: its tokens at consecutive offsets of
    one field, counted once per place it starts. Each later token is a lookup (LATERAL, LIMIT 1) from
    where the first one is, so that a phrase of many tokens (a trigram phrase) plans in linear time."""
    if len(phrase) == 1:
        return (f"SELECT a0.position, sum(cardinality(a0.offsets))::float8 AS f FROM {tab} AS a0"
                f" WHERE {_token_cond(c, 'a0', *phrase[0])} GROUP BY a0.position")
    nexts = "".join(   # parameters in the order the text holds them: these first, then the first token's
        f" CROSS JOIN LATERAL (SELECT 1 FROM {tab} AS a{i} WHERE {_token_cond(c, f'a{i}', *t)}"
        f" AND a{i}.position = a0.position AND a{i}.col = a0.col AND o.v + {i} = ANY(a{i}.offsets) LIMIT 1) AS x{i}"
        for i, t in enumerate(phrase) if i)
    first = _token_cond(c, "a0", *phrase[0])
    return (f"SELECT a0.position, count(*)::float8 AS f FROM {tab} AS a0 CROSS JOIN LATERAL unnest(a0.offsets)"
            f" AS o(v){nexts} WHERE {first} GROUP BY a0.position")


def search(reader: Any, name: str, coll: int, meta: Meta, terms: Terms, node: Node, limit: int) -> list[Hit]:
    """The live records matching ``terms`` (and ``node``), best first by BM25 as FTS5 computes it.

    One pass over the token rows of every phrase gives each record its frequency of each (``g``);
    how many records hold a phrase is a count over ``g``; the search's condition (every required
    phrase, any of the words, none of the excluded) is a test of which frequencies a record has."""
    info = meta.text
    assert info is not None
    phrases, words, excluded = _phrases(terms, info)
    required = [i for i in range(words) if phrases[i]]
    any_of = [i for i in range(words, excluded) if phrases[i]]
    absent = [i for i in range(excluded, len(phrases)) if phrases[i]]
    if len(required) < words or (excluded > words and not any_of) or limit == 0:
        return []   # a phrase with no tokens (a word of only separators, or under 3 characters for trigram)
    c = Compiler(source(meta))
    tab = table(coll)
    used = required + any_of + absent
    hits = " UNION ALL ".join(f"SELECT h.position, {i} AS k, h.f FROM ({_hits_sql(c, tab, phrases[i])}) AS h"
                              for i in used)
    freqs = ", ".join(f"sum(f) FILTER (WHERE k = {i}) AS f{i}" for i in used)
    scored = required + any_of
    counts = ", ".join(f"count(f{i})::float8 AS c{i}" for i in scored)
    idfs = ", ".join(f"CASE WHEN ln((n.rows - q.c{i} + 0.5::float8) / (q.c{i} + 0.5::float8)) <= 0 THEN 1e-6::float8"
                     f" ELSE ln((n.rows - q.c{i} + 0.5::float8) / (q.c{i} + 0.5::float8)) END AS i{i}" for i in scored)
    cond = [f"g.f{i} IS NOT NULL" for i in required]
    if any_of:
        cond.append("(" + " OR ".join(f"g.f{i} IS NOT NULL" for i in any_of) + ")")
    cond += [f"g.f{i} IS NULL" for i in absent]
    score = " + ".join(
        f"coalesce(w.i{i} * ((g.f{i} * ({_K1} + 1.0::float8)) / (g.f{i} + {_K1}"
        f" * (1::float8 - {_B} + {_B} * z.size::float8 / (n.tokens / n.rows)))), 0::float8)" for i in scored)
    where = c.where(node)
    # Each join below is a LATERAL lookup by position (OFFSET 0 keeps it one): the planner cannot know
    # how many records match, and a guess too low once made it scan the log for every match. The totals
    # are one row (LIMIT 1 tells the planner so: its guess of a table never analyzed made the plan
    # costly enough to be compiled by JIT, 0.3 s on every search).
    lookup = "CROSS JOIN LATERAL (SELECT {cols} FROM {tab} WHERE position = {at}.position OFFSET 0) AS {alias}"
    sql = (f"WITH g AS MATERIALIZED (SELECT position, {freqs} FROM ({hits}) AS u GROUP BY position),"
           f" n AS MATERIALIZED (SELECT rows::float8 AS rows, tokens::float8 AS tokens FROM {stats(coll)} LIMIT 1),"
           f" w AS MATERIALIZED (SELECT {idfs} FROM n, (SELECT {counts} FROM g) AS q),"
           f" s AS MATERIALIZED (SELECT g.position, (0::float8 + {score}) AS score FROM g CROSS JOIN n CROSS JOIN w"
           f" {lookup.format(cols='size', tab=docs(coll), at='g', alias='z')} WHERE {' AND '.join(cond)}),"
           f" t AS MATERIALIZED (SELECT s.position, s.score, l.id FROM s"
           f" {lookup.format(cols='*', tab='log', at='s', alias='l')}"
           + ("" if node == TRUE else " CROSS JOIN LATERAL (SELECT l.body::jsonb AS doc OFFSET 0) AS d")
           + f" WHERE l.coll = {int(coll)} AND l.head = 1" + ("" if node == TRUE else f" AND {where}")
           + f" ORDER BY s.score DESC, l.id LIMIT {c.param(limit)})"
           f" SELECT {', '.join(RECORD_COLUMNS)}, l.body, t.score FROM t"
           f" {lookup.format(cols='*', tab='log', at='t', alias='l')} ORDER BY t.score DESC, t.id")
    rows = reader.rows(sql, c.params)
    found = records(name, [r[:10] for r in rows], None)
    return [Hit(rec, float(r[10])) for rec, r in zip(found, rows, strict=True)]


# -- verify ------------------------------------------------------------------------------------------

def problems(cur: Any, coll: int, info: IndexInfo, have: dict[str, str]) -> list[str]:
    """What is wrong with a text index: a missing table, index or trigger, records missing or left over."""
    out = [f"its {kind} {name!r} is missing (repair rebuilds it)" for name, kind in objects(coll).items()
           if have.get(name) != kind]
    if out:
        return out
    missing, extra, counted, kept = cur.execute(
        f"SELECT (SELECT count(*) FROM log WHERE coll = %s AND head = 1 AND position NOT IN"
        f" (SELECT position FROM {docs(coll)})), (SELECT count(*) FROM {docs(coll)} WHERE position NOT IN"
        f" (SELECT position FROM log WHERE coll = %s AND head = 1)),"
        f" (SELECT array[count(*), coalesce(sum(size), 0)] FROM {docs(coll)}),"
        f" (SELECT array_agg(array[rows, tokens]) FROM {stats(coll)})", (coll, coll)).fetchone()
    if missing or extra:
        out.append(f"{missing} live records missing from the text index and {extra} entries of records that"
                   " are gone (repair rebuilds it)")
    if kept != [counted]:
        out.append(f"its totals {kept} are not the records' {counted} (repair rebuilds it)")
    return out
