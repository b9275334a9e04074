"""``store.verify()`` and ``store.repair()``: check everything against its source, rebuild what is derived.

The source of truth is the change log (``log``: every version, its checksum,
its rev chain) and the blobs. ``docs`` is the current copy of each record;
the array catalog, secondary and text indexes and blob references are
derived. ``verify`` reads one snapshot while writers go on and reports every
problem it finds, each naming what and where; ``repair`` rebuilds the derived
state only and never changes a record, a version or a blob.
"""
from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import apsw
import orjson

from . import audit, damage, errors, health
from .encoding import blob_hash_of, checksum, make_rev
from .query import fulltext
from .query.catalog import array_paths, encode
from .query.indexes import IndexInfo, index_ddl, load_meta
from .sqlite import READ_ERRORS, scalar

if TYPE_CHECKING:
    from .store import Store

_MAX_PROBLEMS = 1000  # a report names at most this many; `truncated` says how many more there were


@dataclass
class Report:
    """What ``verify`` or ``repair`` found. ``ok`` when there is no problem."""

    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    repaired: list[str] = field(default_factory=list)
    truncated: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.truncated

    def add(self, problem: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.truncated += 1

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "truncated": self.truncated,
                "checked": self.checked, "repaired": self.repaired}


class _Progress:
    """Calls ``progress(fraction)`` as rows go by, the total known up front."""

    def __init__(self, callback: Callable[[float], None] | None, total: int) -> None:
        self.callback, self.total, self.done = callback, max(total, 1), 0

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.callback is not None and self.done % 1000 < n:
            self.callback(min(self.done / self.total, 0.999))

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(1.0)


def _blob_refs(value: Any, out: set[str]) -> None:
    h = blob_hash_of(value) if isinstance(value, dict) else None
    if h is not None:
        out.add(h)
    elif isinstance(value, dict):
        for v in value.values():
            _blob_refs(v, out)
    elif isinstance(value, list):
        for v in value:
            _blob_refs(v, out)


def verify(store: Store, progress: Callable[[float], None] | None = None) -> Report:
    """See Store.verify. Damage is reported, never raised: what cannot be read is named and skipped."""
    report = Report()
    try:
        with store._backend.snapshot() as cur:
            bar = _Progress(progress, damage.high(cur, "SELECT (SELECT count(*) FROM log) + (SELECT count(*) FROM docs)"
                                                       " + (SELECT count(*) FROM blobs)") or 0)
            for problem in damage.sqlite_problems(cur):
                report.add(f"sqlite: {problem}")
            for what, check in (("change log", _log), ("records", _docs), ("blobs", _blobs), ("indexes", _indexes)):
                try:
                    check(cur, store, report, bar)
                except READ_ERRORS as e:   # a check's own reads that have no finer fallback
                    report.add(f"{what}: the check stopped: the database cannot be read ({damage.error_text(e)})")
            bar.finish()
    except errors.CorruptedData as e:   # not even a snapshot can be read
        report.add(f"the database cannot be read: {e.message}")
    if not report.ok:   # health() fails on it in this process even when the store is read-only
        store._backend.note_damage(f"verify found {len(report.problems) + report.truncated} problem(s), the first:"
                                   f" {report.problems[0]}")
    return report


_LOG_SCAN = ("SELECT l.position, l.kind, l.collection, l.id, l.version, l.rev, l.checksum, l.erased, l.op,"
             " CASE WHEN l.kind = 'record' THEN json(l.body) END, l.prev, l.at, l.author, l.actor_hash, l.hash,"
             " p.rev, p.version, p.collection, p.id FROM log AS l LEFT JOIN log AS p ON p.position = l.prev"
             " WHERE l.position > ?1 ORDER BY l.position")
_LOG_ONE = ("SELECT position, kind, collection, id, version, rev, checksum, erased, op, prev, at, author, actor_hash,"
            " hash FROM log WHERE position = ?")


class _Damaged:
    """A value that could not be read (its row could)."""

    def __init__(self, error: BaseException) -> None:
        self.why = damage.error_text(error)


_UNKNOWN = (_Damaged(Exception("unreadable")),) * 4   # the previous entry of a version, when it cannot be read


def _log_probe(cur: apsw.Cursor, unreadable: damage.Unreadable) -> Callable[[int, BaseException], Any]:
    """Read change-log entry ``p`` in parts, so a damaged body or parent still leaves the rest checkable."""
    def probe(p: int, _: BaseException) -> tuple[Any, ...] | None:
        try:
            own: Any = cur.execute(_LOG_ONE, (p,)).fetchone()
        except READ_ERRORS as e:
            try:   # say whose entry it is, when that much can be read
                named: Any = cur.execute("SELECT collection, id, version FROM log WHERE position = ?",
                                         (p,)).fetchone()
            except READ_ERRORS:
                named = None
            if named is None:
                unreadable.note(p, e)
                return None
            coll, id, version = named
            unreadable.named(p, f"{coll}/{id} version {version} (change log position {p}): its entry is damaged"
                                f" and cannot be read ({damage.error_text(e)})")
            return None
        if own is None:
            return None
        position, kind, coll, id, version, rev, ck, erased, op, prev, at, author, actor, stored = own
        text: Any = None
        if kind == "record":
            try:
                text = scalar(cur, "SELECT json(body) FROM log WHERE position = ?", (p,))
            except READ_ERRORS as e:
                text = _Damaged(e)
        parent: Any = (None,) * 4
        if prev is not None:
            try:
                parent = cur.execute("SELECT rev, version, collection, id FROM log WHERE position = ?",
                                     (prev,)).fetchone() or parent
            except READ_ERRORS:
                parent = _UNKNOWN
        return (position, kind, coll, id, version, rev, ck, erased, op, text, prev, at, author, actor, stored,
                *parent)
    return probe


def _log(cur: apsw.Cursor, store: Store, report: Report, bar: _Progress) -> None:
    """The change log in one pass: gapless positions, the audit chain of every entry, and every
    version's checksum, rev and place in its history chain. Entries that cannot be read are named
    by position and skipped."""
    try:
        row: Any = cur.execute("SELECT count(*), min(position), max(position) FROM log").fetchone()
    except READ_ERRORS:
        row = (None, None, damage.high(cur, "SELECT max(position) FROM log"))
    count, low, high = row
    if count and (low != 1 or high != count):
        try:
            gaps = cur.execute("SELECT position + 1 FROM log AS l WHERE position < ?1 AND NOT EXISTS"
                               " (SELECT 1 FROM log WHERE position = l.position + 1) LIMIT 10", (high,)).fetchall()
            first = "1" if low != 1 else ", ".join(str(g[0]) for g in gaps)
        except READ_ERRORS:
            first = "?"
        report.add(f"change log: positions are missing (from {first}; {high - count} in all)")
    refs: set[tuple[str, int]] | None
    try:
        refs = {(h, p) for h, p in cur.execute("SELECT hash, position FROM blob_refs")}
    except READ_ERRORS as e:
        refs = None
        report.add(f"{damage.describe('blob_refs')} cannot be read ({damage.error_text(e)})")
    versions = entries = 0
    chain = audit.ChainCheck(report)
    unreadable = damage.Unreadable(report.add, "change log position", "change log positions")
    probe = _log_probe(cur.connection.cursor(), unreadable)
    for (position, kind, coll, id, version, rev, ck, erased, op, text, prev, at, author, actor, stored, p_rev,
         p_version, p_coll, p_id) in damage.Scan(cur, _LOG_SCAN, high, probe, unreadable):
        bar.step()
        entries += 1
        if unreadable.keys and unreadable.keys[-1] == position - 1:
            chain.prev = stored   # the entry before cannot be read: the walk goes on from this one's hash
        else:
            chain.step(position, at, kind, op, coll, id, version, rev, author, actor, stored)
        if kind != "record" or version is None:  # not a record version (a purge entry has none)
            continue
        versions += 1
        where = f"{coll}/{id} version {version} (change log position {position})"
        if isinstance(text, _Damaged):
            report.add(f"{where}: its content is damaged and cannot be read ({text.why})")
        elif text is not None:
            if checksum(text.encode()) != ck:
                report.add(f"{where}: content does not match its checksum")
            elif '"$blob"' in text and refs is not None:
                found: set[str] = set()
                _blob_refs(orjson.loads(text), found)
                for h in sorted(found):
                    if (h, position) not in refs:
                        report.add(f"{where}: its reference to blob {h} is not recorded (repair adds it)")
        elif not erased and op != "delete":
            report.add(f"{where}: content is missing")
        if isinstance(p_rev, _Damaged):
            continue   # its previous version cannot be read (reported by position): no chain to check
        if prev is None:
            if version != 1:
                report.add(f"{where}: history chain broken (no previous version)")
        elif (p_version, p_coll, p_id) != (version - 1, coll, id):
            report.add(f"{where}: history chain broken (previous entry at position {prev} is"
                       f" {p_coll}/{p_id} version {p_version})")
        if not (erased and ck is None) and rev != make_rev(version, p_rev if prev is not None else None, ck):
            report.add(f"{where}: rev {rev} does not follow from its content and parent rev")
    report.checked["changes"] = entries
    report.checked["audit entries"] = entries
    report.checked["versions"] = versions


_DOCS_SCAN = ("SELECT d.rowid, d.collection, d.id, d.version, d.rev, d.checksum, d.deleted, d.position,"
              " json(d.body), l.kind, l.collection, l.id, l.version, l.rev, l.checksum"
              " FROM docs AS d LEFT JOIN log AS l ON l.position = d.position WHERE d.rowid > ?1 ORDER BY d.rowid")


def _docs_probe(cur: apsw.Cursor, unreadable: damage.Unreadable) -> Callable[[int, BaseException], Any]:
    """Read the docs row ``rowid`` in parts: its envelope, its body, its change-log entry."""
    def probe(rowid: int, _: BaseException) -> tuple[Any, ...] | None:
        try:
            own: Any = cur.execute("SELECT rowid, collection, id, version, rev, checksum, deleted, position"
                                   " FROM docs WHERE rowid = ?", (rowid,)).fetchone()
        except READ_ERRORS as e:
            unreadable.note(rowid, e)
            return None
        if own is None:
            return None
        try:
            text: Any = scalar(cur, "SELECT json(body) FROM docs WHERE rowid = ?", (rowid,))
        except READ_ERRORS as e:
            text = _Damaged(e)
        try:
            entry: Any = cur.execute("SELECT kind, collection, id, version, rev, checksum FROM log WHERE position = ?",
                                     (own[7],)).fetchone() or (None,) * 6
        except READ_ERRORS:
            entry = _UNKNOWN[:1] * 6
        return (*own, text, *entry)
    return probe


def _docs(cur: apsw.Cursor, store: Store, report: Report, bar: _Progress) -> None:
    """Each current record agrees with its change-log entry; the array catalog covers its arrays.
    Records that cannot be read are named (through the id index) and skipped."""
    catalog: dict[str, set[tuple[str, ...]]] | None = {}
    try:
        for coll, path in cur.execute("SELECT collection, path FROM array_paths"):
            catalog.setdefault(coll, set()).add(tuple(orjson.loads(path)))  # type: ignore[union-attr]
    except READ_ERRORS as e:
        catalog = None
        report.add(f"{damage.describe('array_paths')} cannot be read ({damage.error_text(e)})")
    collections: set[str] | None
    try:
        collections = {name for (name,) in cur.execute("SELECT name FROM collections")}
    except READ_ERRORS as e:
        collections = None
        report.add(f"the collections (table collections) cannot be read ({damage.error_text(e)})")
    records = 0
    unreadable = damage.Unreadable(report.add, "the current records (table docs), row",
                                   "the current records (table docs), rows")
    probe = _docs_probe(cur.connection.cursor(), unreadable)
    for (_, coll, id, version, rev, ck, deleted, position, text, l_kind, l_coll, l_id, l_version, l_rev,
         l_ck) in damage.Scan(cur, _DOCS_SCAN, damage.high(cur, "SELECT max(rowid) FROM docs"), probe, unreadable):
        bar.step()
        records += 1
        where = f"{coll}/{id} (current version {version})"
        if collections is not None and coll not in collections:
            report.add(f"{where}: collection {coll!r} is not registered")
            collections.add(coll)
        if isinstance(l_kind, _Damaged):
            pass   # its change-log entry cannot be read: reported by position
        elif (l_kind, l_coll, l_id, l_version, l_rev, l_ck) != ("record", coll, id, version, rev, ck):
            report.add(f"{where}: disagrees with its change-log entry at position {position}")
        if isinstance(text, _Damaged):
            report.add(f"{where}: its content is damaged and cannot be read ({text.why})")
        elif bool(deleted) != (text is None):
            report.add(f"{where}: {'a deleted record has content' if deleted else 'content is missing'}")
        elif text is not None:
            if checksum(text.encode()) != ck:
                report.add(f"{where}: content does not match its checksum")
            elif "[" in text and catalog is not None:
                missing = array_paths(orjson.loads(text)) - catalog.get(coll, set())
                for path in sorted(missing):
                    report.add(f"{where}: the array catalog lacks {'.'.join(path)!r}, so an index could"
                               " hide it from queries (repair adds it)")
                catalog.setdefault(coll, set()).update(missing)
    if unreadable.keys:
        _name_unreadable(cur, set(unreadable.keys), report)
    report.checked["records"] = records


def _name_unreadable(cur: apsw.Cursor, rowids: set[int], report: Report) -> None:
    """Who the docs rows that cannot be read belong to, from the id index (which holds each row's
    collection, id and rowid), when that index can be read."""
    try:
        for rowid, coll, id in cur.execute("SELECT rowid, collection, id FROM docs INDEXED BY sqlite_autoindex_docs_1"):
            if rowid in rowids:
                report.add(f"{coll}/{id}: its current record cannot be read (its history in the change log may"
                           " still hold it)")
    except READ_ERRORS as e:
        report.add(f"the record id index cannot say whose records cannot be read ({damage.error_text(e)})")


def _blob_rows(cur: apsw.Cursor, report: Report) -> Any:
    """(hash, size, data) of every blob. When the table cannot be read through, each blob the change
    log says was put is looked up on its own, so the ones that cannot be read are named."""
    seen: set[str] = set()
    try:
        for row in cur.execute("SELECT hash, size, data FROM blobs ORDER BY hash"):
            seen.add(row[0])
            yield row
        return
    except READ_ERRORS as e:
        report.add(f"blobs (table blobs) cannot be read through ({damage.error_text(e)}); each blob is read alone")
    one = cur.connection.cursor()
    for (h,) in cur.execute("SELECT DISTINCT id FROM log WHERE kind = 'blob' AND op = 'put' ORDER BY id"):
        if h in seen:
            continue
        try:
            row = one.execute("SELECT hash, size, data FROM blobs WHERE hash = ?", (h,)).fetchone()
        except READ_ERRORS as e:
            report.add(f"blob {h}: its row cannot be read ({damage.error_text(e)})")
            continue
        if row is not None:
            yield row


def _blobs(cur: apsw.Cursor, store: Store, report: Report, bar: _Progress) -> None:
    blobs = store.blobs
    n = 0
    for h, size, data in _blob_rows(cur, report):
        bar.step()
        n += 1
        if data is not None:
            if len(data) != size or hashlib.sha256(data).hexdigest() != h:
                report.add(f"blob {h}: stored bytes do not match their hash")
            continue
        path = blobs._path(h)
        try:
            digest, length = blobs.file_digest(h)
        except errors.CorruptedData as e:
            report.add(f"blob {h}: file {path!r} cannot be opened: {e.message}")
            continue
        except FileNotFoundError:
            report.add(f"blob {h}: its file {path!r} is missing")
            continue
        except OSError as e:
            report.add(f"blob {h}: its file {path!r} cannot be read ({e.strerror})")
            continue
        if length != size or digest != h:
            report.add(f"blob {h}: file {path!r} does not match its hash ({length:,} bytes, {size:,} expected)")
    report.checked["blobs"] = n
    try:
        for (h,) in cur.execute("SELECT DISTINCT hash FROM blob_refs WHERE hash NOT IN (SELECT hash FROM blobs)"):
            report.add(f"blob {h}: referred to by a record version but not stored")
    except READ_ERRORS as e:
        report.add(f"blobs: whether every referenced blob is stored cannot be checked ({damage.error_text(e)})")


def _indexes(cur: apsw.Cursor, store: Store, report: Report, bar: _Progress) -> None:
    """Every declared index exists in SQLite; text indexes hold exactly the live records."""
    schema: dict[str, str] = {name: kind for name, kind, sql in cur.execute(
        "SELECT name, type, sql FROM sqlite_schema WHERE name LIKE 'kura%'")
        if kind != "table" or str(sql).startswith("CREATE VIRTUAL TABLE")}  # not FTS5's shadow tables
    declared: set[str] = set()
    n = 0
    try:
        collections: list[Any] = cur.execute("SELECT DISTINCT collection FROM indexes").fetchall()
    except READ_ERRORS as e:
        report.add(f"the index definitions (table indexes) cannot be read ({damage.error_text(e)})")
        return
    unknown: list[str] = []   # collections whose index definitions cannot be read
    for (coll,) in collections:
        try:
            infos = load_meta(cur, coll).indexes
        except READ_ERRORS as e:
            report.add(f"{coll}: its index definitions cannot be read ({damage.error_text(e)})")
            unknown += [f"kura:{coll}:", f"kura_fts:{coll}"]
            continue
        for info in infos:
            n += 1
            where = f"{coll}: index {info.name!r}"
            if info.kind == "text":
                table = fulltext.table(coll)
                triggers = [fulltext.trigger(coll, event).strip('"') for event in ("insert", "update", "delete")]
                declared.update([table.strip('"'), *triggers])
                if table.strip('"') not in schema:
                    report.add(f"{where}: its FTS5 table is missing (repair rebuilds it)")
                    continue
                for t in triggers:
                    if t not in schema:
                        report.add(f"{where}: trigger {t!r} is missing, so writes do not reach the index"
                                   " (repair rebuilds it)")
                try:
                    counts: Any = cur.execute(
                        f"SELECT (SELECT count(*) FROM docs WHERE collection=?1 AND deleted=0"
                        f"  AND rowid NOT IN (SELECT rowid FROM {table})),"
                        f" (SELECT count(*) FROM {table} WHERE rowid NOT IN"
                        f"  (SELECT rowid FROM docs WHERE collection=?1 AND deleted=0))", (coll,)).fetchone()
                except READ_ERRORS as e:
                    report.add(f"{where}: cannot be compared with the records ({damage.error_text(e)})")
                    continue
                missing, extra = counts
                if missing or extra:
                    report.add(f"{where}: {missing} live records missing from the text index and {extra}"
                               " entries of records that are gone (repair rebuilds it)")
            else:
                sql_name = f"kura:{coll}:{info.name}"
                declared.add(sql_name)
                if sql_name not in schema:
                    report.add(f"{where}: its SQLite index is missing (repair recreates it)")
    for name, kind in sorted(schema.items()):
        if name not in declared and name.startswith(("kura:", "kura_fts:")) and not name.startswith(tuple(unknown)):
            report.add(f"SQLite {kind} {name!r} belongs to no declared index")
    report.checked["indexes"] = n


_REBUILD_ERRORS: tuple[type[Exception], ...] = (*READ_ERRORS, errors.CorruptedData)


def repair(store: Store, progress: Callable[[float], None] | None = None) -> Report:
    """Rebuild derived state (array catalog, blob references, secondary and text indexes), then verify.

    Records, versions and blobs are never changed. ``repaired`` lists what was
    rebuilt; ``problems`` is what remains afterwards: what verify still finds
    (damaged records, a checksum mismatch, a missing blob file: they need a
    backup) and each rebuild that failed. ``ok`` only when nothing remains.
    Each rebuild is its own transaction, so one that fails leaves the others done.
    """
    def step(fraction: float) -> None:
        if progress is not None:
            progress(fraction)

    report = Report()
    failed: list[str] = []

    def attempt(what: str, rebuild: Callable[[apsw.Cursor], str | None]) -> None:
        try:
            with store._backend.write() as tx:
                done = rebuild(tx.cur)
        except _REBUILD_ERRORS as e:
            failed.append(f"repair: {what} could not be rebuilt ({damage.error_text(e)})")
            return
        if done:
            report.repaired.append(done)

    attempt("the array catalog", _catalog)
    step(0.15)
    attempt("the blob references", _references)
    step(0.3)
    try:
        with store._backend.read() as cur:
            names: list[Any] = cur.execute("SELECT DISTINCT collection FROM indexes").fetchall()
            collections = [(str(coll), load_meta(cur, coll).indexes) for (coll,) in names]
    except errors.CorruptedData as e:
        collections = []
        failed.append(f"repair: the index definitions cannot be read, so no index was rebuilt ({e.message})")
    for n, (coll, infos) in enumerate(collections):
        step(0.3 + 0.2 * n / len(collections))
        for info in infos:
            attempt(f"{coll}: index {info.name!r}", functools.partial(_index, coll, info))
    after = verify(store, None if progress is None else lambda f: step(0.5 + 0.5 * f))
    for problem in failed + after.problems:
        report.add(problem)
    report.truncated += after.truncated
    report.checked = {**after.checked, "derived": len(report.repaired)}
    health.record(store, "last_verify", {"at": time.time(), "problems": len(report.problems) + report.truncated})
    step(1.0)
    return report


def _catalog(cur: apsw.Cursor) -> str | None:
    """Add every array path of the current records to the catalog (past records that cannot be read)."""
    before = scalar(cur, "SELECT count(*) FROM array_paths")
    seen: set[tuple[str, str]] = set()
    for _, coll, text in _readable(
            cur, "SELECT rowid, collection, json(body) FROM docs WHERE rowid > ?1 AND body IS NOT NULL ORDER BY rowid",
            "SELECT max(rowid) FROM docs", "SELECT rowid, collection, json(body) FROM docs WHERE rowid = ?"
                                           " AND body IS NOT NULL"):
        for path in array_paths(orjson.loads(text)):
            seen.add((coll, encode(path)))
    cur.executemany("INSERT OR IGNORE INTO array_paths(collection, path) VALUES(?, ?)", sorted(seen))
    added = scalar(cur, "SELECT count(*) FROM array_paths") - before
    return f"array catalog: {added} paths added" if added else None


def _references(cur: apsw.Cursor) -> str | None:
    """Record every blob reference of every kept version (past versions that cannot be read)."""
    refs = 0
    for position, text in list(_readable(   # read them all before writing through the same cursor
            cur, "SELECT position, json(body) FROM log WHERE position > ?1 AND kind = 'record' AND body IS NOT NULL"
                 " AND instr(json(body), '\"$blob\"') ORDER BY position", "SELECT max(position) FROM log",
            "SELECT position, json(body) FROM log WHERE position = ? AND kind = 'record' AND body IS NOT NULL"
            " AND instr(json(body), '\"$blob\"')")):
        found: set[str] = set()
        _blob_refs(orjson.loads(text), found)
        for h in found:
            refs += cur.execute("INSERT OR IGNORE INTO blob_refs(hash, position) VALUES(?, ?)"
                                " RETURNING 1", (h, position)).fetchone() is not None
    return f"blob references: {refs} added" if refs else None


def _readable(cur: apsw.Cursor, scan: str, high: str, one: str) -> Iterator[Any]:
    """The rows of ``scan`` that can be read (``one`` reads a key alone); verify names the others."""
    probe_cur = cur.connection.cursor()

    def probe(key: int, _: BaseException) -> Any:
        try:
            return probe_cur.execute(one, (key,)).fetchone()
        except READ_ERRORS:
            return None
    return iter(damage.Scan(cur, scan, damage.high(cur, high), probe, damage.Unreadable(lambda _: None, "", "")))


def _index(coll: str, info: IndexInfo, cur: apsw.Cursor) -> str:
    if info.kind == "text":
        fulltext.drop_objects(cur, coll)
        fulltext.build(cur, coll, info)
        return f"{coll}: text index {info.name!r} rebuilt"
    ddl, _ = index_ddl(coll, info)
    cur.execute(f"DROP INDEX IF EXISTS \"kura:{coll}:{info.name}\"")
    try:
        cur.execute(ddl)
    except apsw.ConstraintError as e:
        raise errors.CorruptedData(f"records share a value of unique index {info.name!r}; resolve the duplicates"
                                   " (see kuradb find), then repair again") from e
    return f"{coll}: index {info.name!r} rebuilt"
