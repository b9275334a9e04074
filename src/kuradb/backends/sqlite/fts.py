"""Full-text search in SQLite: one contentless FTS5 table per collection, kept by triggers on ``log``.

The FTS5 row of a record is its live version's log position. Triggers keep it
in the statement that moves a record's head: a new live version is indexed, a
version that stops being the live one (superseded, deleted, purged, dropped)
leaves the index, and a head put back (a refused write undone) comes back. So
the index changes in the write's transaction, and a rollback takes it back.
Each indexed field contributes all the strings under it (a string, or every
string inside an array or object). Ranked by BM25.
"""
from __future__ import annotations

from typing import Any

from ...query.fulltext import Terms
from ...query.indexes import IndexInfo
from .sql import literal, single

_EVENTS = ("insert", "unhead", "rehead")


def table(coll: int) -> str:
    return f'"kura_fts:{int(coll)}"'


def trigger(coll: int, event: str) -> str:
    return f'"kura_fts:{int(coll)}:{event}"'


def objects(coll: int) -> list[str]:
    """The unquoted names of a text index's table and triggers."""
    return [table(coll).strip('"'), *(trigger(coll, e).strip('"') for e in _EVENTS)]


def _text(doc: str, path: str) -> str:
    """Every string at or under a field, joined: what gets indexed for it."""
    p = single(doc, tuple(path.split(".")))
    return f"(SELECT group_concat(value, ' ') FROM json_tree({p.doc}, {p.path}) WHERE type = 'text')"


def build(cur: Any, coll: int, info: IndexInfo) -> None:
    """Make the FTS5 table and its triggers for ``info`` and index the live records (create, repair)."""
    cols = ", ".join(f"f{i}" for i in range(len(info.fields)))
    fts, c = table(coll), int(coll)
    new_text = ", ".join(_text("new.body", f) for f in info.fields)
    cur.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='', contentless_delete=1,"
                f" tokenize={literal(info.options['tokenize'])})")
    cur.execute(f"CREATE TRIGGER {trigger(coll, 'insert')} AFTER INSERT ON log WHEN new.coll = {c} AND new.head = 1"
                f" BEGIN INSERT INTO {fts}(rowid, {cols}) VALUES (new.position, {new_text}); END")
    cur.execute(f"CREATE TRIGGER {trigger(coll, 'unhead')} AFTER UPDATE OF head ON log"
                f" WHEN old.coll = {c} AND old.head = 1 AND new.head IS NOT 1"
                f" BEGIN DELETE FROM {fts} WHERE rowid = old.position; END")
    cur.execute(f"CREATE TRIGGER {trigger(coll, 'rehead')} AFTER UPDATE OF head ON log"
                f" WHEN new.coll = {c} AND new.head = 1 AND old.head IS NOT 1"
                f" BEGIN INSERT INTO {fts}(rowid, {cols}) VALUES (new.position, {new_text}); END")
    cur.execute(f"INSERT INTO {fts}(rowid, {cols}) SELECT position, {', '.join(_text('body', f) for f in info.fields)}"
                f" FROM log NOT INDEXED WHERE coll = {c} AND head = 1")   # in rowid order: FTS5 appends


def drop(cur: Any, coll: int) -> None:
    for event in _EVENTS:
        cur.execute(f"DROP TRIGGER IF EXISTS {trigger(coll, event)}")
    cur.execute(f"DROP TABLE IF EXISTS {table(coll)}")


def _quote(term: str, prefix: bool = False) -> str:
    return '"' + term.replace('"', '""') + '"' + ("*" if prefix else "")


def match(terms: Terms) -> str:
    """Search terms -> an FTS5 query: every "phrase", any word, no -excluded word or phrase."""
    parts = [_quote(p) for p in terms.phrases]
    if terms.words:
        parts.append("(" + " OR ".join(_quote(w, prefix) for w, prefix in terms.words) + ")")
    query = " AND ".join(parts)
    for term, prefix in terms.excluded:
        query = f"({query}) NOT {_quote(term, prefix)}"
    return query


def problems(cur: Any, coll: int, schema: dict[str, str]) -> list[str]:
    """What is wrong with a text index: a missing table or trigger, records missing or left over."""
    fts = table(coll)
    if fts.strip('"') not in schema:
        return ["its FTS5 table is missing (repair rebuilds it)"]
    out = [f"trigger {name!r} is missing, so writes do not reach the index (repair rebuilds it)"
           for name in objects(coll)[1:] if name not in schema]
    missing, extra = cur.execute(
        f"SELECT (SELECT count(*) FROM log WHERE coll=?1 AND head=1 AND position NOT IN (SELECT rowid FROM {fts})),"
        f" (SELECT count(*) FROM {fts} WHERE rowid NOT IN"
        f" (SELECT position FROM log WHERE coll=?1 AND head=1))", (coll,)).fetchone()
    if missing or extra:
        out.append(f"{missing} live records missing from the text index and {extra} entries of records that"
                   " are gone (repair rebuilds it)")
    return out
