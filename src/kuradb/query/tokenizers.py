"""Full-text tokenizers in Python that give FTS5's tokens: unicode61, ascii, porter and trigram.

A text index on a store that is not SQLite (PostgreSQL) keeps the tokens these
produce, so that a search matches the same records as on SQLite: the same
splitting into tokens, case folding and diacritics (the tables of
unicode61_data.py, read off FTS5 itself), the same Porter stemmer (FTS5's
variant, which works on UTF-8 bytes) and the same trigrams. ``tokenizer(spec)``
takes what ``create_text_index(tokenize=...)`` stores (query/fulltext.py
checks its form) and refuses, as FTS5 does, an option it does not know.

What a text index holds of a record: every string at or under each indexed
field, in document order, joined by a space (``field_text``), as SQLite's
``group_concat`` over ``json_tree`` does.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

from .. import errors
from . import unicode61_data as data
from .pipeline import MISSING, get_single

Tokenize = Callable[[str], list[str]]
_ASCII_TOKEN = frozenset(range(ord("0"), ord("9") + 1)) | frozenset(range(ord("A"), ord("Z") + 1)) \
    | frozenset(range(ord("a"), ord("z") + 1))


def field_text(content: Any, field: str) -> str | None:
    """The strings at or under ``field`` of a record's content, joined by spaces; None if there are none."""
    value = get_single(content, tuple(field.split(".")))
    if value is MISSING:
        return None
    found = list(_strings(value))
    return " ".join(found) if found else None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _bad(spec: str, why: str) -> errors.ValidationError:
    return errors.ValidationError(f"tokenize {spec!r}: {why}", path="tokenize",
                                  hint="see SQLite's FTS5 tokenizers: unicode61, ascii, porter, trigram")


def _options(spec: str, args: list[str], known: tuple[str, ...]) -> dict[str, str]:
    if len(args) % 2:
        raise _bad(spec, "options come in pairs (name value)")
    out: dict[str, str] = {}
    for name, value in zip(args[::2], args[1::2], strict=True):
        key = name.lower()
        if key not in known:
            raise _bad(spec, f"unknown option {name!r}")
        out[key] = value
    return out


def _level(spec: str, value: str | None, allowed: str, default: int) -> int:
    if value is None:
        return default
    if len(value) != 1 or value not in allowed:
        raise _bad(spec, f"{value!r} is not one of {', '.join(allowed)}")
    return int(value)


def _ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


def _ascii_class(chars: set[int]) -> str:
    return "".join(re.escape(chr(c)) for c in sorted(chars))


def _ascii_set(args: list[str]) -> set[int]:
    """The ASCII token characters once the tokenchars and separators options apply, in their order."""
    chars = set(_ASCII_TOKEN)
    for name, value in zip(args[::2], args[1::2], strict=True):
        if name.lower() in ("tokenchars", "separators"):
            for ch in value:
                if ord(ch) < 128:
                    (chars.add if name.lower() == "tokenchars" else chars.discard)(ord(ch))
    return chars


def _fold_table(level: int) -> dict[int, int | None]:
    table: dict[int, int | None] = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
    table.update(data.FOLD0)
    if level:
        table.update(data.FOLD1 if level == 1 else data.FOLD2)
    return {k: (v or None) for k, v in table.items() if v != k}


def _unicode61(spec: str, args: list[str]) -> Tokenize:
    opts = _options(spec, args, ("remove_diacritics", "tokenchars", "separators", "categories"))
    if "categories" in opts:
        raise _bad(spec, "the categories option is not available on this store (only on SQLite stores)")
    level = _level(spec, opts.get("remove_diacritics"), "012", 1)
    ascii_chars = _ascii_class(_ascii_set(args))
    token = ascii_chars + _ranges(data.TOKEN)
    pattern = re.compile(f"[{token}][{token}{_ranges(data.DIACRITIC)}]*")
    fold = _fold_table(level)
    return lambda text: [t.translate(fold) for t in pattern.findall(text)]


def _ascii(spec: str, args: list[str]) -> Tokenize:
    _options(spec, args, ("tokenchars", "separators"))
    pattern = re.compile(f"[{_ascii_class(_ascii_set(args))}\\x80-\\U0010ffff]+")
    fold = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
    return lambda text: [t.translate(fold) for t in pattern.findall(text)]


def _trigram(spec: str, args: list[str]) -> Tokenize:
    opts = _options(spec, args, ("case_sensitive", "remove_diacritics"))
    case = _level(spec, opts.get("case_sensitive"), "01", 0)
    level = 2 if _level(spec, opts.get("remove_diacritics"), "012", 0) else 0
    if case and level:
        raise _bad(spec, "remove_diacritics needs case_sensitive 0")
    fold: dict[int, int | None] = {} if case else _fold_table(level)

    def tokenize(text: str) -> list[str]:
        chars = text.translate(fold)
        return [chars[i:i + 3] for i in range(len(chars) - 2)]
    return tokenize


@functools.cache
def tokenizer(spec: str) -> Tokenize:
    """The tokenizer a text index's ``tokenize`` option names (ValidationError if FTS5 would refuse it)."""
    words = spec.split()
    if not words:
        raise _bad(spec, "no tokenizer named")
    name, args = words[0].lower(), words[1:]
    if name == "porter":
        base = tokenizer(" ".join(args) if args else "unicode61")
        return lambda text: [stem(t) for t in base(text)]
    makers = {"unicode61": _unicode61, "ascii": _ascii, "trigram": _trigram}
    if name not in makers:
        raise _bad(spec, f"no tokenizer {words[0]!r}")
    return makers[name](spec, args)


# -- FTS5's Porter stemmer: the original algorithm over the token's UTF-8 bytes --------------------
# (ASCII vowels; any other byte is a consonant; tokens under 3 or over 64 bytes are left as they are)

def _vowel(c: int, y_is_vowel: bool) -> bool:
    return c in b"aeiou" or (y_is_vowel and c == 0x79)


def _vc(w: bytes, prev_consonant: bool) -> int:
    """Past the first vowel-consonant sequence of ``w``: the length it spans, 0 if there is none."""
    consonant, i, n = prev_consonant, 0, len(w)
    while i < n:
        consonant = not _vowel(w[i], consonant)
        if not consonant:
            break
        i += 1
    i += 1
    while i < n:
        consonant = not _vowel(w[i], consonant)
        if consonant:
            return i + 1
        i += 1
    return 0


def _m_gt0(w: bytes) -> bool:
    return _vc(w, False) != 0


def _m_gt1(w: bytes) -> bool:
    k = _vc(w, False)
    return bool(k) and _vc(w[k:], True) != 0


def _m_eq1(w: bytes) -> bool:
    k = _vc(w, False)
    return bool(k) and _vc(w[k:], True) == 0


def _cvc(w: bytes) -> bool:
    """*o: ends consonant-vowel-consonant, the last not w, x or y."""
    if not w or w[-1] in b"wxy":
        return False
    mask, consonant = 0, False
    for c in w:
        consonant = not _vowel(c, consonant)
        mask = (mask << 1) + consonant
    return (mask & 7) == 5


def _has_vowel(w: bytes) -> bool:
    return any(_vowel(c, i > 0) for i, c in enumerate(w))


def _ion(w: bytes) -> bool:
    return bool(w) and w[-1] in b"st" and _m_gt1(w)


_STEP2 = [(s.encode(), r.encode()) for s, r in (
    ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"), ("logi", "log"),
    ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"),
    ("ation", "ate"), ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"),
    ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"))]
_STEP3 = [(s.encode(), r.encode()) for s, r in (
    ("ical", "ic"), ("ness", ""), ("icate", "ic"), ("iciti", "ic"), ("ful", ""), ("ative", ""), ("alize", "al"))]
_STEP4 = [s.encode() for s in (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou", "ism", "ate", "iti",
    "ous", "ive", "ize")]


def _replace(w: bytes, rules: list[tuple[bytes, bytes]], cond: Callable[[bytes], bool]) -> bytes:
    """The first rule whose suffix ends ``w`` (leaving a stem) applies if ``cond`` holds of the stem."""
    for suffix, out in rules:
        if len(w) > len(suffix) and w.endswith(suffix):
            head = w[:-len(suffix)]
            return head + out if cond(head) else w
    return w


def _step1(w: bytes) -> bytes:
    if w[-1:] == b"s":
        if w[-2:-1] == b"e":
            w = w[:-2] if (len(w) > 4 and w[-4:-2] == b"ss") or (len(w) > 3 and w[-3:-2] == b"i") else w[:-1]
        elif w[-2:-1] != b"s":
            w = w[:-1]
    removed = False
    if len(w) > 3 and w.endswith(b"eed"):
        if _m_gt0(w[:-3]):
            w = w[:-1]
    elif len(w) > 2 and w.endswith(b"ed"):
        if _has_vowel(w[:-2]):
            w, removed = w[:-2], True
    elif len(w) > 3 and w.endswith(b"ing"):
        if _has_vowel(w[:-3]):
            w, removed = w[:-3], True
    if removed:
        for suffix, out in ((b"at", b"ate"), (b"bl", b"ble"), (b"iz", b"ize")):
            if len(w) > 2 and w.endswith(suffix):
                w = w[:-2] + out
                break
        else:
            c = w[-1]
            if not _vowel(c, False) and c not in b"lsz" and len(w) > 1 and c == w[-2]:
                w = w[:-1]
            elif _m_eq1(w) and _cvc(w):
                w += b"e"
    if w[-1:] == b"y" and _has_vowel(w[:-1]):
        w = w[:-1] + b"i"
    return w


def _step4(w: bytes) -> bytes:
    for suffix in _STEP4:
        if len(w) > len(suffix) and w.endswith(suffix):
            head = w[:-len(suffix)]
            return head if (_ion(head) if suffix == b"ion" else _m_gt1(head)) else w
    return w


def stem(token: str) -> str:
    """FTS5's porter stem of one token."""
    w = token.encode()
    if not 3 <= len(w) <= 64:
        return token
    w = _step1(w)
    w = _replace(w, _STEP2, _m_gt0)
    w = _replace(w, _STEP3, _m_gt0)
    w = _step4(w)
    if w[-1:] == b"e" and (_m_gt1(w[:-1]) or (_m_eq1(w[:-1]) and not _cvc(w[:-1]))):
        w = w[:-1]
    if len(w) > 1 and w.endswith(b"ll") and _m_gt1(w[:-1]):
        w = w[:-1]
    return w.decode(errors="replace")   # a byte-wise cut inside a character: FTS5 keeps the bytes
