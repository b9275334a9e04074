"""The CLI's commands: each takes the open store (or None), the parsed arguments and the output.

A command returns nothing (exit 0) or an exit code, and raises ``kuradb.errors``
for everything else; ``main`` prints those.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from .. import backups, errors
from ..backends import shown
from ..backups import files as backup_files
from ..progress import Progress
from ..records import Record
from ..schedule import BackupSchedule
from ..store import Store
from .io import Output, OutputFile, json_arg, jsonl, list_arg, open_input, os_error, read_json, read_key, stdin_text

STORE_KEY = "--key-file"
BACKUP_KEY = "--encryption-key-file"
STORE_KEY_HINT = f"give the store's key with {STORE_KEY} F (or $KURADB_KEY_FILE)"
BACKUP_KEY_HINT = f"give the backup's own key with {BACKUP_KEY} F"


def store_key(args: argparse.Namespace) -> bytes | str | None:
    return read_key(args.key_file, getattr(args, "key_source", STORE_KEY))


class Terminated(BaseException):
    """SIGTERM, raised in the main thread as SIGINT raises KeyboardInterrupt: what is half-done is undone."""


def cmd_init(store: Store, args: argparse.Namespace, out: Output) -> None:
    out.emit({"directory": shown(store.directory), "position": store.position})


def prepare_put(args: argparse.Namespace) -> None:
    """Read and parse CONTENT before the store opens: bad JSON creates nothing."""
    text = stdin_text() if args.content == "-" else args.content
    args.document = read_json(text, "CONTENT" if args.content != "-" else "the content on stdin",
                              hint="CONTENT is JSON text (or - to read it from stdin); the id goes in --id ID")


def cmd_put(store: Store, args: argparse.Namespace, out: Output) -> None:
    rec = store[args.collection].put(args.document, id=args.id, type=args.type, author=args.author,
                                     if_version=args.if_version)
    out.emit(rec)


def cmd_get(store: Store, args: argparse.Namespace, out: Output) -> None:
    out.emit(store[args.collection].get(args.id, version=args.version))


def cmd_delete(store: Store, args: argparse.Namespace, out: Output) -> None:
    out.emit(store[args.collection].delete(args.id, if_version=args.if_version, author=args.author))


def cmd_history(store: Store, args: argparse.Namespace, out: Output) -> None:
    records = store[args.collection].history(args.id)
    out.table([{"version": r.version, "rev": r.rev, "modified": r.modified, "author": r.author,
                "deleted": r.deleted, "content": r.content} for r in records],
              ["version", "modified", "author", "deleted", "content"])


def cmd_stats(store: Store, args: argparse.Namespace, out: Output) -> None:
    out.emit(store.stats())


def cmd_changes(store: Store, args: argparse.Namespace, out: Output) -> None:
    changes = [c.to_dict() for c in store.changes(since=args.since, limit=args.limit)]
    out.table(changes, ["position", "kind", "op", "collection", "id", "version", "at"])


def prepare_import(args: argparse.Namespace) -> None:
    """Open FILE before the store opens: a file that is not there creates nothing."""
    args.input = open_input(args.file)


_ITEM = re.compile(r"items\[(\d+)\]:? ?")


def _at_line(e: errors.KuraError, where: str, message: str) -> None:
    """Name the JSONL line in ``e`` (the file's field is ``_id``, the library's argument ``id``)."""
    e.message = f"{where}: {'_' + message if message.startswith('id ') else message}"
    e.args = (e.message,)


def cmd_import(store: Store, args: argparse.Namespace, out: Output) -> None:
    """JSONL in, one transaction: every line is written, or (on any error) none is."""
    coll = store[args.collection]
    name = "stdin" if args.file in (None, "-") else repr(args.file)
    count = 0
    batch: list[tuple[str, dict[str, Any]]] = []
    batch_lines: list[int] = []       # the line of each batch item, to name it in an error

    def flush() -> None:
        if not batch:
            return
        try:
            coll.put_many(batch)
        except errors.ValidationError as e:   # put_many names the item; the user knows the line
            m = _ITEM.match(e.message)
            if m is None:
                _at_line(e, f"lines {batch_lines[0]}-{batch_lines[-1]}", e.message)
            else:
                _at_line(e, f"line {batch_lines[int(m.group(1))]}", e.message[m.end():])
            raise
        batch.clear()
        batch_lines.clear()

    with args.input, Progress(f"importing into {args.collection}") as progress, store.transaction():
        for n, doc in jsonl(args.input, name):
            if not isinstance(doc, dict):
                raise errors.ValidationError(f"line {n}: expected a JSON object", path=f"line {n}")
            doc_id, doc_type = doc.pop("_id", None), doc.pop("_type", None)
            content = {k: v for k, v in doc.items() if not k.startswith("_")}
            if doc_id is None or doc_type is not None:
                flush()   # the lines before it first: a later line of the same id wins
                try:
                    coll.put(content, id=doc_id, type=doc_type)
                except errors.ValidationError as e:
                    _at_line(e, f"line {n}", e.message)
                    raise
            else:
                batch.append((doc_id, content))
                batch_lines.append(n)
                if len(batch) >= 1000:
                    flush()
            count += 1
            progress.advance()
        flush()
    out.emit({"collection": args.collection, "imported": count, "position": store.position})


def cmd_export(store: Store, args: argparse.Namespace, out: Output) -> None:
    """JSONL out from one snapshot: ``{"_id", "_type", "_version", ...content}`` per line."""
    existing = store.collections()
    if args.collection not in existing:
        shown = ", ".join(existing[:20]) + (", …" if len(existing) > 20 else "")
        raise errors.NotFound(f"{args.directory!r} has no collection {args.collection!r}",
                              hint=f"its collections: {shown}" if existing else "the store has no collections yet")
    coll = store[args.collection]
    if args.output in (None, "-"):
        count = _export(coll, sys.stdout.buffer.write if hasattr(sys.stdout, "buffer") else
                        lambda b: sys.stdout.write(b.decode()))
        return
    try:
        with OutputFile(args.output) as f:
            count = _export(coll, f.write)
    except OSError as e:
        raise os_error(e, f"cannot write {args.output!r}") from e
    out.emit({"collection": args.collection, "exported": count, "file": args.output})


def _export(coll: Any, write: Any) -> int:
    count = 0
    with Progress(f"exporting {coll.name}", total=len(coll)) as progress:
        for rec in coll.scan():
            line = {"_id": rec.id, **({"_type": rec.type} if rec.type else {}), "_version": rec.version,
                    **(rec.content or {})}
            write(orjson.dumps(line) + b"\n")
            count += 1
            progress.advance()
    return count


def _records(out: Output, records: Iterable[Record]) -> None:
    """JSON lines when piped (one record each, streamed); a table on a terminal."""
    if out.json:
        for rec in records:
            out.emit(rec)
        return
    out.table([{"id": r.id, "version": r.version, "content": r.content} for r in records],
              ["id", "version", "content"])


def cmd_find(store: Store, args: argparse.Namespace, out: Output) -> None:
    coll = store[args.collection]
    filter = json_arg(args.filter, "FILTER", None)
    sort, fields = list_arg(args.sort), list_arg(args.fields)
    if args.limit is None and not args.skip:  # stream: constant memory on any size
        _records(out, coll.scan(filter, sort=sort, fields=fields))
    else:
        _records(out, coll.find(filter, sort=sort, limit=args.limit, skip=args.skip, fields=fields))


def cmd_count(store: Store, args: argparse.Namespace, out: Output) -> None:
    out.emit(store[args.collection].count(json_arg(args.filter, "FILTER", None)))


def cmd_explain(store: Store, args: argparse.Namespace, out: Output) -> None:
    q = store[args.collection].query()
    filter = json_arg(args.filter, "FILTER", None)
    q = q.where(filter) if filter else q
    plan = (q.order_by(*list_arg(args.sort) or []) if args.sort else q).explain()
    if out.json:
        out.emit(plan.to_dict())
    else:
        out.write(str(plan))


def cmd_aggregate(store: Store, args: argparse.Namespace, out: Output) -> None:
    for row in store[args.collection].aggregate(json_arg(args.pipeline, "PIPELINE", None)):
        out.emit(row)


def cmd_search(store: Store, args: argparse.Namespace, out: Output) -> None:
    hits = store[args.collection].search_text(args.text, filter=json_arg(args.filter, "--filter", None),
                                              limit=args.limit)
    if out.json:
        for hit in hits:
            out.emit({"score": hit.score, **hit.record.to_dict()})
        return
    out.table([{"score": f"{h.score:.3f}", "id": h.record.id, "content": h.record.content} for h in hits],
              ["score", "id", "content"])


def cmd_index(store: Store, args: argparse.Namespace, out: Output) -> None:
    coll = store[args.collection]
    if args.action == "list":
        out.table([i.to_dict() for i in coll.indexes()], ["name", "fields", "unique", "kind"])
    elif args.action == "drop":
        coll.drop_index(args.name)
        out.emit({"collection": args.collection, "dropped": args.name})
    else:
        fields = [f.strip() for arg in args.fields for f in arg.split(",")]
        with Progress(f"indexing {args.collection}") as bar:
            if args.text:
                name = coll.create_text_index(fields, name=args.name)
            else:
                name = coll.create_index(fields, unique=args.unique, name=args.name, progress=bar.fraction)
        out.emit({"collection": args.collection, "index": name})


def _report(out: Output, report: Any, what: str) -> None:
    """A verify/repair Report: its JSON when piped; on a terminal, what was checked, repaired and found."""
    if out.json:
        out.emit(report.to_dict())
        return
    if report.checked:
        out.table([{"checked": k, "count": f"{v:,}"} for k, v in report.checked.items()], ["checked", "count"])
    for line in report.repaired:
        out.write(f"repaired: {line}")
    for line in report.problems:
        out.write(f"problem: {line}")
    if report.truncated:
        out.write(f"... and {report.truncated:,} more problems")
    out.write(f"{what}: ok" if report.ok else f"{what}: {len(report.problems) + report.truncated:,} problem(s)")


def cmd_verify(store: Store, args: argparse.Namespace, out: Output) -> None:
    """The report on stdout; with problems, exit with corrupted_data's code."""
    with Progress("verifying") as bar:
        report = store.verify(progress=bar.fraction)
    _report(out, report, f"verify {args.directory}")
    if not report.ok:
        n = len(report.problems) + report.truncated
        raise errors.CorruptedData(f"{store.directory}: {n} problem{'s' if n != 1 else ''} found",
                                   hint="kuradb repair rebuilds derived state; records and blobs need a backup")


def cmd_repair(store: Store, args: argparse.Namespace, out: Output) -> None:
    with Progress("repairing") as bar:
        report = store.repair(progress=bar.fraction)
    _report(out, report, f"repair {args.directory}")
    if not report.ok:  # what repair could not fix: the report says what
        n = len(report.problems) + report.truncated
        raise errors.CorruptedData(f"{store.directory}: {n} problem(s) remain after repair",
                                   hint="records and blobs that are damaged need a backup (kuradb restore)")


def cmd_health(store: Store, args: argparse.Namespace, out: Output) -> int:
    """Exit 0 ok, 1 degraded, 2 failing (the convention of monitoring checks)."""
    report = store.health()
    if out.json:
        out.emit(report.to_dict())
    else:
        out.table([{"check": k, "status": c.status, "detail": c.detail} for k, c in report.checks.items()],
                  ["check", "status", "detail"])
        out.write(f"status: {report.status}")
    return {"ok": 0, "degraded": 1, "failing": 2}[report.status]


def cmd_audit(store: Store, args: argparse.Namespace, out: Output) -> None:
    entries = store.audit(since=args.since, actor=args.actor, limit=args.limit)
    out.table([e.to_dict() for e in entries], ["position", "at", "actor", "action", "collection", "id", "version"])


# -- backups: the store's key is --key-file (or $KURADB_KEY_FILE); a plain store's encrypted backups have
#    their own key, --encryption-key-file. Each command takes the one the backups it reads need.


def _backup_key_hint(e: errors.KuraError) -> None:
    """A library error about encryption_key, in the words of the command line."""
    if "encryption_key" in e.message or "encryption_key" in (e.hint or ""):
        e.hint = (f"leave {BACKUP_KEY} out: a backup of an encrypted store is encrypted with the store's key"
                  if isinstance(e, errors.ValidationError) else BACKUP_KEY_HINT)


def cmd_backup(store: Store, args: argparse.Namespace, out: Output) -> int:
    """One backup; with --every, one now and then one per interval until SIGINT/SIGTERM (exit 0)."""
    key = read_key(args.encryption_key_file, BACKUP_KEY)
    if args.full_every is not None and args.every is None:
        raise errors.ValidationError("--full-every goes with --every (a schedule)", path="full_every")
    try:
        if args.every is not None:
            return _backup_every(store, args, out, key)
        with Progress(f"backing up to {args.dest}") as bar:
            info = store.backup(args.dest, kind=args.kind, encryption_key=key, progress=bar.fraction,
                                allow_damaged=args.allow_damaged)
    except (errors.ValidationError, errors.BackupError, errors.PermissionDenied) as e:
        _backup_key_hint(e)
        raise
    out.emit(info.to_dict())
    if any(v is not None for v in (args.keep_last, args.keep_daily, args.keep_weekly)):
        backups.prune(args.dest, keep_last=args.keep_last, keep_daily=args.keep_daily, keep_weekly=args.keep_weekly)
    return 0


def _backup_every(store: Store, args: argparse.Namespace, out: Output, key: Any) -> int:
    """The schedule runs in this (the main) thread, so SIGTERM or SIGINT interrupts the backup in progress,
    which removes its partial folder, instead of waiting for it to finish."""
    def report(info: Any) -> None:
        out.emit(info.to_dict())
        out.stream.flush()  # a long-running command: each line as it happens

    def failed(e: BaseException) -> None:
        if isinstance(e, errors.KuraError):
            _backup_key_hint(e)
        sys.stderr.write(f"kuradb: backup failed: {e}\n")
        sys.stderr.flush()

    schedule = BackupSchedule(store, args.dest, args.every, keep_last=args.keep_last, keep_daily=args.keep_daily,
                              keep_weekly=args.keep_weekly, on_backup=report, on_error=failed, kind=args.kind,
                              full_every=args.full_every, encryption_key=key)
    try:
        schedule.run()
    except (KeyboardInterrupt, Terminated):
        pass
    return 0


def _reading_key(args: argparse.Namespace, dest: str) -> Any:
    """The key for reading the backups in ``dest``: the store's (--key-file) for backups of an encrypted
    store, the backup key (--encryption-key-file) for encrypted backups of a plain store."""
    own, backup_key = store_key(args), read_key(args.encryption_key_file, BACKUP_KEY)
    if own is None or backup_key is None:
        return backup_key if backup_key is not None else own
    needed = backup_files.keys_needed(dest)
    if needed == {"store", "backup"}:
        raise errors.ValidationError(f"{dest!r} holds backups of an encrypted store and encrypted backups of a plain"
                                     " store; one run reads one kind", path=BACKUP_KEY,
                                     hint=f"give {STORE_KEY} for the first kind, {BACKUP_KEY} for the second")
    return own if needed == {"store"} else backup_key


def _key_hint(dest: str) -> str:
    """Which option gives the key the backups in ``dest`` need (both, when that cannot be told)."""
    try:
        needed = backup_files.keys_needed(dest) or {"store", "backup"}
    except errors.KuraError:
        needed = {"store", "backup"}
    hints = []
    if "store" in needed:
        hints.append(STORE_KEY_HINT + " for a backup of an encrypted store")
    if "backup" in needed:
        hints.append(BACKUP_KEY_HINT + " for an encrypted backup of a plain store")
    return "; ".join(hints)


def cmd_backups(_: None, args: argparse.Namespace, out: Output) -> None:
    if args.action == "list":
        out.table([b.to_dict() for b in backups.list_backups(args.dest)],
                  ["id", "kind", "parent", "position", "created", "size"])
    elif args.action == "verify":
        key = _reading_key(args, args.dest)
        with Progress(f"verifying backups in {args.dest}") as bar:
            report = backups.verify(args.dest, args.id, encryption_key=key, progress=bar.fraction)
        _report(out, report, f"verify {args.dest}")
        if not report.ok:
            missing_key = key is None and backup_files.keys_needed(args.dest)
            raise errors.CorruptedData(f"{args.dest}: {len(report.problems)} problem(s) found",
                                       hint=_key_hint(args.dest) if missing_key else
                                       "restore from a backup that verifies")
    else:
        removed = backups.prune(args.dest, keep_last=args.keep_last, keep_daily=args.keep_daily,
                                keep_weekly=args.keep_weekly)
        out.emit({"removed": removed})


def _until(text: str | None) -> int | datetime | None:
    """--until: a change-log position, or an ISO 8601 time (local time when it has no offset)."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        return datetime.fromisoformat(text)
    except ValueError as e:
        raise errors.ValidationError(f"--until {text!r} is neither a position nor an ISO 8601 time",
                                     path="until", hint="e.g. --until 1200 or --until 2026-11-22T14:30") from e


def cmd_restore(_: None, args: argparse.Namespace, out: Output) -> None:
    until, key = _until(args.until), _reading_key(args, args.dest)
    try:
        with Progress(f"restoring into {args.target}") as bar:
            info = backups.restore(args.dest, args.target, id=args.id, until=until, encryption_key=key,
                                   progress=bar.fraction)
    except errors.PermissionDenied as e:
        e.hint = _key_hint(args.dest)
        raise
    out.emit(info.to_dict())


def cmd_copy(_: None, args: argparse.Namespace, out: Output) -> None:
    """Copy SRC into the new DEST with its whole history, with a progress bar (kuradb.copy)."""
    from ..backups.transfer import copy

    dest_key = read_key(args.dest_key_file, "--dest-key-file") if args.dest_key_file else None
    with Progress(f"copying into {shown(args.dest)}") as bar:
        result = copy(args.source, args.dest, encryption_key=store_key(args), dest_encryption_key=dest_key,
                      progress=bar.fraction)
    out.emit(result)


def cmd_rekey(_: None, args: argparse.Namespace, out: Output) -> None:
    """Encrypt a plain store, or change an encrypted store's key (offline: it opens the file itself)."""
    from ..store import rekey

    sealed = rekey(args.directory, store_key(args), read_key(args.new_key_file, "--new-key-file"))
    out.emit({"rekeyed": args.directory, "blob_files_sealed": sealed})


def cmd_migrate(_: None, args: argparse.Namespace, out: Output) -> None:
    """Migrate a store to this kuradb's layout, with a progress bar (a store already there is left as it is)."""
    from ..store import migrate

    with Progress("migrating") as bar:
        version = migrate(args.directory, progress=bar.fraction, encryption_key=store_key(args), vacuum=args.vacuum)
    out.emit({"migrated": args.directory, "schema_version": version})


def cmd_cache(_: None, args: argparse.Namespace, out: Output) -> None:
    from .. import cache

    if args.action == "stats":
        stats = cache.saved_stats(args.directory)
        if out.json:
            out.emit(stats.as_dict())
            return
        fields = ["items", "bytes", "hits", "misses", "promotions", "demotions", "evictions", "expirations",
                  "errors"]
        out.table([{"tier": name, **{f: getattr(t, f) for f in fields}} for name, t in stats.tiers.items()],
                  ["tier", *fields])
        out.write(f"hit rate: {stats.hit_rate:.1%} ({stats.hits} hits, {stats.misses} misses)")
        return
    cache.saved_stats(args.directory)   # NotFound rather than creating an empty cache
    with cache.Cache(args.directory, access_log=0) as c:
        out.emit({"removed": c.clear(pattern=args.pattern, tag=args.tag)})


def cmd_demo(store: Store, args: argparse.Namespace, out: Output) -> None:
    from ..demo import run

    run(store, sys.stdout)

