"""What a text index costs writes on PostgreSQL (and on SQLite, for comparison): 20k records.

    PYTHONPATH=src python bench/pg_fts_writes.py [postgresql://postgres@127.0.0.1:5432/test]

Per store: 20,000 records (a title of 5 words, a body of 40) written in batches of 500 (put_many),
then 2,000 written one per transaction (put); without a text index and with one on title and body.
Then one search (a common word, a rare one, a prefix, a phrase) timed over the 20,000 records.
"""
from __future__ import annotations

import random
import sys
import tempfile
import time

import kuradb

URL = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/test"
WORDS = [f"w{i}" for i in range(5000)] + ["café", "résumé", "naïve", "Straße", "running", "connection"]


def docs(n: int, seed: int) -> list[tuple[str, dict]]:
    rnd = random.Random(seed)
    pick = lambda k: " ".join(rnd.choice(WORDS[:50] if rnd.random() < 0.3 else WORDS) for _ in range(k))  # noqa: E731
    return [(f"r{seed}-{i:06d}", {"title": pick(5), "body": pick(40), "n": i}) for i in range(n)]


def run(location: str, text: bool) -> dict[str, float]:
    out = {}
    with kuradb.open(location) as s:
        c = s.collection("bench")
        if text:
            c.create_text_index(["title", "body"])
        batch = docs(20_000, 1)
        t = time.perf_counter()
        for i in range(0, len(batch), 500):
            c.put_many(batch[i:i + 500])
        out["put_many 20k (s)"] = time.perf_counter() - t
        single = docs(2_000, 2)
        t = time.perf_counter()
        for id, doc in single:
            c.put(doc, id=id)
        out["put x2000, us each"] = (time.perf_counter() - t) / len(single) * 1e6
        if text:
            for q in ("w1", "w4321", "w12*", '"w1 w2"', "w1 w2 -w3"):
                c.search_text(q)
                t = time.perf_counter()
                for _ in range(5):
                    c.search_text(q)
                out[f"search {q!r} (ms)"] = (time.perf_counter() - t) / 5 * 1e3
        if location.startswith("postgresql"):
            s.backend.drop()
    return out


def main() -> None:
    for engine in ("postgres", "sqlite"):
        for text in (False, True):
            location = (f"{URL}?schema=kb_fts_bench_{int(text)}" if engine == "postgres"
                        else tempfile.mkdtemp(prefix="kb_fts_"))
            result = run(location, text)
            print(engine, "with a text index" if text else "no text index",
                  ", ".join(f"{k}: {v:.2f}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()
