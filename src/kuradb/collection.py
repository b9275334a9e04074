"""Collection: versioned JSON records of one name, each write one transaction with its log entry."""
from __future__ import annotations

import builtins
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import apsw
import orjson

from . import audit, errors
from .encoding import checksum, encode_content, make_rev, merge_patch
from .ids import check_author, check_id, check_type, check_version, new_id
from .opstats import instrumented
from .options import UNSET
from .query import aggregate as aggregation
from .query import engine, fulltext, indexes
from .query.builder import Query
from .query.catalog import array_paths
from .query.engine import Spec
from .query.indexes import IndexInfo
from .records import Record
from .schemas import Validator, compile_schema
from .sqlite import READ_ERRORS, Transaction, all_rows, scalar, translate

if TYPE_CHECKING:
    from .store import Store

_MISSING: Any = object()

_COLS = "version, rev, type, created, modified, author, deleted, checksum, json(body)"
_GET = f"SELECT {_COLS} FROM docs WHERE collection=? AND id=?"
_LOG_COLS = "version, rev, type, created, at, author, op='delete', checksum, json(body)"
# The versions of one record, newest first, walking the prev chain from docs.position
# down to version ? (exclusive).
_CHAIN = ("WITH RECURSIVE chain(p) AS (SELECT position FROM docs WHERE collection=? AND id=?"
          " UNION ALL SELECT log.prev FROM log JOIN chain ON log.position = chain.p"
          " WHERE log.prev IS NOT NULL AND log.version > ?)")
_GET_VERSION = (f"{_CHAIN} SELECT {_LOG_COLS} FROM log JOIN chain ON log.position = chain.p"
                " WHERE version=? AND erased=0")
_HISTORY = (f"{_CHAIN} SELECT {_LOG_COLS} FROM log JOIN chain ON log.position = chain.p"
            " WHERE erased=0 AND version > ? ORDER BY version")
_CURRENT = "SELECT version, rev, created, deleted, position FROM docs WHERE collection=? AND id=?"
_GET_WITH_POSITION = f"SELECT {_COLS}, position FROM docs WHERE collection=? AND id=?"
_LOG_INSERT_AT = ("INSERT INTO log(position, kind, collection, id, version, rev, op, at, author, type,"
                  " created, checksum, prev, body, actor_hash, hash, txn)"
                  " VALUES(?, 'record', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, jsonb(?), ?, ?, ?)")
_CURRENT_MANY = ("SELECT id, version, rev, created, deleted, position FROM docs WHERE collection=?"
                 " AND id IN (SELECT value FROM json_each(?))")
_DOC_UPSERT = (
    "INSERT INTO docs(collection, id, version, rev, type, created, modified, author, deleted,"
    " position, checksum, body) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, jsonb(?))"
    " ON CONFLICT(collection, id) DO UPDATE SET version=excluded.version, rev=excluded.rev,"
    " type=excluded.type, created=excluded.created, modified=excluded.modified,"
    " author=excluded.author, deleted=excluded.deleted, position=excluded.position,"
    " checksum=excluded.checksum, body=excluded.body")



def now_us() -> int:
    return time.time_ns() // 1000


def _next_version(current: Any, data: bytes | None, now: int) -> tuple[int, str | None, str, int, str | None]:
    """Version, checksum, rev, created time and text of the version that follows ``current``.

    ``current`` is the docs row (version, rev, created, deleted, position) or None;
    ``data`` the canonical content, or None for a deletion.
    """
    version = current[0] + 1 if current else 1
    ck = None if data is None else checksum(data)
    rev = make_rev(version, current[1] if current else None, ck)
    created = current[2] if current is not None and not current[3] else now
    return version, ck, rev, created, None if data is None else data.decode()


class Collection:
    """A named set of records. Get one with ``store.collection(name)`` or ``store[name]``."""

    def __init__(self, store: Store, name: str, *, model: Any = None) -> None:
        self._store = store
        self._backend = store._backend
        self._ops = store._ops
        self.name = name
        self._model = model
        self._validate_model: Validator | None = None if model is None else compile_schema(model, name)

    @property
    def keep_history(self) -> int | None:
        """How many versions of each record are kept (None: all), as saved in the store."""
        return self._store._options(self._backend.reader(), self.name).keep_history

    @property
    def schema(self) -> Any:
        """This handle's pydantic model, else the saved JSON Schema (None: no schema)."""
        if self._model is not None:
            return self._model
        return self._store._options(self._backend.reader(), self.name).schema

    def configure(self, *, keep_history: Any = UNSET, schema: Any = UNSET) -> None:
        """Change the saved options on purpose; ``None`` removes one (keep every version, no schema).

        Lowering ``keep_history`` hides the versions beyond the new limit at once;
        their content is erased as each record is next written.
        """
        if schema is not UNSET and schema is not None and not isinstance(schema, dict):
            raise errors.ValidationError("configure(schema=) takes a JSON Schema dict or None; a pydantic model"
                                         " is given to store.collection(name, schema=Model)", path="schema")
        self._store._configure(self.name, keep_history=keep_history, schema=schema, explicit=True)

    def __repr__(self) -> str:
        return f"<Collection {self.name!r}>"

    # -- reads -----------------------------------------------------------------------

    def _record(self, id: str, row: tuple[Any, ...]) -> Record:
        version, rev, type_, created, modified, author, deleted, ck, text = row
        if text is not None and checksum(text.encode()) != ck:
            raise self._corrupted(id, version)
        return Record(self.name, id, type_, version, rev, ck, author, bool(deleted), text,
                      created, modified)

    def _live_records(self, rows: list[Any]) -> list[Record]:
        """``_record`` for many rows of live records (``id`` then its columns), in one loop."""
        name, out = self.name, []
        for id, version, rev, type_, created, modified, author, _, ck, text in rows:
            if checksum(text.encode()) != ck:
                raise self._corrupted(id, version)
            out.append(Record(name, id, type_, version, rev, ck, author, False, text, created, modified))
        return out

    def _corrupted(self, id: str, version: int) -> errors.CorruptedData:
        return errors.CorruptedData(f"{self.name}/{id} version {version}: content does not match its checksum",
                                    hint="run verify and restore from a backup")

    def _fetch(self, sql: str, args: tuple[Any, ...]) -> Any:
        try:
            return self._backend.reader().execute(sql, args).fetchone()
        except READ_ERRORS as e:
            raise translate(e, f"{self.name}/{args[1]}") from e

    def get(self, id: str, default: Any = _MISSING, *, version: int | None = None) -> Record:
        """The current record (or ``version=N``); NotFound, or ``default`` when given.

        The content is checked against its checksum (CorruptedData on mismatch).
        This is the hot path, so the common case is written out inline.
        """
        name = self.name
        rc = self._store._read_cache
        if rc is not None and version is None and not self._backend.in_transaction():
            return self._get_cached(rc, id, default)
        try:
            if version is None:
                row = self._backend.reader().execute(_GET, (name, id)).fetchone()
            else:
                check_version(version, "version", required=True)
                row = self._get_version(id, version)
        except READ_ERRORS as e:
            raise translate(e, f"{name}/{id}") from e
        except (TypeError, OverflowError):   # an id SQLite cannot bind: say what is wrong with it
            check_id(id)
            raise
        if row is not None and not row[6]:
            text = row[8]
            if checksum(text.encode()) != row[7]:
                raise self._corrupted(id, row[0])
            return Record(name, id, row[2], row[0], row[1], row[7], row[5], False, text, row[3], row[4])
        if version is None:
            return self._missing(id, row, default)
        if default is not _MISSING:
            return default
        if row is not None:
            raise errors.NotFound(f"{name}/{id} was deleted at version {row[0]}")
        check_id(id)
        raise errors.NotFound(f"{name}/{id} version {version} does not exist")

    def _get_cached(self, rc: Any, id: str, default: Any) -> Record:
        """get(id) through the store's read cache (see readcache.py)."""
        if rc.fast:   # rc.fresh() inlined: the strict check is on every cached read
            if rc.header.raw != rc.head:
                rc.catch_up()
        else:
            rc.fresh()
        name = self.name
        key = name + "\0" + id if type(id) is str else None
        row = rc.get(key) if key is not None else None
        if row is None:
            gen = rc.gen
            try:
                row = self._backend.reader().execute(_GET, (name, id)).fetchone()
            except READ_ERRORS as e:
                raise translate(e, f"{name}/{id}") from e
            if row is None or row[6]:
                return self._missing(id, row, default)
            if checksum(row[8].encode()) != row[7]:
                raise self._corrupted(id, row[0])
            rc.fill(key, row, gen)
        return Record(name, id, row[2], row[0], row[1], row[7], row[5], False, row[8], row[3], row[4])

    def _missing(self, id: str, row: Any, default: Any) -> Any:
        if default is not _MISSING:
            return default
        if row is not None:
            raise errors.NotFound(f"{self.name}/{id} was deleted at version {row[0]}")
        check_id(id)
        raise errors.NotFound(f"{self.name}/{id} does not exist")

    def get_many(self, ids: Iterable[str]) -> list[Record | None]:
        """Records for ``ids`` in order, None where missing; read in one snapshot."""
        if isinstance(ids, (str, bytes, dict)) or not isinstance(ids, Iterable):
            raise errors.ValidationError(f"get_many takes an iterable of ids, not {builtins.type(ids).__name__}",
                                         path="ids", hint="e.g. get_many(['a', 'b'])")
        ids = list(ids)
        for i, id in enumerate(ids):
            if builtins.type(id) is not str:
                check_id(id, where=f"ids[{i}]")
        out: list[Record | None] = []
        conn = self._backend.reader()
        own = not self._backend.in_transaction()
        # one read transaction: a consistent snapshot, and one lock for all the keys
        try:
            if own:
                conn.execute("BEGIN")
            try:
                for id in ids:
                    row = conn.execute(_GET, (self.name, id)).fetchone()
                    out.append(None if row is None or row[6] else self._record(id, row))
            finally:
                if own:
                    conn.execute("COMMIT")
        except READ_ERRORS as e:
            raise translate(e, self.name) from e
        return out

    @instrumented("history")
    def history(self, id: str) -> list[Record]:
        """Every kept version of ``id``, oldest first, deletions included."""
        check_id(id)
        try:
            with self._backend.read() as cur:
                floor = self._history_floor(cur, id)
                rows = cur.execute(_HISTORY, (self.name, id, floor, floor)).fetchall()
        except READ_ERRORS as e:
            raise translate(e, f"{self.name}/{id}") from e
        if not rows:
            check_id(id)
            raise errors.NotFound(f"{self.name}/{id} has no history")
        return [self._record(id, row) for row in rows]

    def _history_floor(self, cur: Any, id: str) -> int:
        """The newest version that keep_history hides (0: none). Versions beyond the saved limit
        are erased in steps as the record is written; until then reads hide them."""
        keep = self._store._options(cur, self.name).keep_history
        if keep is None:
            return 0
        head = cur.execute(_CURRENT, (self.name, id)).fetchone()
        return max(0, head[0] - keep) if head else 0

    def _get_version(self, id: str, version: int) -> Any:
        with self._backend.read() as cur:
            if version <= self._history_floor(cur, id):
                return None
            return cur.execute(_GET_VERSION, (self.name, id, version - 1, version)).fetchone()

    def __len__(self) -> int:
        try:
            return int(scalar(self._backend.reader(), "SELECT count(*) FROM docs WHERE collection=? AND deleted=0",
                              (self.name,)))
        except READ_ERRORS as e:
            raise translate(e, self.name) from e

    def __contains__(self, id: object) -> bool:
        if not isinstance(id, str):
            return False
        row = self._fetch("SELECT deleted FROM docs WHERE collection=? AND id=?", (self.name, id))
        return row is not None and not row[0]

    def __iter__(self) -> Iterator[str]:
        """Live record ids in id order, read in pages so a long iteration holds no lock."""
        last = ""
        while True:
            try:
                rows = all_rows(
                    self._backend.reader(),
                    "SELECT id FROM docs WHERE collection=? AND id>? AND deleted=0 ORDER BY id LIMIT 1000",
                    (self.name, last))
            except READ_ERRORS as e:
                raise translate(e, self.name) from e
            for (id,) in rows:
                yield id
            if len(rows) < 1000:
                return
            last = rows[-1][0]

    # -- queries (kuradb/query; the language is described in docs/QUERIES.md) --------------

    @instrumented("find")
    def find(self, filter: dict[str, Any] | None = None, *, sort: Any = None, limit: int | None = None,
             skip: int = 0, fields: list[str] | None = None) -> list[Record]:
        """Live records matching ``filter``, in ``sort`` order (default: by id).

        ``fields`` keeps only those content paths (the envelope always comes
        back); such partial records are not checked against their checksum.
        """
        return engine.find(self, Spec.parse(filter, sort=sort, limit=limit, skip=skip, fields=fields))

    @instrumented("find_one")
    def find_one(self, filter: dict[str, Any] | None = None, *, sort: Any = None,
                 fields: list[str] | None = None) -> Record | None:
        found = engine.find(self, Spec.parse(filter, sort=sort, limit=1, fields=fields))
        return found[0] if found else None

    @instrumented("scan")
    def scan(self, filter: dict[str, Any] | None = None, *, sort: Any = None, batch_size: int = 1000,
             fields: list[str] | None = None) -> Iterator[Record]:
        """Stream matching records from one point-in-time snapshot; memory stays bounded.

        Writers are not blocked while it runs. The query is checked now; rows
        are read as you iterate.
        """
        spec = Spec.parse(filter, sort=sort, fields=fields)
        if type(batch_size) is not int or batch_size < 1:
            raise errors.QueryError(f"batch_size must be a positive integer, not {batch_size!r}")
        return engine.scan(self, spec, batch_size)

    @instrumented("count")
    def count(self, filter: dict[str, Any] | None = None) -> int:
        return engine.count(self, Spec.parse(filter))

    @instrumented("exists")
    def exists(self, filter: dict[str, Any] | None = None) -> bool:
        return engine.count(self, Spec.parse(filter), "exists") > 0

    def query(self) -> Query:
        """A query builder: ``.where().order_by().limit().select().all()``."""
        return Query(self)

    @instrumented("aggregate")
    def aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run an aggregation pipeline ($match $group $sort $skip $limit $project $unwind $count)."""
        return aggregation.run(self, pipeline)

    @instrumented("search_text")
    def search_text(self, text: str, *, filter: dict[str, Any] | None = None,
                    limit: int = 10) -> list[fulltext.Hit]:
        """Records matching ``text`` in the text index, best first (BM25)."""
        return fulltext.search(self, text, filter=filter, limit=limit)

    # -- indexes -------------------------------------------------------------------------

    def create_index(self, fields: str | list[str], *, unique: bool = False, name: str | None = None,
                     progress: Any = None) -> str:
        """Index one field or several (``"-score"`` descending); returns the index name.

        Creating an index that exists with the same definition returns it.
        ``unique=True`` raises DuplicateKey if existing records share a value.
        ``progress(fraction)`` is called while an index is built over existing data.
        """
        checked = indexes.check_fields(fields)
        info = IndexInfo(indexes.check_name(name) if name is not None else indexes.default_name(checked),
                         checked, unique=bool(unique))
        return self._add_index(info, lambda tx: indexes.create(tx, self.name, info, progress))

    def create_text_index(self, fields: str | list[str], *, name: str | None = None,
                          tokenize: str = fulltext.DEFAULT_TOKENIZER) -> str:
        """A full-text index (SQLite FTS5) over the strings in ``fields``; one per collection."""
        checked = indexes.check_fields(fields)
        info = IndexInfo(indexes.check_name(name) if name is not None else "text", checked, kind="text",
                         options={"tokenize": fulltext.check_tokenizer(tokenize)})
        return self._add_index(info, lambda tx: fulltext.create(tx, self.name, info))

    def _add_index(self, info: IndexInfo, make: Any) -> str:
        with self._backend.write() as tx:
            made = make(tx)
            if made is info:
                if self.name not in self._store._ensured and self.name not in tx.ensured:
                    self._store._ensure_collection(tx, self.name)
                self._store._append_log(tx, "index", self.name, info.name, None, None, "create", None,
                                        {"kind": info.kind, "fields": list(info.fields), "unique": info.unique,
                                         "options": info.options})
        return str(made.name)

    def drop_index(self, name: str) -> None:
        """Drop an index by name; NotFound if there is none."""
        with self._backend.write() as tx:
            indexes.drop(tx, self.name, name)
            self._store._append_log(tx, "index", self.name, name, None, None, "drop", None)

    def indexes(self) -> list[IndexInfo]:
        """The collection's indexes, the built-in unique ``_id`` first."""
        with self._backend.read() as cur:
            return [indexes.ID_INDEX, *indexes.load_meta(cur, self.name).indexes]

    # -- writes ----------------------------------------------------------------------

    def _prepare(self, content: Any) -> tuple[bytes, list[str], set[tuple[str, ...]]]:
        """Canonical bytes, blob references and array paths of valid content (checked against this
        handle's pydantic model; the saved JSON Schema is checked by the write, in its transaction)."""
        data, blobs = encode_content(content, max_bytes=self._store.max_document_size)
        if self._validate_model is not None:
            self._validate_model(content)
        return data, blobs, array_paths(content) if b"[" in data else set()

    @instrumented("put")
    def put(self, content: dict[str, Any], *, id: str | None = None, type: str | None = None,
            author: str | None = None, if_version: int | None = None) -> Record:
        """Create or replace a record; ``if_version=N`` writes only if the current version is N."""
        id = new_id() if id is None else check_id(id)
        type, author, if_version = check_type(type), check_author(author), check_version(if_version, "if_version")
        data, blobs, arrays = self._prepare(content)
        with self._backend.write() as tx:
            return self._write(tx, id, content, data, blobs, arrays, type=type, author=author,
                               if_version=if_version, op="put")

    @instrumented("insert")
    def insert(self, content: dict[str, Any], *, id: str | None = None, type: str | None = None,
               author: str | None = None) -> Record:
        """Create a record; AlreadyExists if ``id`` is live."""
        id = new_id() if id is None else check_id(id)
        type, author = check_type(type), check_author(author)
        data, blobs, arrays = self._prepare(content)
        with self._backend.write() as tx:
            return self._write(tx, id, content, data, blobs, arrays, type=type, author=author, op="insert",
                               must_not_exist=True)

    @instrumented("update")
    def update(self, id: str, patch: dict[str, Any], *, if_version: int | None = None,
               author: str | None = None) -> Record:
        """Apply a JSON merge patch (RFC 7386) to the current content, as a new version."""
        check_id(id)
        author, if_version = check_author(author), check_version(if_version, "if_version")
        if not isinstance(patch, dict):
            raise errors.ValidationError(
                f"a merge patch must be a dict, not {type(patch).__name__}", path="patch")
        encode_content(patch, max_bytes=self._store.max_document_size)  # JSON values only, bounded depth
        with self._backend.write() as tx:
            current, head = self._current(tx, id, if_version)
            content = merge_patch(current.content, patch)
            data, blobs, arrays = self._prepare(content)
            return self._write(tx, id, content, data, blobs, arrays, type=current.type, author=author,
                               op="update", head=head)

    @instrumented("delete")
    def delete(self, id: str, *, if_version: int | None = None, author: str | None = None) -> Record:
        """Write a tombstone version; NotFound if ``id`` is not live."""
        check_id(id)
        author, if_version = check_author(author), check_version(if_version, "if_version")
        with self._backend.write() as tx:
            current, head = self._current(tx, id, if_version)
            return self._write(tx, id, None, None, [], set(), type=current.type, author=author, op="delete",
                               head=head)

    @instrumented("revert")
    def revert(self, id: str, version: int, *, author: str | None = None) -> Record:
        """Write a new version whose content is that of ``version``."""
        check_id(id)
        author = check_author(author)
        check_version(version, "version", required=True)
        with self._backend.write() as tx:
            old = self.get(id, version=version)
            data, blobs, arrays = self._prepare(old.content)
            return self._write(tx, id, old.content, data, blobs, arrays, type=old.type, author=author,
                               op="revert")

    @instrumented("purge")
    def purge(self, id: str) -> None:
        """Erase every version of ``id`` and its content (right to erasure); NotFound if unknown.

        The change log keeps that positions were used (so it has no gaps) but
        no content, author or type of the purged versions.
        """
        check_id(id)
        with self._backend.write() as tx:
            conn = tx.cur
            row = conn.execute(_CURRENT, (self.name, id)).fetchone()
            if row is None:
                raise errors.NotFound(f"{self.name}/{id} does not exist")
            self._erase(conn, (self.name, id, 0), audit.head(conn)[0] + 1, scrub=True)
            conn.execute("DELETE FROM docs WHERE collection=? AND id=?", (self.name, id))
            self._store._append_log(tx, "record", self.name, id, None, None, "purge", None)

    @instrumented("put_many")
    def put_many(self, items: Iterable[Any], *, type: str | None = None,
                 author: str | None = None) -> list[Record]:
        """Write many records in one transaction; items are content dicts or (id, content) pairs.

        Every item is validated before anything is written: one bad item writes none.
        """
        type, author = check_type(type), check_author(author)
        if isinstance(items, (str, bytes, dict)) or not isinstance(items, Iterable):
            raise errors.ValidationError(f"put_many takes an iterable of content dicts or (id, content) pairs,"
                                         f" not {builtins.type(items).__name__}", path="items")
        prepared = []
        for i, item in enumerate(items):
            if isinstance(item, tuple) and len(item) == 2:
                id, content = check_id(item[0], where=f"items[{i}] id"), item[1]
            else:
                id, content = new_id(), item
            try:
                prepared.append((id, content, *self._prepare(content)))
            except errors.ValidationError as e:
                raise errors.ValidationError(f"items[{i}]: {e.message}", path=f"items[{i}].{e.path}".rstrip("."),
                                             hint=e.hint) from e
        with self._backend.transaction() as tx:  # a savepoint when nested: all or nothing
            return self._write_many(tx, prepared, type=type, author=author)

    # -- the write path --------------------------------------------------------------

    def _current(self, tx: Transaction, id: str, if_version: int | None) -> tuple[Record, tuple[Any, ...]]:
        """The live record and its docs head (version, rev, created, deleted, position), read once."""
        row = tx.cur.execute(_GET_WITH_POSITION, (self.name, id)).fetchone()
        if if_version is not None and if_version != (row[0] if row else 0):
            raise self._conflict(id, if_version, row and row[:9])
        if row is None or row[6]:
            raise errors.NotFound(f"{self.name}/{id} does not exist" if row is None
                                  else f"{self.name}/{id} was deleted at version {row[0]}")
        return self._record(id, row[:9]), (row[0], row[1], row[3], row[6], row[9])

    def _conflict(self, id: str, expected: int, row: Any) -> errors.ConflictError:
        current = None if row is None else self._record(id, row)
        found = "does not exist" if row is None else f"is at version {row[0]}"
        return errors.ConflictError(
            f"{self.name}/{id} {found}, expected version {expected}", current=current,
            hint="read the record again and retry with its version")

    def _write(self, tx: Transaction, id: str, content: Any, data: bytes | None, blobs: list[str],
               arrays: set[tuple[str, ...]], *, type: str | None, author: str | None, op: str,
               if_version: int | None = None, must_not_exist: bool = False, head: Any = _MISSING) -> Record:
        """Write the next version of ``id``. ``head`` is the docs head when the caller
        already read it under this transaction's lock (update, delete).

        The docs row is written first: if a unique index refuses it, SQLite undoes
        that one statement and nothing at all has been written.
        """
        conn = tx.cur
        store = self._store
        name = self.name
        try:
            opts = store._options(conn, name)
            if opts.validate is not None and content is not None:
                opts.validate(content)
            row = conn.execute(_CURRENT, (name, id)).fetchone() if head is _MISSING else head
            if if_version is not None and if_version != (row[0] if row else 0):
                raise self._conflict(id, if_version, conn.execute(_GET, (name, id)).fetchone())
            if must_not_exist and row is not None and not row[3]:
                raise errors.AlreadyExists(f"{name}/{id} already exists at version {row[0]}",
                                           hint="use put() to replace it or update() to patch it")
            if blobs:
                store.blobs._check_refs(conn, blobs, f"{name}/{id}")
            now = now_us()
            version, ck, rev, created, text = _next_version(row, data, now)
            author = author or store.author
            deleted = data is None
            last, prev_hash = audit.head(conn)
            position = last + 1
            actor = audit.actor_digest(author)
            try:
                conn.execute(_DOC_UPSERT, (name, id, version, rev, type, created, now, author, deleted,
                                           position, ck, text))
            except apsw.ConstraintError as e:
                raise self._duplicate(conn, e, [(id, text, type, author, version, created, now)]) from e
            conn.execute(_LOG_INSERT_AT, (position, name, id, version, rev, op, now, author, type, created, ck,
                                          row[4] if row else None, text, actor,
                                          audit.entry_hash(prev_hash, position, now, "record", op, name, id,
                                                           version, rev, actor), tx.txn(position)))
            if name not in store._ensured and name not in tx.ensured:
                store._ensure_collection(tx, name)
            if arrays:
                store._arrays.note(tx, name, arrays)
            if blobs:
                conn.executemany("INSERT OR IGNORE INTO blob_refs(hash, position) VALUES(?, ?)",
                                 [(h, position) for h in set(blobs)])
            keep = opts.keep_history
            if keep is not None and version > keep and (version - keep) % max(1, keep // 4) == 0:
                # Erase in steps of keep/4 versions so a write walks the chain rarely;
                # reads already hide the versions past the limit.
                self._erase(conn, (name, id, 0), position, below=version - keep + 1)
        except apsw.Error as e:
            raise translate(e, f"{name}/{id}") from e
        tx.wrote = True
        return Record(name, id, type, version, rev, ck, author, deleted, data, created, now)

    def _duplicate(self, cur: apsw.Cursor, e: apsw.ConstraintError,
                   written: list[tuple[Any, ...]]) -> errors.KuraError:
        """The DuplicateKey for a unique-index violation by one of ``written``
        ((id, text, type, author, version, created, modified) each), naming who holds the value."""
        found = indexes.find_index_by_sql_name(str(e))
        if found is None or found[0] != self.name:
            return translate(e, self.name)
        info = next((i for i in indexes.load_meta(cur, self.name).indexes if i.name == found[1]), None)
        if info is None:
            return translate(e, self.name)
        first = None
        for id, text, type_, author, version, created, modified in written:
            envelope = {"id": id, "type": type_, "author": author, "version": version, "created": created,
                        "modified": modified}
            held_by = indexes.holder(cur, self.name, info, id, text, envelope)
            if held_by is not None or first is None:
                first = indexes.duplicate_error(self.name, info, id, text, envelope, held_by)
                if held_by is not None:
                    break
        return first or translate(e, self.name)

    def _write_many(self, tx: Transaction,
                    prepared: list[tuple[str, Any, bytes, list[str], set[tuple[str, ...]]]],
                    *, type: str | None, author: str | None) -> list[Record]:
        """The batch form of ``_write``: one lookup of the current versions, then ``executemany``.

        Positions are assigned explicitly from the log's maximum, which is safe
        because this transaction holds the write lock.
        """
        cur, store, name = tx.cur, self._store, self.name
        current: dict[str, Any] = {}
        unique = list(dict.fromkeys(id for id, _, _, _, _ in prepared))
        try:
            opts = store._options(cur, name)
            if opts.validate is not None:
                for i, (_, content, _, _, _) in enumerate(prepared):
                    try:
                        opts.validate(content)
                    except errors.ValidationError as e:
                        raise errors.ValidationError(f"items[{i}]: {e.message}", path=f"items[{i}].{e.path}"
                                                     .rstrip("."), hint=e.hint) from e
            for i in range(0, len(unique), 500):
                chunk = orjson.dumps(unique[i:i + 500]).decode()
                for row in all_rows(cur, _CURRENT_MANY, (name, chunk)):
                    current[row[0]] = row[1:]
            all_blobs = [h for _, _, _, blobs, _ in prepared for h in blobs]
            if all_blobs:
                store.blobs._check_refs(cur, all_blobs, name)
            position, prev_hash = audit.head(cur)
            now = now_us()
            author = author or store.author
            actor = audit.actor_digest(author)
            log_rows: list[tuple[Any, ...]] = []
            doc_rows: dict[str, tuple[Any, ...]] = {}
            refs: list[tuple[str, int]] = []
            records: list[Record] = []
            first_version: dict[str, int] = {}
            arrays: set[tuple[str, ...]] = set()
            for id, _, data, blobs, paths in prepared:
                position += 1
                row = current.get(id)
                version, ck, rev, created, text = _next_version(row, data, now)
                first_version.setdefault(id, version)
                prev_hash = audit.entry_hash(prev_hash, position, now, "record", "put", name, id, version, rev, actor)
                log_rows.append((position, name, id, version, rev, "put", now, author, type, created, ck,
                                 row[4] if row else None, text, actor, prev_hash, tx.txn(position)))
                doc_rows[id] = (name, id, version, rev, type, created, now, author, False, position, ck, text)
                current[id] = (version, rev, created, 0, position)
                refs += [(h, position) for h in set(blobs)]
                arrays |= paths
                records.append(Record(name, id, type, version, rev, ck, author, False, data, created, now))
            try:
                cur.executemany(_DOC_UPSERT, list(doc_rows.values()))
            except apsw.ConstraintError as e:
                raise self._duplicate(cur, e, [(r[1], r[11], r[4], r[7], r[2], r[5], r[6])
                                               for r in doc_rows.values()]) from e
            cur.executemany(_LOG_INSERT_AT, log_rows)
            if name not in store._ensured and name not in tx.ensured:
                store._ensure_collection(tx, name)
            if arrays:
                store._arrays.note(tx, name, arrays)
            if refs:
                cur.executemany("INSERT OR IGNORE INTO blob_refs(hash, position) VALUES(?, ?)", refs)
            keep = opts.keep_history
            if keep is not None:
                step = max(1, keep // 4)
                for id, first in first_version.items():
                    last = current[id][0]
                    if last > keep and any((v - keep) % step == 0 for v in range(max(first, keep + 1), last + 1)):
                        self._erase(cur, (name, id, 0), position, below=last - keep + 1)
        except apsw.Error as e:
            raise translate(e, name) from e
        tx.wrote = True
        return records

    def _erase(self, conn: apsw.Cursor, chain_args: tuple[str, str, int], by: int, *,
               below: int | None = None, scrub: bool = False) -> None:
        """Remove the content of a record's versions (those under ``below``, else all)
        and release their blob references. ``scrub`` also removes author and type.
        ``by`` is the position of the change that erases (kept in ``log.erased``)."""
        extra = ", author=NULL, type=NULL, checksum=NULL" if scrub else ""
        only = "" if below is None else f" AND version < {int(below)}"
        kept = "" if scrub else " AND erased=0"
        positions = conn.execute(
            f"{_CHAIN} UPDATE log SET body=NULL, erased={int(by)}{extra}"
            f" WHERE position IN (SELECT p FROM chain){only}{kept} RETURNING position",
            chain_args).fetchall()
        if positions:
            conn.executemany("DELETE FROM blob_refs WHERE position=?", positions)
