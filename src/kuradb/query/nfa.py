"""A linear-time matcher for checked $regex patterns, in pure Python: the engine without google-re2.

Thompson's construction over Python's parse tree (regex.py checked it and
defines what it means), run as a DFA built lazily: the step from a set of
automaton states on one character (with the previous character's kind, for
``^ $ \\b``) is worked out once and cached, so a warm search costs one dict
lookup per character, and a cold step at most the automaton's size. No input
can make it backtrack.
"""
from __future__ import annotations

import re
import re._constants as sre
from collections.abc import Callable
from typing import Any

from .regex import WORD_CHARS, class_ranges

CHAR, SPLIT, JUMP, ASSERT, MATCH = range(5)
# The kind of the character before a position.
START, NEWLINE, WORD, OTHER = range(4)
BOT, EOT, BOL, EOL, BOUNDARY, NOT_BOUNDARY = range(6)
# Cached steps, and automaton states held by them, per pattern; past either the cache starts
# again (a few MB at most: regex.py keeps 128 patterns).
_CACHE_STEPS, _CACHE_STATES = 5_000, 50_000
# Python's re folds these four together under IGNORECASE; RE2 (whose meaning $regex has) keeps
# the dotless ı and the dotted İ apart from i and I.
_TURKIC = {"i": "iI", "I": "iI", "ı": "ı", "İ": "İ"}  # noqa: RUF001

Predicate = Callable[[str], bool]


def _escape(cp: int) -> str:
    return re.escape(chr(cp))


def predicate(op: Any, av: Any, flags: int) -> Predicate:
    """Whether one character matches a literal, a class or ``.`` under ``flags``."""
    if op is sre.ANY:
        return (lambda c: True) if flags & re.DOTALL else (lambda c: c != "\n")
    if op is sre.LITERAL and not flags & re.IGNORECASE:
        ch = chr(av)
        return lambda c: c == ch
    if op is sre.LITERAL or op is sre.NOT_LITERAL:
        negated, ranges = op is sre.NOT_LITERAL, [(av, av)]
    else:
        negated, ranges = class_ranges(av)
    body = "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges)
    positive = re.compile(f"[{body}]").fullmatch if body else (lambda c: None)
    if not flags & re.IGNORECASE:
        return (lambda c: positive(c) is None) if negated else (lambda c: positive(c) is not None)
    folded = re.compile(f"[{'^' if negated else ''}{body}]", re.IGNORECASE).fullmatch if body else (
        lambda c: c if negated else None)

    def matches(c: str) -> bool:
        orbit = _TURKIC.get(c)
        if orbit is None:
            return folded(c) is not None
        return any(positive(x) is not None for x in orbit) != negated
    return matches


class Automaton:
    """``Automaton(tree, flags).search(text)``: whether the pattern matches somewhere in ``text``."""

    def __init__(self, tree: Any, flags: int) -> None:
        self.kind: list[int] = []
        self.arg: list[Any] = []
        self.out: list[int] = []
        self.alt: list[int] = []
        self.looks_back = False  # an assertion reads the previous character (else its kind is not kept)
        self._atoms: dict[int, tuple[Any, Any, int]] = {}
        self._predicates: dict[tuple[Any, Any, int], Predicate] = {}
        match = self._add(MATCH, None, -1)
        self.start = self._sequence(tree, flags, match)
        self.anchored = _anchored(tree, flags)
        self._first = self._first_chars(self._atoms)
        self._states: dict[frozenset[int], frozenset[int]] = {}
        self._held = 0  # automaton states in self._states, all sets together
        self._steps: dict[tuple[frozenset[int], int, str | None], Any] = {}
        self._empty = self._intern(frozenset())

    def _add(self, kind: int, arg: Any, out: int, alt: int = -1) -> int:
        self.kind.append(kind)
        self.arg.append(arg)
        self.out.append(out)
        self.alt.append(alt)
        return len(self.kind) - 1

    def _sequence(self, items: Any, flags: int, then: int) -> int:
        for op, av in reversed(list(items)):
            then = self._node(op, av, flags, then)
        return then

    def _node(self, op: Any, av: Any, flags: int, then: int) -> int:
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
            key = (op, tuple(av) if op is sre.IN else av, flags & (re.IGNORECASE | re.DOTALL))
            test = self._predicates.get(key)
            if test is None:  # one per distinct atom: a step tests each once (``[ab]{900}`` is one)
                test = self._predicates[key] = predicate(op, av, flags)
            node = self._add(CHAR, test, then)
            self._atoms[node] = (op, av, flags)
            return node
        if op is sre.AT:
            code = _ASSERTIONS[av]
            if flags & re.MULTILINE and av in _LINE:
                code = _LINE[av]
            self.looks_back = self.looks_back or code in (BOL, BOUNDARY, NOT_BOUNDARY)
            return self._add(ASSERT, code, then)
        if op is sre.BRANCH:
            starts = [self._sequence(alt, flags, then) for alt in av[1]]
            node = starts[-1]
            for s in reversed(starts[:-1]):
                node = self._add(SPLIT, None, s, node)
            return node
        if op is sre.SUBPATTERN:
            return self._sequence(av[3], (flags | av[1]) & ~av[2], then)
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            lo, hi, body = av
            if hi is sre.MAXREPEAT:  # a loop back through a split
                loop = self._add(SPLIT, None, -1, then)
                self.out[loop] = self._sequence(body, flags, loop)
                then = loop
            else:
                for _ in range(hi - lo):
                    then = self._add(SPLIT, None, self._sequence(body, flags, then), then)
            for _ in range(lo):
                then = self._sequence(body, flags, then)
            return then
        raise AssertionError(op)  # pragma: no cover - regex.parse refused everything else

    def _intern(self, states: frozenset[int]) -> frozenset[int]:
        held = self._states.setdefault(states, states)
        if held is states:
            self._held += len(states)
        return held

    def _holds(self, code: int, before: int, c: str | None) -> bool:
        if code == BOT:
            return before == START
        if code == EOT:
            return c is None
        if code == BOL:
            return before in (START, NEWLINE)
        if code == EOL:
            return c is None or c == "\n"
        word = c is not None and c in WORD_CHARS
        return (before == WORD) != word if code == BOUNDARY else (before == WORD) == word

    def _step(self, states: frozenset[int], before: int, c: str | None) -> Any:
        """True if a match ends here; else the states after ``c`` and the kind of ``c``."""
        todo = list(states)
        if before == START or not self.anchored:
            todo.append(self.start)  # a match may start at any position
        seen: set[int] = set()
        after: set[int] = set()
        tested: dict[Predicate, bool] = {}
        kind, arg, out, alt = self.kind, self.arg, self.out, self.alt
        while todo:
            s = todo.pop()
            if s in seen:
                continue
            seen.add(s)
            k = kind[s]
            if k == CHAR:
                if c is not None:
                    test = arg[s]
                    ok = tested.get(test)
                    if ok is None:
                        ok = tested[test] = test(c)
                    if ok:
                        after.add(out[s])
            elif k == SPLIT:
                todo.append(alt[s])
                todo.append(out[s])
            elif k == ASSERT:
                if self._holds(arg[s], before, c):
                    todo.append(out[s])
            elif k == MATCH:
                return True
            else:  # pragma: no cover - no JUMP nodes are made
                todo.append(out[s])
        if not self.looks_back:
            kind_of_c = OTHER
        else:
            kind_of_c = NEWLINE if c == "\n" else WORD if c is not None and c in WORD_CHARS else OTHER
        return self._intern(frozenset(after)), kind_of_c

    def search(self, text: str) -> bool:
        steps = self._steps
        if self._first is not None:
            return self._search_skipping(text, self._first)
        states, before, empty = self._empty, START, self._empty
        for c in text:
            key = (states, before, c)
            step = steps.get(key)
            if step is None:
                step = self._cold(key)
            if step is True:
                return True
            states, before = step
            if states is empty and self.anchored:
                return False  # nothing left in flight, and no match can start later
        return self._step(states, before, None) is True

    def _search_skipping(self, text: str, first: Callable[[str, int], Any]) -> bool:
        """The same, but with nothing in flight, jump to the next character that can start a match."""
        steps, empty = self._steps, self._empty
        states, before, pos, n = empty, START, 0, len(text)
        while pos < n:
            if states is empty:
                m = first(text, pos)
                if m is None:
                    return False  # no match is empty (see _first_chars), and none can start
                if m.start() != pos:
                    pos = m.start()
                    c = text[pos - 1]
                    before = (NEWLINE if c == "\n" else WORD if c in WORD_CHARS else OTHER) if self.looks_back \
                        else OTHER
            c = text[pos]
            pos += 1
            key = (states, before, c)
            step = steps.get(key)
            if step is None:
                step = self._cold(key)
            if step is True:
                return True
            states, before = step
        return self._step(states, before, None) is True

    def _cold(self, key: tuple[frozenset[int], int, str]) -> Any:
        """A step not cached yet: work it out and keep it, first forgetting every cached step if
        the cache has grown past its bounds (which only a pattern whose states never repeat does)."""
        if len(self._steps) > _CACHE_STEPS or self._held > _CACHE_STATES:
            self._steps.clear()
            self._states.clear()
            self._states[self._empty] = self._empty  # the same object: searches compare by identity
            self._held = 0
        step = self._steps[key] = self._step(*key)
        return step

    def _first_chars(self, atoms: dict[int, tuple[Any, Any, int]]) -> Callable[[str, int], Any] | None:
        """A Python regex for the characters a match can start with, to skip to the next one; None
        where that would not help or be safe (an empty match, ``.``, a negated class, an anchor)."""
        if self.anchored:
            return None
        todo, seen, parts = [self.start], set(), []
        while todo:
            s = todo.pop()
            if s in seen:
                continue
            seen.add(s)
            k = self.kind[s]
            if k == MATCH:
                return None
            if k == CHAR:
                op, av, flags = atoms[s]
                if op is sre.ANY or op is sre.NOT_LITERAL or op is sre.IN and class_ranges(av)[0]:
                    return None
                ranges = [(av, av)] if op is sre.LITERAL else class_ranges(av)[1]
                body = "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges)
                # Python folds at least what RE2 does (more, for ı and İ): a superset, safe to skip by.
                parts.append(f"(?i:[{body}])" if flags & re.IGNORECASE else f"[{body}]")
            elif k == SPLIT:
                todo += [self.out[s], self.alt[s]]
            else:  # assertions pass here: more candidates, never fewer
                todo.append(self.out[s])
        return re.compile("|".join(parts)).search if parts else None


_ASSERTIONS = {sre.AT_BEGINNING: BOT, sre.AT_BEGINNING_STRING: BOT, sre.AT_END: EOT, sre.AT_END_STRING: EOT,
               sre.AT_BOUNDARY: BOUNDARY, sre.AT_NON_BOUNDARY: NOT_BOUNDARY}
_LINE = {sre.AT_BEGINNING: BOL, sre.AT_END: EOL}


def _anchored(items: Any, flags: int) -> bool:
    """Whether every match starts at the start of the text (``^`` without m, ``\\A``)."""
    for op, av in items:
        if op is sre.AT:
            return av is sre.AT_BEGINNING_STRING or (av is sre.AT_BEGINNING and not flags & re.MULTILINE)
        if op is sre.SUBPATTERN:
            return _anchored(av[3], (flags | av[1]) & ~av[2])
        if op is sre.BRANCH:
            return all(_anchored(alt, flags) for alt in av[1])
        return False
    return False

