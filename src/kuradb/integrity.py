"""``store.verify()`` and ``store.repair()``: check everything against its source, rebuild what is derived.

The source of truth is the change log (``log``: every version, its checksum,
its rev chain) and the blobs. ``docs`` is the current copy of each record;
the array catalog, secondary and text indexes and blob references are
derived. ``verify`` reads one snapshot while writers go on and reports every
problem it finds, each naming what and where; ``repair`` rebuilds the derived
state only and never changes a record, a version or a blob.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import apsw
import orjson

from . import audit, errors
from .encoding import blob_hash_of, checksum, make_rev
from .query import fulltext
from .query.catalog import array_paths, backfill
from .query.indexes import index_ddl, load_meta
from .sqlite import scalar, translate

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
    """See Store.verify."""
    report = Report()
    try:
        with store._backend.snapshot() as cur:
            total = scalar(cur, "SELECT (SELECT count(*) FROM log) + (SELECT count(*) FROM docs)"
                                " + (SELECT count(*) FROM blobs)")
            bar = _Progress(progress, total)
            _sqlite(cur, report)
            _log(cur, report, bar)
            _docs(cur, report, bar)
            _blobs(cur, store.blobs, report, bar)
            _indexes(cur, report)
            bar.finish()
    except apsw.Error as e:
        raise translate(e, store.directory) from e
    return report


def _sqlite(cur: apsw.Cursor, report: Report) -> None:
    rows = [r[0] for r in cur.execute("PRAGMA integrity_check(100)")]
    if rows != ["ok"]:
        for r in rows:
            report.add(f"sqlite: {r}")


def _log(cur: apsw.Cursor, report: Report, bar: _Progress) -> None:
    """The change log in one pass: gapless positions, the audit chain of every entry, and every
    version's checksum, rev and place in its history chain."""
    row: Any = cur.execute("SELECT count(*), min(position), max(position) FROM log").fetchone()
    count, low, high = row
    if count and (low != 1 or high != count):
        gaps = cur.execute("SELECT position + 1 FROM log AS l WHERE position < ?1 AND NOT EXISTS"
                           " (SELECT 1 FROM log WHERE position = l.position + 1) LIMIT 10", (high,)).fetchall()
        first = "1" if low != 1 else ", ".join(str(g[0]) for g in gaps)
        report.add(f"change log: positions are missing (from {first}; {high - count} in all)")
    refs: set[tuple[str, int]] = {(h, p) for h, p in cur.execute("SELECT hash, position FROM blob_refs")}
    versions = 0
    chain = audit.ChainCheck(report)
    for (position, kind, coll, id, version, rev, ck, erased, op, text, prev, at, author, actor, stored, p_rev,
         p_version, p_coll, p_id) in cur.execute(
            "SELECT l.position, l.kind, l.collection, l.id, l.version, l.rev, l.checksum, l.erased, l.op,"
            " CASE WHEN l.kind = 'record' THEN json(l.body) END, l.prev, l.at, l.author, l.actor_hash, l.hash,"
            " p.rev, p.version, p.collection, p.id FROM log AS l LEFT JOIN log AS p ON p.position = l.prev"
            " ORDER BY l.position"):
        bar.step()
        chain.step(position, at, kind, op, coll, id, version, rev, author, actor, stored)
        if kind != "record" or version is None:  # not a record version (a purge entry has none)
            continue
        versions += 1
        where = f"{coll}/{id} version {version} (change log position {position})"
        if text is not None:
            if checksum(text.encode()) != ck:
                report.add(f"{where}: content does not match its checksum")
            elif '"$blob"' in text:
                found: set[str] = set()
                _blob_refs(orjson.loads(text), found)
                for h in sorted(found):
                    if (h, position) not in refs:
                        report.add(f"{where}: its reference to blob {h} is not recorded (repair adds it)")
        elif not erased and op != "delete":
            report.add(f"{where}: content is missing")
        if prev is None:
            if version != 1:
                report.add(f"{where}: history chain broken (no previous version)")
        elif (p_version, p_coll, p_id) != (version - 1, coll, id):
            report.add(f"{where}: history chain broken (previous entry at position {prev} is"
                       f" {p_coll}/{p_id} version {p_version})")
        if not (erased and ck is None) and rev != make_rev(version, p_rev if prev is not None else None, ck):
            report.add(f"{where}: rev {rev} does not follow from its content and parent rev")
    report.checked["changes"] = count
    report.checked["audit entries"] = count
    report.checked["versions"] = versions


def _docs(cur: apsw.Cursor, report: Report, bar: _Progress) -> None:
    """Each current record agrees with its change-log entry; the array catalog covers its arrays."""
    catalog: dict[str, set[tuple[str, ...]]] = {}
    for coll, path in cur.execute("SELECT collection, path FROM array_paths"):
        catalog.setdefault(coll, set()).add(tuple(orjson.loads(path)))
    collections = {name for (name,) in cur.execute("SELECT name FROM collections")}
    records = 0
    for (coll, id, version, rev, ck, deleted, position, text, l_kind, l_coll, l_id, l_version, l_rev,
         l_ck) in cur.execute(
            "SELECT d.collection, d.id, d.version, d.rev, d.checksum, d.deleted, d.position, json(d.body),"
            " l.kind, l.collection, l.id, l.version, l.rev, l.checksum"
            " FROM docs AS d LEFT JOIN log AS l ON l.position = d.position"):
        bar.step()
        records += 1
        where = f"{coll}/{id} (current version {version})"
        if coll not in collections:
            report.add(f"{where}: collection {coll!r} is not registered")
            collections.add(coll)
        if (l_kind, l_coll, l_id, l_version, l_rev, l_ck) != ("record", coll, id, version, rev, ck):
            report.add(f"{where}: disagrees with its change-log entry at position {position}")
        if bool(deleted) != (text is None):
            report.add(f"{where}: {'a deleted record has content' if deleted else 'content is missing'}")
        elif text is not None:
            if checksum(text.encode()) != ck:
                report.add(f"{where}: content does not match its checksum")
            elif "[" in text:
                missing = array_paths(orjson.loads(text)) - catalog.get(coll, set())
                for path in sorted(missing):
                    report.add(f"{where}: the array catalog lacks {'.'.join(path)!r}, so an index could"
                               " hide it from queries (repair adds it)")
                catalog.setdefault(coll, set()).update(missing)
    report.checked["records"] = records


def _blobs(cur: apsw.Cursor, blobs: Any, report: Report, bar: _Progress) -> None:
    n = 0
    for h, size, data in cur.execute("SELECT hash, size, data FROM blobs"):
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
    for (h,) in cur.execute("SELECT DISTINCT hash FROM blob_refs WHERE hash NOT IN (SELECT hash FROM blobs)"):
        report.add(f"blob {h}: referred to by a record version but not stored")
    report.checked["blobs"] = n


def _indexes(cur: apsw.Cursor, report: Report) -> None:
    """Every declared index exists in SQLite; text indexes hold exactly the live records."""
    schema: dict[str, str] = {name: kind for name, kind, sql in cur.execute(
        "SELECT name, type, sql FROM sqlite_schema WHERE name LIKE 'kura%'")
        if kind != "table" or str(sql).startswith("CREATE VIRTUAL TABLE")}  # not FTS5's shadow tables
    declared: set[str] = set()
    n = 0
    collections: list[Any] = cur.execute("SELECT DISTINCT collection FROM indexes").fetchall()
    for (coll,) in collections:
        for info in load_meta(cur, coll).indexes:
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
                counts: Any = cur.execute(
                    f"SELECT (SELECT count(*) FROM docs WHERE collection=?1 AND deleted=0"
                    f"  AND rowid NOT IN (SELECT rowid FROM {table})),"
                    f" (SELECT count(*) FROM {table} WHERE rowid NOT IN"
                    f"  (SELECT rowid FROM docs WHERE collection=?1 AND deleted=0))", (coll,)).fetchone()
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
        if name not in declared and (name.startswith("kura:") or name.startswith("kura_fts:")):
            report.add(f"SQLite {kind} {name!r} belongs to no declared index")
    report.checked["indexes"] = n


def repair(store: Store, progress: Callable[[float], None] | None = None) -> Report:
    """Rebuild derived state: array catalog, blob references, secondary and text indexes.

    Records, versions and blobs are never changed. Problems that repair cannot
    fix (a checksum mismatch, a missing blob file) remain in ``verify``'s report.
    """
    def step(fraction: float) -> None:
        if progress is not None:
            progress(fraction)

    report = Report()
    with store._backend.write() as tx:
        cur = tx.cur
        before = scalar(cur, "SELECT count(*) FROM array_paths")
        backfill(cur)  # type: ignore[arg-type]
        added = scalar(cur, "SELECT count(*) FROM array_paths") - before
        if added:
            report.repaired.append(f"array catalog: {added} paths added")
        step(0.2)
        refs = 0
        bodies: list[Any] = cur.execute("SELECT position, json(body) FROM log WHERE kind='record'"
                                        " AND body IS NOT NULL AND instr(json(body), '\"$blob\"')").fetchall()
        for position, text in bodies:
            found: set[str] = set()
            _blob_refs(orjson.loads(text), found)
            for h in found:
                refs += cur.execute("INSERT OR IGNORE INTO blob_refs(hash, position) VALUES(?, ?)"
                                    " RETURNING 1", (h, position)).fetchone() is not None
        if refs:
            report.repaired.append(f"blob references: {refs} added")
        step(0.4)
        collections: list[Any] = cur.execute("SELECT DISTINCT collection FROM indexes").fetchall()
        for n, (coll,) in enumerate(collections):
            step(0.4 + 0.6 * n / len(collections))
            for info in load_meta(cur, coll).indexes:
                if info.kind == "text":
                    fulltext.drop_objects(cur, coll)
                    fulltext.build(cur, coll, info)
                    report.repaired.append(f"{coll}: text index {info.name!r} rebuilt")
                else:
                    ddl, _ = index_ddl(coll, info)
                    cur.execute(f"DROP INDEX IF EXISTS \"kura:{coll}:{info.name}\"")
                    try:
                        cur.execute(ddl)
                    except apsw.ConstraintError as e:
                        raise errors.CorruptedData(
                            f"{coll}: unique index {info.name!r} cannot be rebuilt: records share a value",
                            hint="resolve the duplicates (see kuradb find), then repair again") from e
                    report.repaired.append(f"{coll}: index {info.name!r} rebuilt")
    report.checked["derived"] = len(report.repaired)
    step(1.0)
    return report
