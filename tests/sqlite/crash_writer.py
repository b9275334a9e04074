"""Child process for the crash tests: writes forever, printing each acknowledged write.

Each step: one transaction writes the pair a{slot}/b{slot} with the same value
(and sometimes a blob they refer to), then a single put of solo{i}. The step's
number is printed only after both returned, so every printed number is a write
the store acknowledged.
"""
from __future__ import annotations

import os
import random
import sys

import kuradb

directory, base, durability = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rnd = random.Random(base)
with kuradb.open(directory, durability=durability) as store:
    pairs, solos = store["pairs"], store["solos"]
    print("ready", flush=True)
    i = base
    while True:
        slot = i % 20
        with store.transaction():
            extra = {}
            if rnd.random() < 0.2:
                extra["blob"] = store.blobs.put(os.urandom(rnd.choice([100, 70_000])))
            pairs.put({"i": i, **extra}, id=f"a{slot}")
            pairs.put({"i": i, **extra}, id=f"b{slot}")
        solos.put({"i": i, "pad": "x" * rnd.randrange(500)}, id=f"solo{i}")
        print(i, flush=True)
        i += 1
