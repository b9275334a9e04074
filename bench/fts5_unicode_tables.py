"""Writes src/kuradb/query/unicode61_data.py: what SQLite's FTS5 tokenizers do with each code point.

kuradb's Python tokenizers (kuradb/query/tokenizers.py, used where the store is not SQLite) must split
and fold text exactly as FTS5's unicode61 and trigram tokenizers of the SQLite that kuradb ships with
(apsw). Rather than Python's unicodedata (another Unicode version, changing with Python), the tables
are read off FTS5 itself, one code point at a time: which characters are token characters (the default
categories "L* N* Co"), which are diacritics a token may carry, and each character's folding with
remove_diacritics 0, 1 and 2. Run it again when the bundled SQLite's Unicode tables change;
tests/postgres/test_tokenizers.py compares the result with FTS5 for every code point.

    PYTHONPATH=src python bench/fts5_unicode_tables.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import apsw

OUT = Path(__file__).resolve().parent.parent / "src" / "kuradb" / "query" / "unicode61_data.py"
FLAGS = apsw.FTS5_TOKENIZE_DOCUMENT


def _points() -> list[int]:
    return [cp for cp in range(128, 0x110000) if not 0xD800 <= cp < 0xE000]


def _run(tok: apsw.FTS5Tokenizer, text: str) -> list[str]:
    return [t[0] if isinstance(t, tuple) else t
            for t in tok(text.encode(), FLAGS, None, include_offsets=False, include_colocated=False)]


def _ranges(points: list[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for p in points:
        if out and out[-1][1] == p - 1:
            out[-1][1] = p
        else:
            out.append([p, p])
    return [(a, b) for a, b in out]


def main() -> None:
    db = apsw.Connection(":memory:")
    u = {rd: db.fts5_tokenizer("unicode61", ["remove_diacritics", str(rd)]) for rd in (0, 1, 2)}
    tri = {rd: db.fts5_tokenizer("trigram", ["remove_diacritics", str(rd)]) for rd in (0, 1)}
    token, diacritic = [], []
    fold0: dict[int, int] = {}
    fold1: dict[int, int] = {}
    fold2: dict[int, int] = {}
    for cp in _points():
        ch = chr(cp)
        # folding of every character (trigram folds them all): "xx" + the folded character, none if dropped
        f0 = _run(tri[0], "xx" + ch)
        f0cp = ord(f0[0][2]) if f0 else 0
        f2 = _run(tri[1], "xx" + ch)
        f2cp = ord(f2[0][2]) if f2 else 0
        if f0cp != cp:
            fold0[cp] = f0cp
        if f2cp != f0cp:
            fold2[cp] = f2cp
        alone = _run(u[0], ch)
        if alone:
            token.append(cp)
        elif len(_run(u[0], "x" + ch + "x")) == 1:
            diacritic.append(cp)
        else:
            continue
        one = _run(u[1], "x" + ch + "x")
        f1cp = ord(one[0][1]) if one and len(one[0]) == 3 else 0
        if f1cp != f0cp:
            fold1[cp] = f1cp
    lines = [f'"""FTS5\'s unicode61 and trigram tables (SQLite {apsw.sqlite_lib_version()}), read off FTS5 by'
             ' bench/fts5_unicode_tables.py."""',
             "# Generated: do not edit. Code points from 128 up; ASCII is in kuradb/query/tokenizers.py.",
             "# TOKEN: token characters of the default categories; DIACRITIC: marks a token may carry.",
             "# FOLD0: folding (remove_diacritics 0), where it changes the character; FOLD1 / FOLD2:",
             "# remove_diacritics 1 / 2, where it differs from FOLD0 (0: the character is dropped).", ""]
    for name, ranges in (("TOKEN", _ranges(token)), ("DIACRITIC", _ranges(diacritic))):
        lines.append(f"{name}: tuple[tuple[int, int], ...] = (")
        lines += [f"    {', '.join(f'({a:#x}, {b:#x})' for a, b in ranges[i:i + 5])},"
                  for i in range(0, len(ranges), 5)]
        lines.append(")")
    for name, table in (("FOLD0", fold0), ("FOLD1", fold1), ("FOLD2", fold2)):
        items = sorted(table.items())
        lines.append(f"{name}: dict[int, int] = {{")
        lines += [f"    {', '.join(f'{a:#x}: {b:#x}' for a, b in items[i:i + 6])}," for i in range(0, len(items), 6)]
        lines.append("}")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(token)} token, {len(diacritic)} diacritic code points; fold {len(fold0)}, {len(fold1)},"
          f" {len(fold2)}", file=sys.stderr)


if __name__ == "__main__":
    main()
