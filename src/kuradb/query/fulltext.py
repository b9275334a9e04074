"""Full-text search: the search-text language, text index options, and ranked hits.

Search text follows MongoDB's ``$text``: words match if any is present (ranked
by relevance), ``"a phrase"`` must be present, ``-word`` must be absent, and
``word*`` matches a prefix. The backend's dialect runs it over the collection's
text index (SQLite: FTS5 with BM25, kuradb/backends/sqlite/fts.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import errors
from ..records import Record
from .indexes import load_meta
from .syntax import check_count, check_text, parse_filter, show

if TYPE_CHECKING:
    from .engine import Target

DEFAULT_TOKENIZER = "unicode61 remove_diacritics 2"
_TOKENIZERS = ("unicode61", "porter", "ascii", "trigram")
_TOKENIZER_ARG = re.compile(r"[A-Za-z0-9_]+")
_TERM = re.compile(r'(-?)"([^"]*)"|(-?)([^\s"]+)')


@dataclass(frozen=True)
class Hit:
    """A search result: the record and its relevance (higher is better; for SQLite, BM25 negated)."""

    record: Record
    score: float


@dataclass(frozen=True)
class Terms:
    """Parsed search text: phrases that must all be present, words of which any may be (each with
    whether it is a prefix), and words or phrases that must be absent."""

    phrases: list[str] = field(default_factory=list)
    words: list[tuple[str, bool]] = field(default_factory=list)
    excluded: list[tuple[str, bool]] = field(default_factory=list)


def check_tokenizer(tokenize: Any) -> str:
    words = tokenize.split() if isinstance(tokenize, str) else []
    if not words or words[0] not in _TOKENIZERS or not all(_TOKENIZER_ARG.fullmatch(w) for w in words):
        raise errors.ValidationError(
            f"tokenize must name a tokenizer ({', '.join(_TOKENIZERS)}) and its options, not {tokenize!r}",
            path="tokenize", hint=f"the default is {DEFAULT_TOKENIZER!r}; 'porter unicode61' adds English stemming")
    return " ".join(words)


def parse_search(text: Any) -> Terms:
    if not isinstance(text, str):
        raise errors.QueryError(f"search text must be a string, not {type(text).__name__}")
    check_text(text, "search text")
    if text.count('"') % 2:
        raise errors.QueryError(f"search text {show(text)} has an unclosed quote", hint='close the "quoted phrase"')
    terms = Terms()
    for m in _TERM.finditer(text):
        quoted = m.group(2) is not None
        term = m.group(2) if quoted else m.group(4)
        negated = (m.group(1) if quoted else m.group(3)) == "-"
        if not any(ch.isalnum() for ch in term):
            continue
        prefix = not quoted and term.endswith("*")
        word = term.rstrip("*") if prefix else term
        if negated:
            terms.excluded.append((word, prefix))
        elif quoted:
            terms.phrases.append(word)
        else:
            terms.words.append((word, prefix))
    if not terms.phrases and not terms.words:
        raise errors.QueryError(f"search text {show(text)} has no words to look for",
                                hint='give words, "a phrase" or word*; -word excludes')
    return terms


def search(target: Target, text: str, *, filter: Any = None, limit: int = 10) -> list[Hit]:
    terms = parse_search(text)
    node = parse_filter(filter)
    check_count(limit, "limit", allow_none=False)
    with target.backend.read() as r:
        meta = load_meta(r, target.coll)
        if meta.text is None:
            raise errors.NotFound(f"{target.name} has no text index",
                                  hint="create one with collection.create_text_index(['title', 'body'])")
        return target.backend.dialect.search(r, target, meta, terms, node, limit)
