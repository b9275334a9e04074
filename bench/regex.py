"""$regex benchmark: RE2 against kuradb's pure-Python linear matcher, with Python's re for scale.

Run:  python bench/regex.py [--size 100000] [--rounds 5]

The documents are bench/query.py's. For each pattern the table quotes the
median time of ``count({field: {"$regex": ...}})`` with each engine (each in
its own process: the pure-Python one with google-re2 hidden), and the time
Python's ``re.search`` alone takes over the same strings: what $regex cost
per row before it was bounded, SQL aside. The last rows are a catastrophic
pattern on a short string (one document), which backtracking cannot finish,
and a large pattern whose automaton never settles on a long string: the worst case per character.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

QUERIES = [
    ("prefix", "name", "^name 1234", ""),
    ("class at the end", "owner", "owner12[0-9]$", ""),
    ("alternation, boundary", "text", r"w(12|34)5\b", ""),
    ("case-insensitive", "name", "NAME 99", "i"),
    ("no literal", "text", "[aeiou]{2}", ""),
    ("catastrophic: ^(a+)+$ on 30 a's and !", "evil", "^(a+)+$", ""),
    ("worst case: [ab]*a[ab]{900}[cd] on 20,000 random a/b", "long", "[ab]*a[ab]{900}[cd]", ""),
]


def measure(directory: str, rounds: int) -> dict[str, Any]:
    """In this process: the median count() time per query, in ms."""
    import kuradb
    from kuradb.query import regex

    with kuradb.open(directory) as s:
        c = s.collection("docs")
        out: dict[str, Any] = {"engine": "RE2" if regex.re2 is not None else "pure-Python automaton"}
        for name, field, pattern, options in QUERIES:
            times = []
            for i in range(rounds):
                f: dict[str, Any] = {field: {"$regex": pattern, "$options": options}}
                if field == "long":  # a string not seen before: the automaton's states start cold
                    f["_id"] = f"long{i}"
                t = time.perf_counter()
                c.count(f)
                times.append(time.perf_counter() - t)
            out[name] = statistics.median(times) * 1e3
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--without-re2", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        if args.without_re2:
            sys.modules["re2"] = None  # type: ignore[assignment]
        print(json.dumps(measure(args.measure, args.rounds)))
        return

    from query import fill, make_docs

    import kuradb

    docs = make_docs(args.size)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "s")
        with kuradb.open(path, durability="off") as s:
            c = s.collection("docs")
            fill(c, docs)
            c.put({"evil": "a" * 30 + "!"}, id="evil")
            rnd = random.Random(5)
            c.put_many([(f"long{i}", {"long": "".join(rnd.choice("ab") for _ in range(20_000))})
                        for i in range(args.rounds)])
        results = []
        for without in (False, True):
            cmd = [sys.executable, __file__, "--measure", path, "--rounds", str(args.rounds)]
            out = subprocess.run(cmd + (["--without-re2"] if without else []), check=True, capture_output=True,
                                 text=True).stdout
            results.append(json.loads(out))
    python_re: dict[str, str] = {}
    for name, field, pattern, options in QUERIES[:-2]:
        compiled = re.compile(pattern, re.IGNORECASE if options else 0)
        strings = [v[field] for _, v in docs]
        t = time.perf_counter()
        for text in strings:
            compiled.search(text)
        python_re[name] = f"{(time.perf_counter() - t) * 1e3:.1f} ms"
    python_re[QUERIES[-2][0]] = "about a minute (the code before: 36 s under load)"
    python_re[QUERIES[-1][0]] = "(quadratic)"
    print(f"### $regex over {args.size:,} documents (count(), median of {args.rounds})\n")
    print(f"| pattern | {results[0]['engine']} | {results[1]['engine']} | Python re.search alone |")
    print("|---|---|---|---|")
    for name, *_ in QUERIES:
        print(f"| {name} | {results[0][name]:.1f} ms | {results[1][name]:.1f} ms | {python_re[name]} |")


if __name__ == "__main__":
    main()
