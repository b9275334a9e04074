"""Full-text search: one SQLite FTS5 index per collection, ranked by BM25.

The index is contentless (it stores no copy of the text) and kept by triggers
on ``docs``, so it changes in the statement that writes the record: the same
transaction, and a rollback takes it back. Each indexed field contributes all
the strings under it (a string, or every string inside an array or object).

Search text follows MongoDB's ``$text``: words match if any is present (ranked
by BM25), ``"a phrase"`` must be present, ``-word`` must be absent, and
``word*`` matches a prefix.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import apsw
import orjson

from .. import errors
from ..records import Record
from ..sqlite import Transaction
from .compiler import Compiler
from .dialect import literal, single
from .engine import RECORD_COLUMNS, failed, source
from .indexes import IndexInfo, load_meta
from .syntax import check_count, check_text, parse_filter, show

if TYPE_CHECKING:
    from ..collection import Collection

DEFAULT_TOKENIZER = "unicode61 remove_diacritics 2"
_TOKENIZERS = ("unicode61", "porter", "ascii", "trigram")
_TOKENIZER_ARG = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class Hit:
    """A search result: the record and its relevance (higher is better; BM25, negated)."""

    record: Record
    score: float


def check_tokenizer(tokenize: Any) -> str:
    words = tokenize.split() if isinstance(tokenize, str) else []
    if not words or words[0] not in _TOKENIZERS or not all(_TOKENIZER_ARG.fullmatch(w) for w in words):
        raise errors.ValidationError(
            f"tokenize must name an FTS5 tokenizer ({', '.join(_TOKENIZERS)}) and its options, not {tokenize!r}",
            path="tokenize", hint=f"the default is {DEFAULT_TOKENIZER!r}; 'porter unicode61' adds English stemming")
    return " ".join(words)


def table(collection: str) -> str:
    return f'"kura_fts:{collection}"'


def trigger(collection: str, event: str) -> str:
    return f'"kura_fts:{collection}:{event}"'


def _text(doc: str, path: str) -> str:
    """Every string at or under a field, joined: what gets indexed for it."""
    p = single(doc, tuple(path.split(".")))
    return f"(SELECT group_concat(value, ' ') FROM json_tree({p.doc}, {p.path}) WHERE type = 'text')"


def build(cur: apsw.Cursor, collection: str, info: IndexInfo) -> None:
    """Make the FTS5 table and its triggers for ``info`` and index the live records (create, repair)."""
    cols = [f"f{i}" for i in range(len(info.fields))]
    fts, coll = table(collection), literal(collection)
    new_text = ", ".join(_text("new.body", f) for f in info.fields)
    cur.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5({', '.join(cols)}, content='', contentless_delete=1,"
                f" tokenize={literal(info.options['tokenize'])})")
    cur.execute(f"CREATE TRIGGER {trigger(collection, 'insert')} AFTER INSERT ON docs"
                f" WHEN new.collection = {coll} AND new.deleted = 0 BEGIN"
                f" INSERT INTO {fts}(rowid, {', '.join(cols)}) VALUES (new.rowid, {new_text}); END")
    cur.execute(f"CREATE TRIGGER {trigger(collection, 'delete')} AFTER DELETE ON docs"
                f" WHEN old.collection = {coll} AND old.deleted = 0 BEGIN"
                f" DELETE FROM {fts} WHERE rowid = old.rowid; END")
    cur.execute(f"CREATE TRIGGER {trigger(collection, 'update')} AFTER UPDATE ON docs"
                f" WHEN new.collection = {coll} BEGIN"
                f" DELETE FROM {fts} WHERE rowid = old.rowid AND old.deleted = 0;"
                f" INSERT INTO {fts}(rowid, {', '.join(cols)}) SELECT new.rowid, {new_text} WHERE new.deleted = 0;"
                " END")
    cur.execute(f"INSERT INTO {fts}(rowid, {', '.join(cols)}) SELECT rowid,"
                f" {', '.join(_text('body', f) for f in info.fields)} FROM docs"
                f" WHERE collection = {coll} AND deleted = 0")


def create(tx: Transaction, collection: str, info: IndexInfo) -> IndexInfo:
    existing = load_meta(tx.cur, collection).text
    if existing is not None:
        if (existing.fields, existing.options) == (info.fields, info.options):
            return existing
        raise errors.AlreadyExists(f"{collection} already has a text index ({existing.name!r} on"
                                   f" {list(existing.fields)})", hint="drop it first; one text index per collection")
    cur = tx.cur
    build(cur, collection, info)
    cur.execute("INSERT INTO indexes(collection, name, kind, fields, is_unique, options, created)"
                " VALUES(?, ?, 'text', ?, 0, ?, ?)",
                (collection, info.name, orjson.dumps(list(info.fields)).decode(), orjson.dumps(info.options).decode(),
                 time.time_ns() // 1000))
    return info


def drop_objects(cur: apsw.Cursor, collection: str) -> None:
    for event in ("insert", "delete", "update"):
        cur.execute(f"DROP TRIGGER IF EXISTS {trigger(collection, event)}")
    cur.execute(f"DROP TABLE IF EXISTS {table(collection)}")


def _quote(term: str, prefix: bool = False) -> str:
    return '"' + term.replace('"', '""') + '"' + ("*" if prefix else "")


_TERM = re.compile(r'(-?)"([^"]*)"|(-?)([^\s"]+)')


def fts_query(text: Any) -> str:
    """Search text -> an FTS5 query: every "phrase", any word, no -excluded word or phrase."""
    if not isinstance(text, str):
        raise errors.QueryError(f"search text must be a string, not {type(text).__name__}")
    check_text(text, "search text")
    if text.count('"') % 2:
        raise errors.QueryError(f"search text {show(text)} has an unclosed quote", hint='close the "quoted phrase"')
    phrases: list[str] = []
    words: list[str] = []
    excluded: list[str] = []
    for m in _TERM.finditer(text):
        quoted = m.group(2) is not None
        term = m.group(2) if quoted else m.group(4)
        negated = (m.group(1) if quoted else m.group(3)) == "-"
        if not any(ch.isalnum() for ch in term):
            continue
        prefix = not quoted and term.endswith("*")
        q = _quote(term.rstrip("*") if prefix else term, prefix)
        (excluded if negated else phrases if quoted else words).append(q)
    if not phrases and not words:
        raise errors.QueryError(f"search text {show(text)} has no words to look for",
                                hint='give words, "a phrase" or word*; -word excludes')
    parts = list(phrases)
    if words:
        parts.append("(" + " OR ".join(words) + ")")
    query = " AND ".join(parts)
    for q in excluded:
        query = f"({query}) NOT {q}"
    return query


def search(coll: Collection, text: str, *, filter: Any = None, limit: int = 10) -> list[Hit]:
    query = fts_query(text)
    node = parse_filter(filter)
    check_count(limit, "limit", allow_none=False)
    try:
        with coll._backend.read() as cur:
            meta = load_meta(cur, coll.name)
            if meta.text is None:
                raise errors.NotFound(f"{coll.name} has no text index",
                                      hint="create one with collection.create_text_index(['title', 'body'])")
            c = Compiler(source(meta, prefix="d."))
            where = c.where(node)
            cols = ", ".join(f"d.{col.strip()}" for col in RECORD_COLUMNS.split(","))
            fts = table(coll.name)
            sql = (f"SELECT {cols}, json(d.body), bm25({fts}) FROM {fts} JOIN docs AS d ON d.rowid = {fts}.rowid"
                   f" WHERE {fts} MATCH {c.param(query)} AND d.deleted = 0"
                   + ("" if where == "1" else f" AND {where}")
                   + f" ORDER BY bm25({fts}) LIMIT {c.param(limit)}")
            rows: list[Any] = cur.execute(sql, c.params).fetchall()
    except apsw.Error as e:
        raise failed(e, coll.name) from e
    return [Hit(coll._record(r[0], r[1:10]), -r[10]) for r in rows]
