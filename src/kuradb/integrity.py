"""``store.verify()`` and ``store.repair()``: check everything against its source, rebuild what is derived.

The source of truth is the change log (every change and every record version
with its content, checksum and rev chain) and the blobs. Derived from them, and
kept in the writing transaction: which version of each record is current (its
head), the array catalog, secondary and text indexes, and blob references.
``verify`` reads one snapshot while writers go on and reports every problem it
finds, each naming what and where; damage to the file is reported, never raised
(what cannot be read is named and skipped). ``repair`` rebuilds the derived
state (kuradb/follower.py's ``Derived``) and never changes a record, a version
or a blob; its report is what remains.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from . import audit, errors, health
from .encoding import blob_hash_of, content_digest, make_rev
from .follower import Derived
from .query.catalog import array_paths, encode

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


def blob_refs(value: Any, out: set[str]) -> None:
    h = blob_hash_of(value) if isinstance(value, dict) else None
    if h is not None:
        out.add(h)
    elif isinstance(value, dict):
        for v in value.values():
            blob_refs(v, out)
    elif isinstance(value, list):
        for v in value:
            blob_refs(v, out)


def verify(store: Store, progress: Callable[[float], None] | None = None) -> Report:
    """See Store.verify."""
    report = Report()
    try:
        with store.backend.snapshot() as r:
            bar = _Progress(progress, r.size_hint())
            for problem in r.engine_problems():
                report.add(f"sqlite: {problem}")
            _log(r, report, bar)
            _blobs(r, store.blobs, report, bar)
            report.checked["indexes"] = r.index_problems(report.add)
            bar.finish()
    except errors.CorruptedData as e:   # not even a snapshot can be read
        report.add(f"the database cannot be read: {e.message}")
    if not report.ok:   # health() fails on it in this process even when the store is read-only
        store.backend.note_damage(f"verify found {len(report.problems) + report.truncated} problem(s), the first:"
                                  f" {report.problems[0]}")
    return report


def _hex(digest: Any) -> str:
    """A stored digest as hex (a damaged one, not bytes, as what it is: it will match nothing)."""
    return digest.hex() if isinstance(digest, bytes) else repr(digest)


class _Bits:
    """A set of change-log positions, one bit each (positions are dense: 1 to the last)."""

    def __init__(self, size: int) -> None:
        self.bits = bytearray(size // 8 + 1)

    def add(self, p: int) -> None:
        if 0 < p < len(self.bits) * 8:
            self.bits[p >> 3] |= 1 << (p & 7)

    def __contains__(self, p: int) -> bool:
        return 0 < p < len(self.bits) * 8 and bool(self.bits[p >> 3] & (1 << (p & 7)))


def _log(r: Any, report: Report, bar: _Progress) -> None:
    """The change log in one pass: gapless positions, the audit chain of every entry, every version's
    checksum, rev and place in its history chain, which version of each record is current, and
    whether the array catalog covers the live records' arrays."""
    count, low, high = r.last_position(report.add)
    if count and (low != 1 or high != count):
        report.add(f"change log: positions are missing (from {'1' if low != 1 else r.gaps(high)};"
                   f" {high - count} in all)")
    refs = r.blob_refs_all(report.add)
    catalog = r.array_paths_all(report.add)
    ids = r.collection_ids()
    size = (high or 0) + 1
    versions_at, superseded, heads, erasures = _Bits(size), _Bits(size), _Bits(size), _Bits(size)
    where_of: dict[int, str] = {}   # record versions marked current, and chain tips, for the problems found at the end
    versions = entries = current = 0
    chain = audit.ChainCheck(report)
    unreadable: list[int] = []
    for (position, kind, coll, id, version, rev, ck, erased, op, text, prev, at, author, actor, stored, head,
         p_rev, p_version, p_coll, p_id) in r.verify_entries(report.add, high, unreadable):
        bar.step()
        entries += 1
        rev_text = None if rev is None else f"{version}-{_hex(rev)}"
        if unreadable and unreadable[-1] == position - 1:
            chain.prev = stored   # the entry before cannot be read: the walk goes on from this one's hash
        else:
            chain.step(position, at, kind, op, coll, id, version, rev_text, author, actor, stored)
        if kind != "record" or version is None:  # not a record version (a purge entry has none)
            if head is not None:
                report.add(f"change log position {position}: a {kind}.{op} entry is marked as a record's current"
                           " version")
            continue
        versions += 1
        versions_at.add(position)
        if isinstance(coll, int):    # no collection row holds its id
            report.add(f"change log position {position}: its collection (id {coll}) is not registered")
        if prev is not None:
            superseded.add(prev)
        if head is not None:
            heads.add(position)
            current += 1
        if erased:
            erasures.add(position)
        where = f"{coll}/{id} version {version} (change log position {position})"
        if head is not None or prev is None:
            where_of[position] = where
        if head == 2 and op != "delete" or head == 1 and op == "delete":
            report.add(f"{where}: is marked {'deleted' if head == 2 else 'live'} but is "
                       f"{'not ' if head == 2 else ''}a deletion")
        if hasattr(text, "why"):
            report.add(f"{where}: its content is damaged and cannot be read ({text.why})")
        elif text is not None:
            if content_digest(text.encode()) != ck:
                report.add(f"{where}: content does not match its checksum")
            else:
                if '"$blob"' in text and refs is not None:
                    found: set[str] = set()
                    blob_refs(orjson.loads(text), found)
                    for h in sorted(found):
                        if (h, position) not in refs:
                            report.add(f"{where}: its reference to blob {h} is not recorded (repair adds it)")
                if head == 1 and catalog is not None and "[" in text:
                    known = catalog.setdefault(ids.get(coll, -1), set())
                    missing = array_paths(orjson.loads(text)) - known
                    for path in sorted(missing):
                        report.add(f"{where}: the array catalog lacks {'.'.join(path)!r}, so an index could"
                                   " hide it from queries (repair adds it)")
                    known.update(missing)
        elif not erased and op != "delete":
            report.add(f"{where}: content is missing")
        if hasattr(p_rev, "why"):
            continue   # its previous version cannot be read (reported by position): no chain to check
        if prev is None:
            if version != 1:
                report.add(f"{where}: history chain broken (no previous version)")
        elif (p_version, p_coll, p_id) != (version - 1, coll, id):
            report.add(f"{where}: history chain broken (previous entry at position {prev} is"
                       f" {p_coll}/{p_id} version {p_version})")
        parent = None if prev is None or p_rev is None else f"{p_version}-{_hex(p_rev)}"
        if not (erased and ck is None) and rev_text != make_rev(version, parent, None if ck is None else _hex(ck)):
            report.add(f"{where}: rev {rev_text} does not follow from its content and parent rev")
    # Each record's newest version is its head, and only it; a purged or dropped record has none (keep_history
    # never erases the newest version, so an erased newest version is one of those).
    for p in range(1, size):
        if p not in versions_at:
            continue
        tip = p not in superseded
        if p in heads and not tip:
            report.add(f"{where_of.get(p, f'change log position {p}')}: marked current, but a newer version exists")
        elif tip and p not in heads and p not in erasures:
            report.add(f"change log position {p}: the newest version of its record is not marked current"
                       " (it is hidden from reads and queries)")
    report.checked["changes"] = entries
    report.checked["audit entries"] = entries
    report.checked["versions"] = versions
    report.checked["records"] = current


def _blobs(r: Any, blobs: Any, report: Report, bar: _Progress) -> None:
    n = 0
    for h, size, data in r.verify_blobs(report.add):
        bar.step()
        n += 1
        if data is not None:
            if len(data) != size or hashlib.sha256(data).hexdigest() != h:
                report.add(f"blob {h}: stored bytes do not match their hash")
            continue
        path = blobs.path(h)
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
    for h in r.unstored_blobs(report.add):
        report.add(f"blob {h}: referred to by a record version but not stored")


# -- repair: the derived state, rebuilt from zero ---------------------------------------------


class ArrayCatalogRebuild(Derived):
    name = "the array catalog"

    def rebuild(self, tx: Any) -> str | None:
        """Add every array path of the live records to the catalog (past records that cannot be read)."""
        known = tx.array_paths_all(lambda _: None) or {}
        new: dict[int, set[str]] = {}
        for coll, text in tx.live_contents():
            if "[" in text:
                for path in array_paths(orjson.loads(text)) - known.get(coll, set()):
                    new.setdefault(coll, set()).add(encode(path))
        for coll, paths in new.items():
            tx.note_array_paths(coll, sorted(paths))
        added = sum(len(p) for p in new.values())
        return f"array catalog: {added} paths added" if added else None


class BlobRefsRebuild(Derived):
    name = "the blob references"

    def rebuild(self, tx: Any) -> str | None:
        """Record every blob reference of every kept version (past versions that cannot be read)."""
        have = tx.blob_refs_all(lambda _: None) or set()
        refs = []
        for position, text in tx.blob_bodies():
            found: set[str] = set()
            blob_refs(orjson.loads(text), found)
            refs += [(h, position) for h in sorted(found) if (h, position) not in have]
        tx.add_blob_refs(refs)
        return f"blob references: {len(refs)} added" if refs else None


class IndexRebuild(Derived):
    def __init__(self, dialect: Any, coll: int, collection: str, info: Any) -> None:
        self.dialect, self.coll, self.info = dialect, coll, info
        self.name = f"{collection}: {'text ' if info.kind == 'text' else ''}index {info.name!r}"

    def rebuild(self, tx: Any) -> str | None:
        from .backend import IndexConflict

        try:
            self.dialect.rebuild_index(tx, self.coll, self.info)
        except IndexConflict as e:
            raise errors.CorruptedData(f"records share a value of unique index {self.info.name!r}; resolve the"
                                       " duplicates (see kuradb find), then repair again") from e
        return f"{self.name} rebuilt"


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
    derived: list[Derived] = [ArrayCatalogRebuild(), BlobRefsRebuild()]
    try:
        with store.backend.read() as r:
            derived += [IndexRebuild(store.backend.dialect, coll, name, info)
                        for coll, name, info in r.declared_indexes()]
    except errors.CorruptedData as e:
        failed.append(f"repair: the index definitions cannot be read, so no index was rebuilt ({e.message})")
    for n, d in enumerate(derived):
        step(0.5 * n / len(derived))
        try:
            with store.backend.write() as tx:
                done = d.rebuild(tx)
        except errors.KuraError as e:
            failed.append(f"repair: {d.name} could not be rebuilt ({e.message})")
            continue
        if done:
            report.repaired.append(done)
    after = verify(store, None if progress is None else lambda f: step(0.5 + 0.5 * f))
    for problem in failed + after.problems:
        report.add(problem)
    report.truncated += after.truncated
    report.checked = {**after.checked, "derived": len(report.repaired)}
    health.record(store, "last_verify", {"at": time.time(), "problems": len(report.problems) + report.truncated})
    step(1.0)
    return report
