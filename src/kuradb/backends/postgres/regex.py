"""$regex patterns rewritten for PostgreSQL's regular expressions (ARE), meaning exactly what kuradb's mean.

kuradb's $regex language is defined by query/regex.py: Python's parse tree of a
checked pattern (no backreferences, lookaround or possessive repeats), ASCII
classes, ``$`` as the very end unless ``m``, Unicode case folding under ``i``
(RE2's: the dotless ``ı`` is not ``i``). Like regex.py's RE2 rewrite, the ARE
written here leaves nothing to the engine's defaults or locale:

- every character is a ``\\U`` escape or an ASCII letter or digit; every class is
  its code point ranges, so ``\\d \\w \\s`` are the ASCII sets;
- under ``i`` a literal or class becomes the explicit set of the characters it
  matches (nfa.py's predicate, which RE2 agrees with, evaluated on every code point
  that has a case), and the ARE runs case-sensitively;
- ``.`` is ``[^\\n]`` unless ``s``; ``^``/``$`` are ``\\A``/``\\Z`` unless ``m``, and
  with ``m`` the ARE's own ``^``/``$`` in its "weird" newline mode (``(?w)``: they match at
  line breaks, ``.`` and classes are unchanged);
- ``\\b``/``\\B`` are ``\\y``/``\\Y``, whose word characters are ASCII letters, digits
  and ``_`` because the operator runs under ``COLLATE "C"`` (the compiler's job);
- repeats past the ARE's bound of 255 are split (``x{600}`` is ``x{255}x{255}x{90}``):
  the same language, which is all a search asks.

A search only asks whether some substring matches, so greedy and lazy repeats are
the same here. PostgreSQL's engine is a DFA for such patterns: linear in the text.
"""
from __future__ import annotations

import bisect
import functools
import re
import re._constants as sre
from typing import Any

from ...query.nfa import predicate
from ...query.regex import UNICODE_MAX, class_ranges, parse

_BOUND = 255          # the ARE's largest repeat count
_ANY_CHAR = "[\\U00000001-\\U0010ffff]"   # PostgreSQL text never holds NUL
_NO_CHAR = "[^\\U00000001-\\U0010ffff]"
_AT = {sre.AT_BEGINNING_STRING: "\\A", sre.AT_END_STRING: "\\Z", sre.AT_BOUNDARY: "\\y",
       sre.AT_NON_BOUNDARY: "\\Y"}

Ranges = list[tuple[int, int]]


@functools.lru_cache(maxsize=128)
def to_are(pattern: str, flags: int) -> str:
    """The ARE for a pattern regex.check accepted (it raises QueryError for any other)."""
    tree = parse(pattern, flags)
    return "(?cw)" + _seq(tree, tree.state.flags)


def _seq(items: Any, flags: int) -> str:
    return "".join(_node(op, av, flags) for op, av in items)


def _node(op: Any, av: Any, flags: int) -> str:
    if op is sre.LITERAL and not flags & re.IGNORECASE:
        return _char(av)
    if op in (sre.LITERAL, sre.NOT_LITERAL, sre.IN):
        return _class(op, av, flags)
    if op is sre.ANY:
        return _ANY_CHAR if flags & re.DOTALL else "[^\\n]"
    if op is sre.AT:
        if av in (sre.AT_BEGINNING, sre.AT_END):
            line = bool(flags & re.MULTILINE)
            return ("^" if line else "\\A") if av is sre.AT_BEGINNING else ("$" if line else "\\Z")
        return _AT[av]
    if op is sre.BRANCH:
        return "(?:" + "|".join(_seq(alt, flags) for alt in av[1]) + ")"
    if op is sre.SUBPATTERN:
        return "(?:" + _seq(av[3], (flags | av[1]) & ~av[2]) + ")"
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        lo, hi, body = av
        inner = _seq(body, flags)
        return _repeat(f"(?:{inner})", lo, None if hi is sre.MAXREPEAT else hi) if inner else ""
    raise AssertionError(op)  # pragma: no cover - regex.parse refused everything else


def _repeat(atom: str, lo: int, hi: int | None) -> str:
    """``atom{lo,hi}`` (hi None: no bound) with no count past 255: the same language."""
    out = []
    while lo > _BOUND:
        out.append(f"{atom}{{{_BOUND}}}")
        lo -= _BOUND
        if hi is not None:
            hi -= _BOUND
    if hi is None:
        out.append(f"{atom}{{{lo},}}")
        return "".join(out)
    out.append(f"{atom}{{{lo}}}" if lo else "")
    spare = hi - lo
    while spare > 0:
        n = min(spare, _BOUND)
        out.append(f"{atom}{{0,{n}}}")
        spare -= n
    return "".join(out)


def _char(cp: int) -> str:
    c = chr(cp)
    return c if c.isascii() and c.isalnum() else f"\\U{cp:08x}"


def _class(op: Any, av: Any, flags: int) -> str:
    if op is sre.IN:
        negated, ranges = class_ranges(av)
        positive = [(o, a) for o, a in av if o is not sre.NEGATE]
    else:
        negated, ranges, positive = op is sre.NOT_LITERAL, [(av, av)], [(sre.LITERAL, av)]
    if flags & re.IGNORECASE:
        ranges = folded(tuple(positive))
    ranges = _merge([(max(a, 1), b) for a, b in ranges if b >= 1])
    if not ranges:
        return _ANY_CHAR if negated else _NO_CHAR
    body = "".join(_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in ranges)
    return f"[{'^' if negated else ''}{body}]"


def _merge(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@functools.lru_cache(maxsize=512)
def folded(items: tuple[tuple[Any, Any], ...]) -> Ranges:
    """The code points a (positive) class matches under ``i``: its own, less those with a case,
    plus those with a case that nfa.py's folding predicate accepts."""
    _, ranges = class_ranges(items)
    matches = predicate(sre.IN, list(items), re.IGNORECASE)
    cased = _cased()
    out: Ranges = []
    for a, b in _merge(ranges):
        start = a
        for cp in cased[_bisect(cased, a):_bisect(cased, b + 1)]:
            if cp > start:
                out.append((start, cp - 1))
            start = cp + 1
        if start <= b:
            out.append((start, b))
    out += [(cp, cp) for cp in cased if matches(chr(cp))]
    return _merge(out)


def _bisect(xs: list[int], x: int) -> int:
    return bisect.bisect_left(xs, x)


@functools.cache
def _cased() -> list[int]:
    """Every code point whose match under ``i`` may differ from an exact one: those with another case,
    and every case of them (one character each); Python's extra case pairs are among them."""
    out: set[int] = set()
    for cp in range(UNICODE_MAX + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        variants = {c.lower(), c.upper(), c.casefold(), c.title()}
        if variants != {c}:
            out.add(cp)
            out.update(ord(v) for v in variants if len(v) == 1)
    return sorted(out)

