"""Stores written directly in an older layout (schema 1 or 4), for migration tests of any size.

The migrations' own SQL makes the tables (so they are exactly what that version
had); rows are written as the code of that time wrote them: a ``docs`` row per
record and a ``log`` row per version with text digests (and, from schema 3, the
audit chain; from 4, the transaction's first position).
"""
from __future__ import annotations

import time

import apsw

from kuradb.audit import GENESIS, actor_digest, entry_hash
from kuradb.backends.sqlite.schema import AFTER_MIGRATION, APPLICATION_ID, MIGRATIONS, migration_checksum
from kuradb.encoding import checksum, encode_content, make_rev


def make(path, version: int, records: dict[str, dict[str, list]], author: str | None = "old") -> int:
    """Write a store at schema ``version`` into directory ``path``: ``records`` maps collection -> id -> the
    contents of its versions, oldest first (None: a deletion). Versions of different records interleave in
    the log. Returns the last position."""
    path.mkdir(parents=True, exist_ok=True)
    conn = apsw.Connection(str(path / "kura.db"))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("BEGIN")
    for number, sql in MIGRATIONS[:version]:
        conn.execute(sql)
        if number in AFTER_MIGRATION:
            AFTER_MIGRATION[number](conn)
        conn.execute("INSERT INTO migrations VALUES(?, ?, ?)", (number, migration_checksum(sql), 0))
    conn.execute(f"PRAGMA user_version={version}")
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    at = time.time_ns() // 1000 - 10_000_000
    queue = [(coll, id, list(versions)) for coll, ids in records.items() for id, versions in ids.items()]
    for coll in records:
        conn.execute("INSERT INTO collections(name, created) VALUES(?, ?)", (coll, at))
    heads: dict[tuple[str, str], tuple[int, int, str, int]] = {}   # -> (version, position, rev, created)
    position, prev_hash = 0, GENESIS
    while any(versions for _, _, versions in queue):
        for coll, id, versions in queue:
            if not versions:
                continue
            content = versions.pop(0)
            position += 1
            at += 1
            head = heads.get((coll, id))
            number = head[0] + 1 if head else 1
            data = None if content is None else encode_content(content)[0]
            ck = None if data is None else checksum(data)
            rev = make_rev(number, head[2] if head else None, ck)
            created = head[3] if head else at
            op = "delete" if content is None else "put"
            cols = ["position", "kind", "collection", "id", "version", "rev", "op", "at", "author", "created",
                    "checksum", "prev", "body"]
            vals = [position, "record", coll, id, number, rev, op, at, author, created, ck, head[1] if head else None,
                    None if data is None else data.decode()]
            if version >= 3:
                actor = actor_digest(author)
                prev_hash = entry_hash(prev_hash, position, at, "record", op, coll, id, number, rev, actor)
                cols += ["actor_hash", "hash"]
                vals += [actor, prev_hash]
            if version >= 4:
                cols.append("txn")
                vals.append(position)
            conn.execute(f"INSERT INTO log({', '.join(cols)}) VALUES({', '.join('?' * len(cols))})", vals)
            conn.execute("UPDATE log SET body = jsonb(body) WHERE position = ?", (position,))
            conn.execute("INSERT INTO docs(collection, id, version, rev, created, modified, author, deleted, position,"
                         " checksum, body) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, jsonb(?))"
                         " ON CONFLICT(collection, id) DO UPDATE SET version=excluded.version, rev=excluded.rev,"
                         " modified=excluded.modified, deleted=excluded.deleted, position=excluded.position,"
                         " checksum=excluded.checksum, body=excluded.body",
                         (coll, id, number, rev, created, at, author, data is None, position, ck,
                          None if data is None else data.decode()))
            heads[(coll, id)] = (number, position, rev, created)
    if version >= 2:   # the array catalog, as migration 2's backfill made it
        AFTER_MIGRATION[2](conn)
    conn.execute("COMMIT")
    conn.close()
    return position
