"""The $regex language: which patterns are accepted, what they mean, and matching them in linear time.

A pattern is parsed by Python's own regular expression parser, then checked
against the subset that can be matched without backtracking (no
backreferences, lookaround, atomic groups or possessive repeats; repeat
counts like RE2's). Every accepted pattern means the same whichever engine
runs it:

- RE2 (``pip install kuradb[re2]``, the google-re2 package), given the pattern
  rewritten from the parse tree so that nothing is left to either engine's
  defaults; or, without it,
- nfa.py, a pure-Python automaton: slower per character, but also linear.

Both take time linear in the text, so no pattern can hang a query (Python's
``re`` backtracks: ``^(a+)+$`` on thirty ``a`` and a ``!`` runs for a minute).
Classes ``\\d \\w \\s`` and ``\\b`` are ASCII (as with Python's ``re.ASCII``,
RE2 and MongoDB); ``$`` without ``m`` is the very end of the text; ``i``
folds case by Unicode rules (as RE2 does: the dotless ``ı`` is not ``i``).
docs/QUERIES.md says this to users; docs/DECISIONS.md has the measurements.
"""
from __future__ import annotations

import functools
import re
import re._constants as sre
import re._parser as sre_parse  # Python's own parser: accepted syntax is exactly Python's
from collections.abc import Callable
from typing import Any

from ..errors import QueryError

try:
    import re2  # type: ignore[import-not-found,import-untyped,unused-ignore]
except ImportError:  # the optional extra kuradb[re2]
    re2 = None

FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_ALLOWED = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE | re.UNICODE
MAX_REPEAT = 1000      # a repeat's count, and the product of nested ones (RE2's limit)
# Characters and assertions once repeats are counted out. At this size a character costs the
# pure-Python engine up to ~70 µs, RE2 ~5 µs (docs/DECISIONS.md).
MAX_SIZE = 1000
MAX_NESTING = 100      # groups within groups
UNICODE_MAX = 0x10FFFF

# ASCII classes, as code point ranges.
DIGIT = ((0x30, 0x39),)
WORD = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
SPACE = ((0x09, 0x0D), (0x20, 0x20))
WORD_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")


def complement(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    out, lo = [], 0
    for a, b in ranges:
        if a > lo:
            out.append((lo, a - 1))
        lo = b + 1
    if lo <= UNICODE_MAX:
        out.append((lo, UNICODE_MAX))
    return tuple(out)


CATEGORIES = {
    sre.CATEGORY_DIGIT: DIGIT, sre.CATEGORY_NOT_DIGIT: complement(DIGIT),
    sre.CATEGORY_WORD: WORD, sre.CATEGORY_NOT_WORD: complement(WORD),
    sre.CATEGORY_SPACE: SPACE, sre.CATEGORY_NOT_SPACE: complement(SPACE),
}
_REJECTED = {
    sre.GROUPREF: "a backreference", sre.GROUPREF_EXISTS: "a conditional group (?(1)...)",
    sre.ASSERT: "a lookahead or lookbehind", sre.ASSERT_NOT: "a negative lookahead or lookbehind",
    sre.ATOMIC_GROUP: "an atomic group (?>...)", sre.POSSESSIVE_REPEAT: "a possessive repeat (*+, ++, ?+)",
}
_CHARACTER = (sre.LITERAL, sre.NOT_LITERAL, sre.IN, sre.ANY)
_HINT = ("$regex runs in time linear in the text: no backreferences, lookaround, atomic groups or possessive"
         " repeats, and at most 1000 repeats (docs/QUERIES.md)")


def check(pattern: Any, options: Any, where: str) -> tuple[str, int]:
    """A $regex operand (a string or compiled ``re.Pattern``, and ``$options``) -> (pattern, flags)."""
    flags = 0
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise QueryError(f"{where}: a regex must be a text pattern, not bytes")
        pattern, flags = pattern.pattern, pattern.flags & ~re.UNICODE
    elif not isinstance(pattern, str):
        raise QueryError(f"{where} needs a pattern string, not {type(pattern).__name__}")
    if options is not None:
        if not isinstance(options, str) or any(c not in FLAGS for c in options):
            shown = repr(options) if isinstance(options, str) else type(options).__name__
            raise QueryError(f"{where}: $options must be letters from 'imsx', not {shown}")
        for c in options:
            flags |= FLAGS[c]
    compiled(pattern, flags, where)
    return pattern, flags


def search(pattern: str, flags: int, text: Any) -> bool:
    """Whether the pattern matches somewhere in ``text`` (``kura_regexp`` in SQL)."""
    return isinstance(text, str) and compiled(pattern, flags).search(text)


def engine() -> str:
    """Which engine runs $regex here, for explain()."""
    return "RE2" if re2 is not None else "kuradb's linear-time Python matcher (install kuradb[re2] for speed)"


def required_text(pattern: str, flags: int) -> str | None:
    """A string every match contains (None if there is none worth checking): SQL looks for it
    with ``instr`` before calling the matcher, which most rows then never reach."""
    return compiled(pattern, flags).required


class Compiled:
    """A checked pattern, ready to search."""

    __slots__ = ("search", "required")

    def __init__(self, search: Callable[[str], bool], required: str | None) -> None:
        self.search = search
        self.required = required


@functools.lru_cache(maxsize=128)
def _compiled(pattern: str, flags: int) -> Compiled | str:
    """The matcher, or the reason the pattern is refused (cached either way)."""
    try:
        tree = parse(pattern, flags)
    except QueryError as e:
        return e.message
    if re2 is not None:
        options = re2.Options()
        options.never_capture, options.log_errors = True, False
        try:
            r = re2.compile(to_re2(tree, tree.state.flags), options)
        except re2.error as e:  # pragma: no cover - the checks above keep within RE2's limits
            return f"RE2 cannot compile it: {e}"
        match: Callable[[str], bool] = lambda text: r.search(text) is not None  # noqa: E731
    else:
        from .nfa import Automaton  # nfa reads this module's classes: imported on first use
        match = Automaton(tree, tree.state.flags).search
    return Compiled(match, _required(tree, tree.state.flags))


def compiled(pattern: str, flags: int, where: str = "$regex") -> Compiled:
    got = _compiled(pattern, flags)
    if isinstance(got, str):
        raise QueryError(f"{where}: {got}", hint=_HINT if "not supported" in got else None)
    return got


# -- parsing and checking ----------------------------------------------------------------

def parse(pattern: str, flags: int) -> Any:
    """Python's parse tree of an accepted pattern; QueryError (its ``message`` says why) if not."""
    try:
        pattern.encode()
    except UnicodeEncodeError:
        raise QueryError(f"{pattern!r} holds a lone surrogate") from None
    try:
        tree = sre_parse.parse(pattern, flags)
    except RecursionError:
        raise QueryError(f"{_short(pattern)} nests groups more than {MAX_NESTING} deep") from None
    except (re.error, ValueError, OverflowError) as e:
        raise QueryError(f"{_short(pattern)} is not a valid regular expression: {e}") from None
    _check_flags(tree.state.flags, pattern)
    size = _check(tree, pattern, 1, 0)
    if size > MAX_SIZE:
        raise QueryError(f"{_short(pattern)} is too large: {size} characters and assertions once its repeats"
                         f" are counted out (at most {MAX_SIZE})")
    return tree


def _short(pattern: str) -> str:
    return repr(pattern) if len(pattern) <= 60 else repr(pattern[:57]) + "..."


def _check_flags(flags: int, pattern: str) -> None:
    other = flags & ~_ALLOWED
    if other:
        names = [f.name for f in re.RegexFlag if f & other and f.name]
        raise QueryError(f"{_short(pattern)}: flag {'|'.join(names) or other} is not supported",
                         hint="$regex takes the flags i, m, s and x")


def _check(items: Any, pattern: str, multiplicity: int, depth: int) -> int:
    """Refuse what cannot run in linear time or past the limits; returns the size counted out."""
    if depth > MAX_NESTING:
        raise QueryError(f"{_short(pattern)} nests groups more than {MAX_NESTING} deep")
    size = 0
    items = list(items)
    for i, (op, av) in enumerate(items):
        if op in _REJECTED:
            raise QueryError(f"{_short(pattern)} uses {_REJECTED[op]}, which is not supported")
        if op is sre.AT and av is sre.AT_NON_BOUNDARY and not any(
                0 <= j < len(items) and items[j][0] in _CHARACTER for j in (i - 1, i + 1)):
            # RE2 tests assertions between bytes: a lone \B also holds inside a multi-byte character
            # (both bytes are non-word). Next to a character it holds only between characters.
            raise QueryError(f"{_short(pattern)}: \\B is supported only right before or after a character or"
                             " class (like \\Bb or a\\B)")
        if op is sre.BRANCH:
            size += sum(_check(alt, pattern, multiplicity, depth + 1) for alt in av[1])
        elif op is sre.SUBPATTERN:
            _check_flags(av[1], pattern)
            size += _check(av[3], pattern, multiplicity, depth + 1)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            lo, hi, body = av
            count = lo if hi is sre.MAXREPEAT else hi
            if count > MAX_REPEAT or count * multiplicity > MAX_REPEAT:
                shown = f"{{{lo},}}" if hi is sre.MAXREPEAT else f"{{{lo},{hi}}}"
                inside = " inside other repeats" if multiplicity > 1 else ""
                raise QueryError(f"{_short(pattern)} repeats {shown} times{inside}: more than {MAX_REPEAT}"
                                 " in all is not supported")
            size += max(count, 1) * _check(body, pattern, multiplicity * max(count, 1), depth + 1)
        else:
            size += 1
    return size


# -- RE2 ---------------------------------------------------------------------------------

def _char(cp: int) -> str:
    c = chr(cp)
    return c if c.isascii() and c.isalnum() else f"\\x{{{cp:x}}}"


def class_ranges(items: Any) -> tuple[bool, list[tuple[int, int]]]:
    """A class's items -> (negated, code point ranges), categories spelled out."""
    negated, ranges = False, []
    for op, av in items:
        if op is sre.NEGATE:
            negated = True
        elif op is sre.LITERAL:
            ranges.append((av, av))
        elif op is sre.RANGE:
            ranges.append(av)
        elif op is sre.CATEGORY:
            ranges.extend(CATEGORIES[av])
        else:  # pragma: no cover - Python's parser puts nothing else in a class
            raise AssertionError(op)
    return negated, ranges


def to_re2(items: Any, flags: int) -> str:
    """The pattern in RE2's syntax, every flag-dependent part written out explicitly."""
    out = []
    for op, av in items:
        fold = "(?i:{})" if flags & re.IGNORECASE else "{}"
        if op is sre.LITERAL:
            out.append(fold.format(_char(av)))
        elif op is sre.NOT_LITERAL:
            out.append(fold.format(f"[^{_char(av)}]"))
        elif op is sre.ANY:
            out.append("(?s:.)" if flags & re.DOTALL else "[^\\n]")
        elif op is sre.IN:
            negated, ranges = class_ranges(av)
            body = "".join(_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in ranges)
            out.append(fold.format(f"[{'^' if negated else ''}{body}]") if body else
                       ("(?s:.)" if negated else "[^\\x{0}-\\x{10ffff}]"))
        elif op is sre.AT:
            out.append(_AT_RE2[av] if av not in _AT_LINE else _AT_LINE[av] if flags & re.MULTILINE else _AT_RE2[av])
        elif op is sre.BRANCH:
            out.append("(?:" + "|".join(to_re2(alt, flags) for alt in av[1]) + ")")
        elif op is sre.SUBPATTERN:
            out.append("(?:" + to_re2(av[3], (flags | av[1]) & ~av[2]) + ")")
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            lo, hi, body = av
            count = f"{{{lo},}}" if hi is sre.MAXREPEAT else f"{{{lo},{hi}}}"
            out.append(f"(?:{to_re2(body, flags)}){count}")
        else:  # pragma: no cover - parse() refused everything else
            raise AssertionError(op)
    return "".join(out)


_AT_RE2 = {sre.AT_BEGINNING: "\\A", sre.AT_BEGINNING_STRING: "\\A", sre.AT_END: "\\z",
           sre.AT_END_STRING: "\\z", sre.AT_BOUNDARY: "\\b", sre.AT_NON_BOUNDARY: "\\B"}
_AT_LINE = {sre.AT_BEGINNING: "(?m:^)", sre.AT_END: "(?m:$)"}


# -- the text every match contains -------------------------------------------------------

def _required(items: Any, flags: int) -> str | None:
    """The longest run of literal characters at the top level of the pattern (or of its plain
    groups and repeats); none under ``i`` where a character has other cases (``k`` also matches
    the Kelvin sign), which ``instr`` would not find."""
    best, run = "", ""
    for op, av in _flatten(items, flags):
        ch = chr(av) if op is sre.LITERAL else None
        if ch is not None and (not flags & re.IGNORECASE or ch.isascii() and not ch.isalpha()):
            run += ch
            best = max(best, run, key=len)
        else:
            run = ""
    return best or None


def _flatten(items: Any, flags: int) -> list[tuple[Any, Any]]:
    """The top level with groups of the same flags opened, a repeat of at least n as its first
    n copies (a few at most) and a break after it; ``(None, None)`` breaks a run."""
    out: list[tuple[Any, Any]] = []
    for op, av in items:
        if op is sre.SUBPATTERN and (flags | av[1]) & ~av[2] == flags:
            out += _flatten(av[3], flags)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and av[0] >= 1:
            for _ in range(min(av[0], 4)):
                out += _flatten(av[2], flags)
            out.append((None, None))
        else:
            out.append((op, av))
    return out
