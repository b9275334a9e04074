"""$regex: linear time on every input, with RE2 and without; what is accepted and refused, and what it means.

The two engines (RE2 through google-re2, kuradb's pure-Python automaton) must agree on every
accepted pattern; both are checked here against each other and against the reference evaluator.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest
import reference
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kuradb import errors
from kuradb.query import nfa, regex

re2 = pytest.importorskip("re2")  # the test extra installs it; the fallback is tested without it below

EVIL = [  # catastrophic for a backtracking engine (Python's re takes minutes on some); none matches any text
    (r"^(a+)+$", "a" * 30 + "!"),
    (r"^(a|a)*$", "a" * 30 + "!"),
    (r"(x*)*y", "x" * 5000 + "!"),
    (r"^(\w+\s?)+$", "word " * 2000 + "!"),
    (r"\d+z", "1" * 100_000 + "!"),
    (r"(?:a|b|ab|ba)*c", "ab" * 50_000 + "!"),
]


# Where $regex runs: SQLite calls kuradb's matcher (RE2 or nfa.py) per row, which explain() lists as Python
# work; PostgreSQL runs the pattern rewritten for its own engine (backends/postgres/regex.py), nothing in
# Python. Either looks for the text every match holds first (SQLite's instr, PostgreSQL's strpos).
PYTHON_REGEX = ("sqlite",)
PREFILTER = {"sqlite": "instr(", "postgres": "strpos("}


# -- bounded time --------------------------------------------------------------------------

def test_catastrophic_patterns_run_in_linear_time(store):
    c = store.collection("evil")
    c.put_many([(f"e{i}", {"s": text}) for i, (_, text) in enumerate(EVIL)])
    c.create_index("s")
    start = time.monotonic()
    for pattern, _ in EVIL:
        f = {"s": {"$regex": pattern}}
        assert c.find(f) == [] and c.count(f) == 0 and not c.exists(f)
        assert c.aggregate([{"$match": f}]) == [] and c.query().where("s", "regex", pattern).all() == []
        assert c.count({"s": {"$not": re.compile(pattern)}}) == len(EVIL)
    assert time.monotonic() - start < 30  # generous: well under a second on an idle machine


SCRIPT = textwrap.dedent("""
    import json, sys, time
    if sys.argv[2] == "without":
        sys.modules["re2"] = None  # as if google-re2 were not installed
    import kuradb
    s = kuradb.open(sys.argv[1])
    c = s.collection("evil")
    c.put({"s": "a" * 30 + "!"}, id="x")
    c.put({"s": "aaa"}, id="y")
    t = time.monotonic()
    counts = [c.count({"s": {"$regex": "^(a+)+$"}}), [r.id for r in c.find({"s": {"$regex": "^(a|a)*$"}})]]
    print(json.dumps({"counts": counts, "seconds": time.monotonic() - t,
                      "explain": c.query().where("s", "regex", "a").explain().python}))
""")


@pytest.mark.parametrize("engine", ["with", "without"])
def test_catastrophic_patterns_end_quickly_with_and_without_re2(impl, engine):
    """In a fresh process (a hang would be killed by the timeout, not hang the suite)."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, impl.location("s"), engine], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["counts"] == [1, ["y"]] and got["seconds"] < 30
    engine_name = "RE2" if engine == "with" else "kuradb's linear-time Python matcher"
    note = f"$regex on 's': {engine_name}" + ("" if engine == "with" else
                                              " (install kuradb[re2] for speed)") + ", per row"
    assert got["explain"] == ([note] if impl.name in PYTHON_REGEX else [])


# -- refused at parse time, naming the part ------------------------------------------------

@pytest.mark.parametrize("pattern,message", [
    (r"(a)\1", "a backreference"),
    (r"(?P<x>a)(?P=x)", "a backreference"),
    (r"a(?=b)", "a lookahead or lookbehind"),
    (r"(?<=a)b", "a lookahead or lookbehind"),
    (r"a(?!b)", "a negative lookahead"),
    (r"(?<!a)b", "a negative lookahead"),
    (r"(?>a+)b", "an atomic group"),
    (r"a*+b", "a possessive repeat"),
    (r"(a)?(?(1)b|c)", "a conditional group"),
    (r"a{1001}", r"repeats \{1001,1001\} times"),
    (r"(?:a{100}){11}", r"repeats \{100,100\} times inside other repeats: more than 1000"),
    (r"(?:(?:){100}){100}", r"repeats \{100,100\} times inside other repeats"),
    (r"(?:[ab]{100}){10}c", "too large"),
    (r"(?a)\w", "flag ASCII is not supported"),
    (r"\B", r"\\B is supported only right before or after a character"),
    (r"a|\B", r"\\B is supported only"),
    ("(" * 150 + ")" * 150, "nests groups more than 100 deep"),
    ("(" * 3000 + ")" * 3000, "nests groups"),
    (r"(", "not a valid regular expression"),
    (r"a{2,1}", "not a valid regular expression"),
    ("\ud800", "lone surrogate"),
])
def test_unsupported_patterns_are_refused_naming_the_part(people_like, pattern, message):
    for run in (people_like.find, people_like.count, lambda f: people_like.aggregate([{"$match": f}]),
                lambda f: people_like.query().where(f).all()):
        with pytest.raises(errors.QueryError, match=r"(^|\.\$match\.)name\.\$regex: .*" + message):
            run({"name": {"$regex": pattern}})


def test_refusals_say_why(people_like):
    with pytest.raises(errors.QueryError) as e:
        people_like.find({"name": {"$regex": r"(a)\1"}})
    assert "linear" in e.value.hint
    with pytest.raises(errors.QueryError, match=r"^name\.\$not: .*a lookahead"):
        people_like.find({"name": {"$not": re.compile(r"a(?=b)")}})
    with pytest.raises(errors.QueryError, match="flag ASCII"):
        people_like.find({"name": {"$regex": re.compile(r"\w", re.ASCII)}})
    with pytest.raises(errors.QueryError, match=r"\$options must be letters from 'imsx'"):
        people_like.find({"name": {"$regex": "a", "$options": "u"}})


@pytest.fixture
def people_like(store):
    c = store.collection("names")
    c.put_many([("1", {"name": "ann"}), ("2", {"name": "Ann\n"}), ("3", {"name": "b9"})])
    return c


# -- what patterns mean --------------------------------------------------------------------

MEANING = [  # pattern, options, text, matches
    (r"^\d+$", "", "123", True),
    (r"\d", "", "٣", False),            # Arabic-Indic three: \d is ASCII
    (r"^\w+$", "", "café", False),      # é is not \w
    (r"^\w+$", "", "cafe_1", True),
    (r"\s", "", "\u00a0", False),       # no-break space is not \s
    (r"\s", "", "\x0b", True),          # vertical tab is
    (r"\bcaf\b", "", "café", True),     # \b is an ASCII word boundary
    (r"a$", "", "a\n", False),          # $ is the very end (Python's re also matches before a final newline)
    (r"a$", "m", "a\nb", True),
    (r"^b", "", "a\nb", False),
    (r"^b", "m", "a\nb", True),
    (r"a\Z", "", "a", True),
    (r"a.b", "", "a\nb", False),
    (r"a.b", "s", "a\nb", True),
    (r"CAFÉ", "i", "café", True),       # case folds by Unicode rules
    (r"k", "i", "\u212a", True),        # the Kelvin sign is a K
    (r"straße", "i", "STRAẞE", True),
    (r"i", "i", "ı", False),            # the dotless ı is not an i (RE2's folding; Python's re says it is)
    (r"İ", "i", "i", False),
    (r"[^i]", "i", "I", False),
    (r"a b # comment", "x", "ab", True),
    (r"(?i)A(?-i:b)", "", "aB", False),
    (r"(?i)A(?-i:b)", "", "ab", True),
    (r"", "", "", True),
    (r"x*", "", "", True),
    (r"(a|ab)(c|bcd)(d*)", "", "abcd", True),
    (r"\Bb", "", "ab", True),
    (r"[\W\d]", "", "a", False),
]


@pytest.mark.parametrize("pattern,options,text,expected", MEANING)
def test_what_patterns_mean_with_either_engine(store, pattern, options, text, expected):
    flags = regex.check(pattern, options, "test")[1]
    tree = regex.parse(pattern, flags)
    assert nfa.Automaton(tree, tree.state.flags).search(text) is expected
    assert (re2.search(regex.to_re2(tree, tree.state.flags), text) is not None) is expected
    c = store.collection("meaning")
    c.put({"s": text}, id="x")
    assert c.count({"s": {"$regex": pattern, "$options": options}}) == int(expected)


def test_explain_names_the_engine_and_the_prefilter(impl, store):
    c = store.collection("ex")
    c.put({"s": "owner123"})
    e = c.query().where("s", "regex", "owner12[0-9]").explain()
    assert e.python == (["$regex on 's': RE2, per row"] if impl.name in PYTHON_REGEX else [])
    assert PREFILTER[impl.name] in e.sql  # rows without "owner12" never reach the matcher
    assert c.count({"s": {"$regex": "owner12[0-9]"}}) == 1
    assert regex.required_text("owner12[0-9]", 0) == "owner12"
    assert regex.required_text("(?:ab){2}x|y", 0) is None       # an alternative has none
    assert regex.required_text("x(?:ab)+y", 0) == "xab"
    assert regex.required_text("NAME 99", re.I) == " 99"         # letters fold (k is also the Kelvin sign)


# -- the engines agree with each other and with the reference ------------------------------

ALPHABET = "abAB1 _\n.é"
TRICKY = ALPHABET + "ıİiIkK\u212aſsS"
atoms = st.sampled_from(["a", "b", "A", "1", " ", "_", r"\.", "é", ".", r"\d", r"\w", r"\s", r"\W", r"\D", "[ab]",
                         "[^a]", "[a-b1]", r"[\w.]", "^", "$", r"\b", r"\Bb", r"\B[^a]", r".\B", r"\A", r"\Z", "(?:)",
                         "i", "k", "s"])


def _quantified(p: str, q: str) -> str:
    return p if p in ("^", "$", r"\b", r"\B", r"\A", r"\Z") else f"(?:{p}){q}"


patterns = st.recursive(atoms, lambda inner: st.one_of(
    st.builds(lambda a, b: a + b, inner, inner),
    st.builds(lambda a, b: f"(?:{a}|{b})", inner, inner),
    st.builds(_quantified, inner, st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "*?", "{0,2}"])),
    st.builds(lambda a, f: f"(?{f}:{a})", inner, st.sampled_from(["i", "m", "s", "-i"])),
), max_leaves=8)
options = st.sampled_from(["", "i", "m", "s", "ms", "is", "x"])


def accepted(pattern: str, opts: str) -> int:
    """The flags of an accepted pattern; the grammar makes a few that are refused (\\B in the open)."""
    try:
        return regex.check(pattern, opts, "test")[1]
    except errors.QueryError as e:
        assert "\\B is supported only" in str(e), e
        assume(False)
        raise
_names = itertools.count()


@settings(max_examples=int(os.environ.get("KURADB_REGEX_EXAMPLES", "400")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(pattern=patterns, opts=options, texts=st.lists(st.text(TRICKY, max_size=8), min_size=1, max_size=6))
def test_the_two_engines_agree(pattern, opts, texts):
    flags = accepted(pattern, opts)
    tree = regex.parse(pattern, flags)
    automaton = nfa.Automaton(tree, tree.state.flags)
    compiled = re2.compile(regex.to_re2(tree, tree.state.flags))
    for text in texts:
        assert automaton.search(text) == (compiled.search(text) is not None), (pattern, opts, text)


@settings(max_examples=int(os.environ.get("KURADB_REGEX_EXAMPLES", "400")) // 4, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(pattern=patterns, opts=options, texts=st.lists(st.text(ALPHABET, max_size=8), min_size=1, max_size=6))
def test_find_agrees_with_the_reference(store, pattern, opts, texts):
    assume("(?m" not in pattern)  # the reference rewrites $ as the end of the text unless m is in $options
    accepted(pattern, opts)
    c = store.collection(f"agree{next(_names)}")
    c.put_many([(f"t{i}", {"s": t}) for i, t in enumerate(texts)])
    f = {"s": {"$regex": pattern, "$options": opts}}
    assert [r.id for r in c.find(f)] == reference.find(c.find(), f, None), (pattern, opts, texts)
