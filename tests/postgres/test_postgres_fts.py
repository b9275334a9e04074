"""Text search on PostgreSQL gives SQLite's answers: the same hits, in the same order, with FTS5's BM25 scores.

The same records and writes go to a SQLite store and a PostgreSQL store; random searches (words, prefixes,
phrases, exclusions, a filter) must return the same ids in the same order on both, the scores equal to
rounding. And the Python tokenizers (kuradb/query/tokenizers.py) give FTS5's tokens, compared with FTS5
itself for every code point and for random text.
"""
from __future__ import annotations

import itertools
import math
import random

import apsw
import psycopg
import pytest
from psycopg import sql

import kuradb
from kuradb.backends.postgres.backend import parse_url
from kuradb.query.tokenizers import tokenizer

names = itertools.count()
_VOCAB = ["rust", "Rust", "python", "Pythons", "café", "CAFE", "résumé", "resume", "naïve", "straße", "STRASSE",
          "running", "runs", "ran", "generators", "generation", "connected", "connection", "ΣΊΣΥΦΟΣ", "σίσυφος",
          "中文", "🥰", "don't", "e-mail", "foo_bar", "a", "ab", "abc", "xyz", "42", "lang", "language", "langue"]
_SPECS = ["unicode61 remove_diacritics 2", "unicode61 remove_diacritics 0", "porter unicode61", "trigram",
          "ascii", "unicode61 tokenchars _ separators x", "trigram case_sensitive 1", "porter ascii"]


def _fts5(db: apsw.Connection, spec: str, text: str) -> list[str]:
    words = spec.split()
    tok = db.fts5_tokenizer(words[0], words[1:])
    return [t if isinstance(t, str) else t[0] for t in
            tok(text.encode(), apsw.FTS5_TOKENIZE_DOCUMENT, None, include_offsets=False, include_colocated=False)]


@pytest.mark.parametrize("spec", _SPECS)
def test_the_python_tokenizers_give_fts5s_tokens(spec):
    db = apsw.Connection(":memory:")
    mine = tokenizer(spec)
    if not spec.startswith("porter"):
        for start in range(0, 0x110000, 8192):   # every code point: alone, upper-cased, in a word
            text = " ".join(chr(c) + chr(c).upper() + "A" + chr(c) for c in range(start, start + 8192)
                            if c and not 0xD800 <= c < 0xE000)
            assert mine(text) == _fts5(db, spec, text), hex(start)
    rnd = random.Random(spec)
    alphabet = list("abcdeiouy sstlzwxng-_'.,ABCÉéèçñüß") + [chr(c) for c in (
        0x301, 0x308, 0x130, 0x3c2, 0x1e9e, 0xfffe, 0x1f970, 0x4e2d, 0x10ffff, 0xe000, 0x2160)]
    suffixes = ["ational", "tional", "izer", "alli", "ousli", "ization", "iveness", "biliti", "icate", "ness", "ful",
                "ement", "ion", "sion", "ies", "sses", "eed", "ed", "ing", "y", "e", "ll", "bl", "iz", "able", "ly"]
    for _ in range(3000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))
        words = " ".join("".join(rnd.choice("bcdfglmnprstvwyaeiouy") for _ in range(rnd.randint(0, 7)))
                         + "".join(rnd.choice(suffixes) for _ in range(rnd.randint(0, 2))) for _ in range(5))
        for t in (text, words):
            assert mine(t) == _fts5(db, spec, t), t


def _docs(rnd: random.Random, n: int) -> list[tuple[str, dict]]:
    def text(k: int) -> str:
        return " ".join(rnd.choice(_VOCAB) for _ in range(rnd.randint(0, k)))
    out = []
    for i in range(n):
        doc: dict = {"title": text(4), "kind": rnd.choice(["a", "b"])}
        shape = rnd.random()
        if shape < 0.3:
            doc["body"] = [text(3), text(3)]
        elif shape < 0.5:
            doc["body"] = {"x": text(3), "y": [text(2), 7]}
        elif shape < 0.9:
            doc["body"] = text(12)
        out.append((f"d{i:02d}", doc))
    return out


def _query(rnd: random.Random) -> str:
    parts = []
    for _ in range(rnd.randint(1, 4)):
        w = rnd.choice(_VOCAB)
        r = rnd.random()
        if r < 0.15:
            parts.append(f'"{w} {rnd.choice(_VOCAB)}"')
        elif r < 0.3:
            parts.append(w[:rnd.randint(1, len(w))] + "*")
        elif r < 0.4:
            parts.append("-" + w)
        else:
            parts.append(w)
    if all(p.startswith("-") for p in parts):
        parts.append(rnd.choice(_VOCAB))
    return " ".join(parts)


def _hits(coll, q: str, f: dict | None) -> list[tuple[str, float]] | str:
    try:
        return [(h.record.id, h.score) for h in coll.search_text(q, filter=f, limit=50)]
    except kuradb.errors.QueryError as e:   # e.g. no words to look for: the same error on both
        return e.message


@pytest.mark.parametrize("spec", _SPECS)
def test_searches_on_postgres_equal_sqlites(pg, tmp_path, spec):
    rnd = random.Random(spec)
    lite, post = kuradb.open(tmp_path / "s"), pg.open(f"fts{next(names)}")
    try:
        colls = [s.collection("notes") for s in (lite, post)]
        docs = _docs(rnd, 40)
        for c in colls:
            c.put_many(docs[:30])
            c.create_text_index(["title", "body"], tokenize=spec)
            c.put_many(docs[30:])
        for step in range(6):   # overwrites, deletes, purges: the index moves with each
            i = rnd.randrange(40)
            for c in colls:
                if step % 3 == 0:
                    c.put(_docs(random.Random(step), 1)[0][1], id=f"d{i:02d}")
                elif step % 3 == 1 and c.get(f"d{i:02d}", None) is not None:
                    c.delete(f"d{i:02d}")
                elif step % 3 == 2:
                    try:
                        c.purge(f"d{i:02d}")
                    except kuradb.errors.NotFound:
                        pass
        for _ in range(60):
            q = _query(rnd)
            f = rnd.choice([None, {"kind": "a"}])
            a, b = _hits(colls[0], q, f), _hits(colls[1], q, f)
            if isinstance(a, str) or isinstance(b, str):
                assert a == b, q
                continue
            assert [i for i, _ in a] == [i for i, _ in b], (q, f, a, b)
            assert all(math.isclose(x, y, rel_tol=1e-12) for (_, x), (_, y) in zip(a, b, strict=True)), (q, a, b)
    finally:
        lite.close()
        post.close()


def _damage(pg, name: str, *statements: str) -> None:
    url, schema = parse_url(pg.location(name))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        for statement in statements:
            conn.execute(statement)


def test_verify_names_a_damaged_text_index_and_repair_rebuilds_it(pg):
    name = f"fts{next(names)}"
    with pg.open(name) as s:
        c = s.collection("notes")
        c.put_many([("a", {"t": "alpha beta"}), ("b", {"t": "beta gamma"})])
        c.create_text_index(["t"])
        assert s.verify().ok
        coll = c._target().coll
    _damage(pg, name, f'DELETE FROM "kura_fts:{coll}:docs" WHERE position = (SELECT min(position) FROM'
                      f' "kura_fts:{coll}:docs")', f'DROP TRIGGER "kura_fts:{coll}:unhead" ON log',
            'CREATE TABLE "kura_fts:999" (x int)')
    with pg.open(name) as s:
        c = s.collection("notes")
        problems = s.verify().problems
        assert any("trigger 'kura_fts:" in p and "missing" in p for p in problems), problems
        assert any("'kura_fts:999' belongs to no declared index" in p for p in problems), problems
        s.repair()
        assert [p for p in s.verify().problems if "999" not in p] == []
        c.delete("a")    # the trigger is back: a deleted record leaves the index
        assert [h.record.id for h in c.search_text("beta")] == ["b"]
    _damage(pg, name, f'DELETE FROM "kura_fts:{coll}:docs"')
    with pg.open(name) as s:
        assert any("1 live records missing from the text index" in p for p in s.verify().problems)


def test_a_text_index_inside_transactions_and_savepoints(pg):
    with pg.open(f"fts{next(names)}") as s:
        c = s.collection("notes")
        c.put_many([("a", {"t": "alpha beta"}), ("b", {"t": "beta gamma"})])
        c.create_index("u", unique=True)
        with s.transaction():
            c.create_text_index(["t"])            # made inside the transaction: its writes are indexed
            c.put({"t": "delta", "u": 1}, id="c")
            with pytest.raises(kuradb.errors.DuplicateKey):
                c.put({"t": "delta epsilon", "u": 1}, id="d")   # refused: its tokens are not left behind
            assert [h.record.id for h in c.search_text("delta")] == ["c"]
            assert c.search_text("epsilon") == []
        assert [h.record.id for h in c.search_text("beta")] == ["a", "b"]
        with pytest.raises(RuntimeError), s.transaction():
            c.drop_index("text")
            c.put({"t": "zeta"}, id="e")
            raise RuntimeError("abort")
        assert [h.record.id for h in c.search_text("delta")] == ["c"]
        other = s.collection("other")
        other.put({"t": "iota"}, id="w")
        with s.transaction():
            with pytest.raises(RuntimeError), s.transaction():   # a savepoint, rolled back with its index
                other.create_text_index(["t"])
                other.put({"t": "eta"}, id="x")
                raise RuntimeError("abort")
            other.put({"t": "theta"}, id="y")
        with pytest.raises(kuradb.errors.NotFound):
            other.search_text("theta")
        c.put({"t": "zeta"}, id="e")
        assert [h.record.id for h in c.search_text("zeta")] == ["e"]
        with pytest.raises(kuradb.errors.ValidationError, match="categories"):
            s.collection("other").create_text_index(["t"], tokenize="unicode61 categories Lu")
        with pytest.raises(kuradb.errors.ValidationError, match="unknown option"):
            s.collection("other").create_text_index(["t"], tokenize="unicode61 bogus 1")
        assert s.verify().ok
