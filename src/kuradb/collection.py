"""Collection: versioned JSON records of one name; each write one transaction appending to the change log."""
from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from . import errors
from .backend import Backend, IndexConflict, NewEntry, Tx
from .changelog import ChangeLog, now_us
from .collections import Collections
from .encoding import content_digest, encode_content, merge_patch, rev_digest
from .ids import check_author, check_id, check_type, check_version, new_id
from .opstats import OpStats, instrumented
from .options import UNSET, Options
from .query import aggregate as aggregation
from .query import engine, fulltext, indexes
from .query.builder import Query
from .query.catalog import ArrayCatalog
from .query.engine import Spec
from .query.indexes import IndexInfo
from .records import Record, corrupted, live_record
from .schemas import Validator, compile_schema

if TYPE_CHECKING:
    from .readcache import ReadCache

_MISSING: Any = object()


class Parts:
    """What a Store gives each of its collections: its collaborators, passed explicitly."""

    __slots__ = ("backend", "log", "names", "arrays", "ops", "max_document_size", "read_cache")

    def __init__(self, backend: Backend, log: ChangeLog, names: Collections, arrays: ArrayCatalog, ops: OpStats,
                 max_document_size: int) -> None:
        self.backend, self.log, self.names, self.arrays, self.ops = backend, log, names, arrays, ops
        self.max_document_size = max_document_size
        self.read_cache: ReadCache | None = None


class Collection:
    """A named set of records. Get one with ``store.collection(name)`` or ``store[name]``."""

    def __init__(self, parts: Parts, name: str, *, model: Any = None) -> None:
        self._parts = parts
        self._backend = parts.backend
        self._ops = parts.ops
        self._names = parts.names
        self.name = name
        self._coll: int | None = None      # the collection's permanent id, once known
        self._model = model
        self._validate_model: Validator | None = None if model is None else compile_schema(model, name)

    def __repr__(self) -> str:
        return f"<Collection {self.name!r}>"

    def _id(self, reader: Any) -> int | None:
        coll = self._coll
        if coll is None:
            coll = self._coll = self._names.id(reader, self.name)
        return coll

    # -- options -------------------------------------------------------------------------

    @property
    def keep_history(self) -> int | None:
        """How many versions of each record are kept (None: all), as saved in the store."""
        return self._names.options(self._backend.reader(), self.name).keep_history

    @property
    def schema(self) -> Any:
        """This handle's pydantic model, else the saved JSON Schema (None: no schema)."""
        if self._model is not None:
            return self._model
        return self._names.options(self._backend.reader(), self.name).schema

    def configure(self, *, keep_history: Any = UNSET, schema: Any = UNSET) -> None:
        """Change the saved options on purpose; ``None`` removes one (keep every version, no schema).

        Lowering ``keep_history`` hides the versions beyond the new limit at once;
        their content is erased as each record is next written.
        """
        if schema is not UNSET and schema is not None and not isinstance(schema, dict):
            raise errors.ValidationError("configure(schema=) takes a JSON Schema dict or None; a pydantic model"
                                         " is given to store.collection(name, schema=Model)", path="schema")
        with self._backend.transaction() as tx:
            self._names.configure(tx, self._parts.log, self.name, keep_history=keep_history, schema=schema,
                                  explicit=True)

    # -- reads ---------------------------------------------------------------------------

    def get(self, id: str, default: Any = _MISSING, *, version: int | None = None) -> Record:
        """The current record (or ``version=N``); NotFound, or ``default`` when given.

        The content is checked against its checksum (CorruptedData on mismatch).
        This is the hot path, so the common case is written out inline.
        """
        rc = self._parts.read_cache
        if rc is not None and version is None and not self._backend.in_transaction():
            return self._get_cached(rc, id, default)
        reader = self._backend.reader()
        coll = self._coll if self._coll is not None else self._id(reader)
        if version is None:
            row = reader.live(coll, id) if coll is not None and type(id) is str else None
        else:
            check_version(version, "version", required=True)
            check_id(id)
            row = self._get_version(coll, id, version) if coll is not None else None
        if row is not None and not row[6]:
            text = row[8]
            if content_digest(text.encode()) != row[7]:
                raise corrupted(self.name, id, row[0])
            return Record(self.name, id, row[2], row[0], row[1], row[7], row[5], False, text, row[3], row[4])
        if version is None:
            if default is not _MISSING:
                return default
            return self._missing(id, reader.head(coll, id) if coll is not None and type(id) is str else None,
                                 default)
        if default is not _MISSING:
            return default
        if row is not None:
            raise errors.NotFound(f"{self.name}/{id} was deleted at version {row[0]}")
        check_id(id)
        raise errors.NotFound(f"{self.name}/{id} version {version} does not exist")

    def _get_cached(self, rc: Any, id: str, default: Any) -> Record:
        """get(id) through the store's read cache (see readcache.py)."""
        rc.fresh()
        name = self.name
        key = name + "\0" + id if type(id) is str else None
        row = rc.get(key) if key is not None else None
        if row is None:
            gen = rc.gen
            reader = self._backend.reader()
            coll = self._coll if self._coll is not None else self._id(reader)
            row = reader.live(coll, id) if coll is not None and key is not None else None
            if row is None:
                if default is not _MISSING:
                    return default
                return self._missing(id, reader.head(coll, id) if coll is not None and key is not None else None,
                                     default)
            if content_digest(row[8].encode()) != row[7]:
                raise corrupted(name, id, row[0])
            rc.fill(key, row, gen)
        return Record(name, id, row[2], row[0], row[1], row[7], row[5], False, row[8], row[3], row[4])

    def _missing(self, id: str, row: Any, default: Any) -> Any:
        if default is not _MISSING:
            return default
        check_id(id)
        if row is not None:
            raise errors.NotFound(f"{self.name}/{id} was deleted at version {row[0]}")
        raise errors.NotFound(f"{self.name}/{id} does not exist")

    def _get_version(self, coll: int, id: str, version: int) -> Any:
        with self._backend.read() as r:
            if version <= self._history_floor(r, coll, id):
                return None
            return r.version(coll, id, version)

    def _history_floor(self, reader: Any, coll: int, id: str) -> int:
        """The newest version that keep_history hides (0: none). Versions beyond the saved limit
        are erased in steps as the record is written; until then reads hide them."""
        keep = self._names.options(reader, self.name).keep_history
        if keep is None:
            return 0
        head = reader.head(coll, id)
        return max(0, head[0] - keep) if head else 0

    def get_many(self, ids: Iterable[str]) -> list[Record | None]:
        """Records for ``ids`` in order, None where missing; read in one snapshot."""
        if isinstance(ids, (str, bytes, dict)) or not isinstance(ids, Iterable):
            raise errors.ValidationError(f"get_many takes an iterable of ids, not {builtins.type(ids).__name__}",
                                         path="ids", hint="e.g. get_many(['a', 'b'])")
        ids = list(ids)
        for i, id in enumerate(ids):
            if builtins.type(id) is not str:
                check_id(id, where=f"ids[{i}]")
        with self._backend.read() as r:
            coll = self._id(r)
            if coll is None:
                return [None] * len(ids)
            out: list[Record | None] = []
            for id in ids:
                row = r.head(coll, id)
                out.append(None if row is None or row[6] else live_record(self.name, id, row))
            return out

    @instrumented("history")
    def history(self, id: str) -> list[Record]:
        """Every kept version of ``id``, oldest first, deletions included."""
        check_id(id)
        with self._backend.read() as r:
            coll = self._id(r)
            rows = r.versions(coll, id, self._history_floor(r, coll, id)) if coll is not None else []
        if not rows:
            check_id(id)
            raise errors.NotFound(f"{self.name}/{id} has no history")
        out = []
        for version, rev, type_, created, modified, author, deleted, ck, text in rows:
            if text is not None and content_digest(text.encode()) != ck:
                raise corrupted(self.name, id, version)
            out.append(Record(self.name, id, type_, version, rev, ck, author, bool(deleted), text, created, modified))
        return out

    def __len__(self) -> int:
        reader = self._backend.reader()
        coll = self._id(reader)
        return 0 if coll is None else reader.count(coll)

    def __contains__(self, id: object) -> bool:
        if not isinstance(id, str):
            return False
        reader = self._backend.reader()
        coll = self._id(reader)
        return coll is not None and reader.is_live(coll, id)

    def __iter__(self) -> Iterator[str]:
        """Live record ids in id order, read in pages so a long iteration holds no lock."""
        last = ""
        while True:
            reader = self._backend.reader()
            coll = self._id(reader)
            if coll is None:
                return
            page = reader.ids(coll, last, 1000)
            yield from page
            if len(page) < 1000:
                return
            last = page[-1]

    # -- queries (kuradb/query; the language is described in docs/QUERIES.md) --------------

    def _target(self) -> engine.Target:
        return engine.Target(self._backend, self.name, self._id(self._backend.reader()) or 0)

    @instrumented("find")
    def find(self, filter: dict[str, Any] | None = None, *, sort: Any = None, limit: int | None = None,
             skip: int = 0, fields: list[str] | None = None) -> list[Record]:
        """Live records matching ``filter``, in ``sort`` order (default: by id).

        ``fields`` keeps only those content paths (the envelope always comes
        back); such partial records are not checked against their checksum.
        """
        return engine.find(self._target(), Spec.parse(filter, sort=sort, limit=limit, skip=skip, fields=fields))

    @instrumented("find_one")
    def find_one(self, filter: dict[str, Any] | None = None, *, sort: Any = None,
                 fields: list[str] | None = None) -> Record | None:
        found = engine.find(self._target(), Spec.parse(filter, sort=sort, limit=1, fields=fields))
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
        return engine.scan(self._target(), spec, batch_size)

    @instrumented("count")
    def count(self, filter: dict[str, Any] | None = None) -> int:
        return engine.count(self._target(), Spec.parse(filter))

    @instrumented("exists")
    def exists(self, filter: dict[str, Any] | None = None) -> bool:
        return engine.count(self._target(), Spec.parse(filter), "exists") > 0

    def query(self) -> Query:
        """A query builder: ``.where().order_by().limit().select().all()``."""
        return Query(self)

    def explain(self, filter: dict[str, Any] | None = None, *, sort: Any = None, limit: int | None = None,
                skip: int = 0, fields: list[str] | None = None) -> engine.Explain:
        """How ``find`` with these arguments would run: the index, the SQL, the engine's plan."""
        return engine.explain(self._target(), Spec.parse(filter, sort=sort, limit=limit, skip=skip, fields=fields))

    @instrumented("aggregate")
    def aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run an aggregation pipeline ($match $group $sort $skip $limit $project $unwind $count)."""
        return aggregation.run(self._target(), pipeline)

    @instrumented("search_text")
    def search_text(self, text: str, *, filter: dict[str, Any] | None = None,
                    limit: int = 10) -> list[fulltext.Hit]:
        """Records matching ``text`` in the text index, best first (BM25)."""
        return fulltext.search(self._target(), text, filter=filter, limit=limit)

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
        return self._add_index(info, progress)

    def create_text_index(self, fields: str | list[str], *, name: str | None = None,
                          tokenize: str = fulltext.DEFAULT_TOKENIZER) -> str:
        """A full-text index over the strings in ``fields``, ranked by BM25; one per collection."""
        checked = indexes.check_fields(fields)
        info = IndexInfo(indexes.check_name(name) if name is not None else "text", checked, kind="text",
                         options={"tokenize": fulltext.check_tokenizer(tokenize)})
        return self._add_index(info, None)

    def _add_index(self, info: IndexInfo, progress: Any) -> str:
        with self._backend.write() as tx:
            coll, _ = self._names.for_write(tx, self.name)
            self._coll = coll
            made = indexes.create(tx, self._backend.dialect, self.name, coll, info, progress)
            if made is info:
                self._parts.log.append(tx, [NewEntry("index", "create", coll, self.name, info.name,
                                                     body=indexes.definition(info))])
        return str(made.name)

    def drop_index(self, name: str) -> None:
        """Drop an index by name; NotFound if there is none."""
        with self._backend.write() as tx:
            coll = self._id(tx)
            if coll is None:
                raise errors.NotFound(f"{self.name} has no index {name!r}")
            indexes.drop(tx, self._backend.dialect, self.name, coll, name)
            self._parts.log.append(tx, [NewEntry("index", "drop", coll, self.name, name)])

    def indexes(self) -> list[IndexInfo]:
        """The collection's indexes, the built-in unique ``_id`` first."""
        with self._backend.read() as r:
            coll = self._id(r)
            return [indexes.ID_INDEX, *(indexes.load_meta(r, coll).indexes if coll is not None else ())]

    # -- writes ----------------------------------------------------------------------

    def _prepare(self, content: Any) -> tuple[bytes, list[str], set[tuple[str, ...]]]:
        """Canonical bytes, blob references and array paths of valid content (checked against this
        handle's pydantic model; the saved JSON Schema is checked by the write, in its transaction)."""
        data, blobs, arrays = encode_content(content, max_bytes=self._parts.max_document_size)
        if self._validate_model is not None:
            self._validate_model(content)
        return data, blobs, arrays

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
                f"a merge patch must be a dict, not {builtins.type(patch).__name__}", path="patch")
        encode_content(patch, max_bytes=self._parts.max_document_size)  # JSON values only, bounded depth
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
            coll = self._id(tx)
            if coll is None or tx.head(coll, id) is None:
                raise errors.NotFound(f"{self.name}/{id} does not exist")
            log = self._parts.log
            tx.erase(coll, id, log.next_position(tx), scrub=True, unhead=True)
            log.append(tx, [NewEntry("record", "purge", coll, self.name, id)])

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

    def _current(self, tx: Tx, id: str, if_version: int | None) -> tuple[Record, tuple[Any, ...]]:
        """The live record and its head row, read once under this transaction's lock."""
        coll = self._id(tx)
        row = tx.head(coll, id) if coll is not None else None
        if if_version is not None and if_version != (row[0] if row else 0):
            raise self._conflict(id, if_version, row)
        if row is None or row[6]:
            raise errors.NotFound(f"{self.name}/{id} does not exist" if row is None
                                  else f"{self.name}/{id} was deleted at version {row[0]}")
        return live_record(self.name, id, row), row

    def _conflict(self, id: str, expected: int, row: Any) -> errors.ConflictError:
        current = None if row is None or row[6] else live_record(self.name, id, row)
        found = "does not exist" if row is None else f"is at version {row[0]}"
        return errors.ConflictError(
            f"{self.name}/{id} {found}, expected version {expected}", current=current,
            hint="read the record again and retry with its version")

    def _for_write(self, tx: Tx) -> tuple[int, Options]:
        coll, opts = self._names.for_write(tx, self.name)
        self._coll = coll
        return coll, opts

    def _write(self, tx: Tx, id: str, content: Any, data: bytes | None, blobs: list[str],
               arrays: set[tuple[str, ...]], *, type: str | None, author: str | None, op: str,
               if_version: int | None = None, must_not_exist: bool = False, head: Any = _MISSING) -> Record:
        """Write the next version of ``id``. ``head`` is its head row when the caller already read it
        under this transaction's lock (update, delete). Everything is checked before the first write."""
        name = self.name
        if head is _MISSING and (known := self._id(tx)) is not None:
            head = tx.head(known, id)    # first: a backend may send it with the transaction's start
        coll, opts = self._for_write(tx)
        if opts.validate is not None and content is not None:
            opts.validate(content)
        row = tx.head(coll, id) if head is _MISSING else head
        if if_version is not None and if_version != (row[0] if row else 0):
            raise self._conflict(id, if_version, row)
        if must_not_exist and row is not None and not row[6]:
            raise errors.AlreadyExists(f"{name}/{id} already exists at version {row[0]}",
                                       hint="use put() to replace it or update() to patch it")
        if blobs:
            _check_blobs(tx, blobs, f"{name}/{id}")
        now = now_us()
        deleted = data is None
        version = row[0] + 1 if row else 1
        ck = None if deleted else content_digest(data)  # type: ignore[arg-type]
        rev = rev_digest(f"{row[0]}-{row[1].hex()}" if row else None, ck)
        created = row[3] if row is not None and not row[6] else now
        entry = NewEntry("record", op, coll, name, id, version, rev, author, type, created, ck,
                         row[9] if row else None, 2 if deleted else 1, data)
        try:
            position = self._parts.log.append(tx, [entry], superseded=[row[9]] if row else None, at=now)
        except IndexConflict as e:
            envelope = {"id": id, "type": type, "author": entry.author, "version": version, "created": created,
                        "modified": now}
            raise indexes.duplicate(tx, self._backend.dialect, name, coll, e, [(id, content, envelope)]) from None
        if arrays:
            self._parts.arrays.note(tx, coll, arrays)
        if blobs:
            tx.add_blob_refs([(h, position) for h in set(blobs)])
        keep = opts.keep_history
        if keep is not None and version > keep and (version - keep) % max(1, keep // 4) == 0:
            # Erase in steps of keep/4 versions so a write walks the chain rarely;
            # reads already hide the versions past the limit.
            tx.erase(coll, id, position, below=version - keep + 1)
        return Record(name, id, type, version, rev, ck, entry.author, deleted, data, created, now)

    def _write_many(self, tx: Tx, prepared: list[tuple[str, Any, bytes, list[str], set[tuple[str, ...]]]],
                    *, type: str | None, author: str | None) -> list[Record]:
        """The batch form of ``_write``: one lookup of the current versions, one append."""
        name = self.name
        ids = list(dict.fromkeys(id for id, _, _, _, _ in prepared))
        known = self._id(tx)
        current = tx.heads(known, ids) if known is not None else None   # first, as in _write
        coll, opts = self._for_write(tx)
        if current is None:
            current = tx.heads(coll, ids)
        if opts.validate is not None:
            for i, (_, content, _, _, _) in enumerate(prepared):
                try:
                    opts.validate(content)
                except errors.ValidationError as e:
                    raise errors.ValidationError(f"items[{i}]: {e.message}",
                                                 path=f"items[{i}].{e.path}".rstrip("."), hint=e.hint) from e
        all_blobs = [h for _, _, _, blobs, _ in prepared for h in blobs]
        if all_blobs:
            _check_blobs(tx, all_blobs, name)
        superseded = [row[4] for row in current.values()]
        now = now_us()
        log = self._parts.log
        position = log.next_position(tx)     # the position the first entry will get
        entries: list[NewEntry] = []
        latest: dict[str, NewEntry] = {}
        latest_pos: dict[str, int] = {}
        first_version: dict[str, int] = {}
        arrays: set[tuple[str, ...]] = set()
        for id, _, data, _, paths in prepared:
            row = current.get(id)
            before = latest.get(id)
            if before is not None:       # the same id earlier in this batch: its version is superseded here
                before.head = None
                version, parent, created = before.version + 1, before.rev_text(), before.created  # type: ignore
                prev = latest_pos[id]
            elif row is not None:
                version, parent, created, prev = row[0] + 1, f"{row[0]}-{row[1].hex()}", (
                    row[2] if not row[3] else now), row[4]
            else:
                version, parent, created, prev = 1, None, now, None
            ck = content_digest(data)
            entry = NewEntry("record", "put", coll, name, id, version, rev_digest(parent, ck), author, type, created,
                             ck, prev, 1, data)   # positional: this runs for every record of a batch
            entries.append(entry)
            latest[id] = entry
            latest_pos[id] = position
            position += 1
            first_version.setdefault(id, version)
            arrays |= paths
        try:
            position = log.append(tx, entries, superseded=superseded, at=now)
        except IndexConflict as conflict:
            raise indexes.duplicate(tx, self._backend.dialect, name, coll, conflict, [
                (id, content, {"id": id, "type": type, "author": e.author, "version": e.version,
                               "created": e.created, "modified": now})
                for e, (id, content, _, _, _) in zip(entries, prepared, strict=True)]) from None
        if arrays:
            self._parts.arrays.note(tx, coll, arrays)
        refs = [(h, e.position) for e, (_, _, _, blobs, _) in zip(entries, prepared, strict=True) for h in set(blobs)]
        if refs:
            tx.add_blob_refs(refs)
        keep = opts.keep_history
        if keep is not None:
            step = max(1, keep // 4)
            for id, first in first_version.items():
                last = latest[id].version or 0
                if last > keep and any((v - keep) % step == 0 for v in range(max(first, keep + 1), last + 1)):
                    tx.erase(coll, id, position, below=last - keep + 1)
        return [Record(name, id, type, e.version, e.rev, e.checksum, e.author, False,  # type: ignore[arg-type]
                       e.body, e.created, now)  # type: ignore[arg-type]
                for e, (id, _, _, _, _) in zip(entries, prepared, strict=True)]


def _check_blobs(tx: Tx, hashes: list[str], where: str) -> None:
    missing = tx.missing_blobs(sorted(set(hashes)))
    if missing:
        raise errors.ValidationError(f"{where} refers to blob {missing[0]}, which is not stored",
                                     path="$blob", hint="store it with store.blobs.put() first")
