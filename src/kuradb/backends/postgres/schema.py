"""The PostgreSQL store's tables, created in the store's own schema, and their migrations.

The layout is SQLite's layout v2 (docs/DECISIONS.md, "Storage layout v2") in
PostgreSQL's types: one ``log`` row per change holding a record version's
content, ``head`` marking current versions (1 live, 2 deleted), integer
collection ids, 16-byte digests as ``bytea``. One partial unique index finds a
record's head, live or deleted (``head IS NOT NULL``, ``head`` included for
index-only counts): PostgreSQL uses a partial index only for conditions that
imply its own, so SQLite's pair (``head = 1``, ``head = 2``) would leave
``head IN (1, 2)`` to a scan of the table.
Ids and names are ``COLLATE "C"`` so that they sort by code point, as on
SQLite. A record's content is kept as its canonical JSON text, the exact bytes
its checksum covers.
"""
from __future__ import annotations

import hashlib

# Append only. Each entry is (version, sql); an applied migration is never edited,
# and ``migrations`` records each one's checksum so a store made by another build is refused.
MIGRATIONS: list[tuple[int, str]] = [
    (1, """
CREATE TABLE meta(key text COLLATE "C" PRIMARY KEY, value text NOT NULL);
CREATE TABLE migrations(version integer PRIMARY KEY, checksum text NOT NULL, applied bigint NOT NULL);
CREATE TABLE collections(
    id      serial PRIMARY KEY,
    name    text COLLATE "C" NOT NULL UNIQUE,
    options text NOT NULL DEFAULT '{}',
    created bigint NOT NULL,
    live    boolean NOT NULL DEFAULT true
);
CREATE TABLE log(
    position   bigint PRIMARY KEY,
    kind       text COLLATE "C" NOT NULL,
    op         text COLLATE "C" NOT NULL,
    coll       integer,
    id         text COLLATE "C",
    version    bigint,
    rev        bytea,
    at         bigint NOT NULL,
    author     text COLLATE "C",
    type       text COLLATE "C",
    created    bigint,
    checksum   bytea,
    prev       bigint,
    erased     bigint NOT NULL DEFAULT 0,
    head       smallint,
    body       text,
    actor_hash bytea,
    hash       bytea,
    txn        bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX log_head ON log(coll, id) INCLUDE (head) WHERE head IS NOT NULL;
CREATE INDEX log_erased ON log(erased) WHERE erased > 0;
CREATE TABLE blobs(
    hash         text COLLATE "C" PRIMARY KEY,
    size         bigint NOT NULL,
    content_type text,
    created      bigint NOT NULL,
    data         bytea
);
CREATE TABLE blob_refs(hash text COLLATE "C" NOT NULL, position bigint NOT NULL, PRIMARY KEY(hash, position));
CREATE INDEX blob_refs_position ON blob_refs(position);
CREATE TABLE array_paths(coll integer NOT NULL, path text COLLATE "C" NOT NULL, PRIMARY KEY(coll, path));
CREATE TABLE indexes(
    coll      integer NOT NULL,
    name      text COLLATE "C" NOT NULL,
    kind      text NOT NULL,
    fields    text NOT NULL,
    is_unique boolean NOT NULL DEFAULT false,
    options   text NOT NULL DEFAULT '{}',
    created   bigint NOT NULL,
    PRIMARY KEY(coll, name)
);
"""),
    # A stamp that moves whenever the collections or indexes table changes (any writer, even by hand): a
    # write transaction reads it with the log's end and keeps using what it cached of them (rows.py).
    (2, """
CREATE SEQUENCE catalog_stamp;
CREATE FUNCTION catalog_changed() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT
    AS $$ BEGIN PERFORM nextval('catalog_stamp'); RETURN NULL; END $$;
CREATE TRIGGER collections_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON collections
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_changed();
CREATE TRIGGER indexes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON indexes
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_changed();
"""),
]
LATEST = MIGRATIONS[-1][0]


def migration_checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()
