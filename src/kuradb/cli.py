"""The ``kuradb`` command: a thin shell over the library.

Output is JSON when stdout is not a terminal (or with --json), a readable view
otherwise. Errors go to stderr as ``kuradb: CODE: message`` and exit with the
error's code from ``kuradb.errors.EXIT_CODES`` (2 for usage errors).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, TextIO

import orjson

from . import backups, errors
from .progress import Progress
from .records import Record
from .sqlite import DB_FILE
from .store import Store
from .store import open as open_store


def _read_json(text: str, where: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise errors.ValidationError(f"{where} is not valid JSON: {e}", path=where) from e


class Output:
    def __init__(self, stream: TextIO, force_json: bool) -> None:
        self.stream = stream
        self.json = force_json or not stream.isatty()

    def emit(self, value: Any) -> None:
        if self.json:
            self.stream.write(orjson.dumps(value, default=_jsonable).decode() + "\n")
        else:
            self.stream.write(orjson.dumps(value, default=_jsonable, option=orjson.OPT_INDENT_2).decode()
                              + "\n")

    def table(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        if self.json:
            self.emit(rows)
            return
        cells = [[_short(r.get(c)) for c in columns] for r in rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
        self.stream.write("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
        for row in cells:
            self.stream.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):  # Record, Change
        return value.to_dict()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=_jsonable).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


# -- commands ------------------------------------------------------------------------


def cmd_init(store: Store, args: argparse.Namespace, out: Output) -> None:
    out.emit({"directory": store.directory, "position": store.position})


def cmd_put(store: Store, args: argparse.Namespace, out: Output) -> None:
    text = sys.stdin.read() if args.json_content in (None, "-") else args.json_content
    content = _read_json(text, "content")
    rec = store[args.collection].put(content, id=args.id, type=args.type, author=args.author,
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


def _jsonl(stream: TextIO) -> Iterator[tuple[int, Any]]:
    for n, line in enumerate(stream, 1):
        if line.strip():
            yield n, _read_json(line, f"line {n}")


def cmd_import(store: Store, args: argparse.Namespace, out: Output) -> None:
    """JSONL in, one transaction: every line is written, or (on any error) none is."""
    stream = sys.stdin if args.file in (None, "-") else open(args.file, encoding="utf-8")  # noqa: SIM115
    coll = store[args.collection]
    count = 0
    with stream, Progress(f"importing into {args.collection}") as progress, store.transaction():
        batch: list[tuple[str, dict[str, Any]]] = []
        for n, doc in _jsonl(stream):
            if not isinstance(doc, dict):
                raise errors.ValidationError(f"line {n}: expected a JSON object", path=f"line {n}")
            doc_id = doc.pop("_id", None)
            doc_type = doc.pop("_type", None)
            content = {k: v for k, v in doc.items() if not k.startswith("_")}
            if doc_id is None:
                coll.put(content, type=doc_type)
            elif doc_type is not None:
                coll.put(content, id=doc_id, type=doc_type)
            else:
                batch.append((doc_id, content))
            count += 1
            if len(batch) >= 1000:
                coll.put_many(batch)
                progress.advance(len(batch))
                batch = []
        if batch:
            coll.put_many(batch)
            progress.advance(len(batch))
    out.emit({"collection": args.collection, "imported": count, "position": store.position})


def cmd_export(store: Store, args: argparse.Namespace, out: Output) -> None:
    """JSONL out from one snapshot: ``{"_id", "_type", "_version", ...content}`` per line."""
    coll = store[args.collection]
    target = sys.stdout if args.output in (None, "-") else open(args.output, "wb")  # noqa: SIM115
    write = target.buffer.write if hasattr(target, "buffer") else target.write
    count = 0
    with Progress(f"exporting {args.collection}", total=len(coll)) as progress:
        for rec in coll.scan():
            line = {"_id": rec.id, **({"_type": rec.type} if rec.type else {}), "_version": rec.version,
                    **(rec.content or {})}
            write(orjson.dumps(line) + b"\n")
            count += 1
            progress.advance()
    if target is not sys.stdout:
        target.close()
        out.emit({"collection": args.collection, "exported": count, "file": args.output})


def _json_arg(text: str | None, where: str, default: Any) -> Any:
    """A JSON argument; '-' reads it from stdin, omitted gives ``default``."""
    if text is None:
        return default
    return _read_json(sys.stdin.read() if text == "-" else text, where)


def _list_arg(text: str | None) -> list[str] | None:
    """``--sort owner,-score`` / ``--fields a,b.c``: comma-separated paths."""
    return None if text is None else [part.strip() for part in text.split(",")]


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
    filter = _json_arg(args.filter, "FILTER", None)
    sort, fields = _list_arg(args.sort), _list_arg(args.fields)
    if args.limit is None and not args.skip:  # stream: constant memory on any size
        _records(out, coll.scan(filter, sort=sort, fields=fields))
    else:
        _records(out, coll.find(filter, sort=sort, limit=args.limit, skip=args.skip, fields=fields))


def cmd_count(store: Store, args: argparse.Namespace, out: Output) -> None:
    out.emit(store[args.collection].count(_json_arg(args.filter, "FILTER", None)))


def cmd_explain(store: Store, args: argparse.Namespace, out: Output) -> None:
    q = store[args.collection].query()
    filter = _json_arg(args.filter, "FILTER", None)
    q = q.where(filter) if filter else q
    plan = (q.order_by(*_list_arg(args.sort) or []) if args.sort else q).explain()
    if out.json:
        out.emit(plan.to_dict())
    else:
        out.stream.write(str(plan) + "\n")


def cmd_aggregate(store: Store, args: argparse.Namespace, out: Output) -> None:
    for row in store[args.collection].aggregate(_json_arg(args.pipeline, "PIPELINE", None)):
        out.emit(row)


def cmd_search(store: Store, args: argparse.Namespace, out: Output) -> None:
    hits = store[args.collection].search_text(args.text, filter=_json_arg(args.filter, "--filter", None),
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
        with Progress(f"indexing {args.collection}", total=1000) as bar:
            if args.text:
                name = coll.create_text_index(fields, name=args.name)
            else:
                name = coll.create_index(fields, unique=args.unique, name=args.name, progress=bar.fraction)
            bar.fraction(1.0)
        out.emit({"collection": args.collection, "index": name})


def cmd_verify(store: Store, args: argparse.Namespace, out: Output) -> None:
    """The report on stdout; with problems, exit with corrupted_data's code."""
    with Progress("verifying", total=1000) as bar:
        report = store.verify(progress=bar.fraction)
    if out.json:
        out.emit(report.to_dict())
    else:
        out.stream.write("\n".join(report.problems + [f"checked: {report.checked}"]) + "\n")
    if not report.ok:
        n = len(report.problems) + report.truncated
        raise errors.CorruptedData(f"{store.directory}: {n} problem{'s' if n != 1 else ''} found",
                                   hint="kuradb repair rebuilds derived state; records and blobs need a backup")


def cmd_repair(store: Store, args: argparse.Namespace, out: Output) -> None:
    with Progress("repairing", total=1000) as bar:
        report = store.repair(progress=bar.fraction)
    out.emit(report.to_dict())
    if not report.ok:  # what repair could not fix: the report says what
        raise errors.CorruptedData(f"{store.directory}: {len(report.problems) + report.truncated} problem(s) remain")


def cmd_health(store: Store, args: argparse.Namespace, out: Output) -> int:
    """Exit 0 ok, 1 degraded, 2 failing (the convention of monitoring checks)."""
    report = store.health()
    if out.json:
        out.emit(report.to_dict())
    else:
        out.table([{"check": k, "status": c.status, "detail": c.detail} for k, c in report.checks.items()],
                  ["check", "status", "detail"])
        out.stream.write(f"status: {report.status}\n")
    return {"ok": 0, "degraded": 1, "failing": 2}[report.status]


def cmd_audit(store: Store, args: argparse.Namespace, out: Output) -> None:
    entries = store.audit(since=args.since, actor=args.actor, limit=args.limit)
    out.table([e.to_dict() for e in entries], ["position", "at", "actor", "action", "collection", "id", "version"])


KEY_FILE = ("--encryption-key-file",)
KEY_HELP = "encrypt (or open) backups with the key in this file: 32 raw bytes, or a passphrase"


def cmd_backup(store: Store, args: argparse.Namespace, out: Output) -> int:
    """One backup; with --every, one now and then one per interval until SIGINT/SIGTERM (exit 0)."""
    key = _key(args)
    if args.full_every is not None and args.every is None:
        raise errors.ValidationError("--full-every goes with --every (a schedule)", path="full_every")
    if args.every is not None:
        def report(info: Any) -> None:
            out.emit(info.to_dict())
            out.stream.flush()  # a long-running command: each line as it happens

        schedule = store.backup_every(args.dest, every=args.every, keep_last=args.keep_last,
                                      keep_daily=args.keep_daily, keep_weekly=args.keep_weekly, on_backup=report,
                                      kind=args.kind, full_every=args.full_every, encryption_key=key)
        stopping = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        try:
            while schedule.is_alive() and not stopping.wait(0.2):
                if schedule.last_error is not None:
                    sys.stderr.write(f"kuradb: backup failed: {schedule.last_error}\n")
                    schedule.last_error = None
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            schedule.stop()
        return 0
    with Progress(f"backing up to {args.dest}", total=1000) as bar:
        info = store.backup(args.dest, kind=args.kind, encryption_key=key, progress=bar.fraction,
                            allow_damaged=args.allow_damaged)
    out.emit(info.to_dict())
    if any(v is not None for v in (args.keep_last, args.keep_daily, args.keep_weekly)):
        backups.prune(args.dest, keep_last=args.keep_last, keep_daily=args.keep_daily, keep_weekly=args.keep_weekly)
    return 0


def cmd_backups(_: None, args: argparse.Namespace, out: Output) -> None:
    if args.action == "list":
        out.table([b.to_dict() for b in backups.list_backups(args.dest)],
                  ["id", "kind", "parent", "position", "created", "size"])
    elif args.action == "verify":
        with Progress(f"verifying backups in {args.dest}", total=1000) as bar:
            report = backups.verify(args.dest, args.id, encryption_key=_key(args), progress=bar.fraction)
        out.emit(report.to_dict())
        if not report.ok:
            raise errors.CorruptedData(f"{args.dest}: {len(report.problems)} problem(s) found",
                                       hint="restore from a backup that verifies")
    else:
        removed = backups.prune(args.dest, keep_last=args.keep_last, keep_daily=args.keep_daily,
                                keep_weekly=args.keep_weekly)
        out.emit({"removed": removed})


def _key(args: argparse.Namespace, option: str = "encryption_key_file") -> bytes | str | None:
    """A key from a key file option: 32 bytes are a raw key, anything else a passphrase."""
    path = getattr(args, option, None)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise errors.NotFound(f"cannot read the key file {path!r}: {e.strerror}") from e
    if len(data) == 32:
        return data
    try:
        text = data.decode().rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise errors.ValidationError(f"{path}: a key file holds 32 raw bytes or a UTF-8 passphrase",
                                     path=option) from e
    if not text:
        raise errors.ValidationError(f"{path} is empty", path=option)
    return text


def cmd_rekey(_: None, args: argparse.Namespace, out: Output) -> None:
    """Encrypt a plain store, or change an encrypted store's key (offline: it opens the file itself)."""
    from . import atrest

    sealed = atrest.rekey(args.directory, _key(args, "key_file"), _key(args, "new_key_file"))
    out.emit({"rekeyed": args.directory, "blob_files_sealed": sealed})


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
    with Progress(f"restoring into {args.target}", total=1000) as bar:
        info = backups.restore(args.dest, args.target, id=args.id, until=_until(args.until),
                               encryption_key=_key(args), progress=bar.fraction)
    out.emit(info.to_dict())


def cmd_cache(_: None, args: argparse.Namespace, out: Output) -> None:
    from . import cache

    if args.action == "stats":
        stats = cache.saved_stats(args.directory)
        if out.json:
            out.emit(stats.as_dict())
            return
        fields = ["items", "bytes", "hits", "misses", "promotions", "demotions", "evictions", "expirations",
                  "errors"]
        out.table([{"tier": name, **{f: getattr(t, f) for f in fields}} for name, t in stats.tiers.items()],
                  ["tier", *fields])
        out.stream.write(f"hit rate: {stats.hit_rate:.1%} ({stats.hits} hits, {stats.misses} misses)\n")
        return
    cache.saved_stats(args.directory)   # NotFound rather than creating an empty cache
    with cache.Cache(args.directory, access_log=0) as c:
        out.emit({"removed": c.clear(pattern=args.pattern, tag=args.tag)})


def cmd_demo(store: Store, args: argparse.Namespace, out: Output) -> None:
    from .demo import run

    run(store, sys.stdout)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kuradb", description="kuradb: one store for everything an app keeps.")
    p.add_argument("--json", action="store_true", help="JSON output even on a terminal")
    p.add_argument("--durability", choices=["full", "normal", "off"], default="normal")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds a writer waits for the lock")
    p.add_argument("--key-file", default=os.environ.get("KURADB_KEY_FILE"), metavar="F",
                   help="the key of an encrypted store: 32 raw bytes or a passphrase (default: $KURADB_KEY_FILE)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, fn: Any, help: str, *, collection: bool = False, id: bool = False) -> Any:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("directory", metavar="DIR", help="the store's directory")
        if collection:
            sp.add_argument("collection", metavar="COLLECTION")
        if id:
            sp.add_argument("id", metavar="ID")
        sp.set_defaults(fn=fn)
        return sp

    command("init", cmd_init, "create a store (or check an existing one opens)")
    sp = command("put", cmd_put, "write a record from JSON (argument or stdin)", collection=True)
    sp.add_argument("id", metavar="ID", nargs="?", help="omit to generate one")
    sp.add_argument("json_content", metavar="JSON", nargs="?", help="content; '-' or omitted reads stdin")
    sp.add_argument("--type")
    sp.add_argument("--author")
    sp.add_argument("--if-version", type=int)
    sp = command("get", cmd_get, "print a record", collection=True, id=True)
    sp.add_argument("--version", type=int)
    sp = command("delete", cmd_delete, "delete a record (a tombstone version)", collection=True, id=True)
    sp.add_argument("--author")
    sp.add_argument("--if-version", type=int)
    command("history", cmd_history, "every version of a record, oldest first", collection=True, id=True)
    command("stats", cmd_stats, "counts and sizes")
    sp = command("changes", cmd_changes, "the change log")
    sp.add_argument("--since", type=int, default=0)
    sp.add_argument("--limit", type=int, default=None)
    sp = command("import", cmd_import, "import JSONL (one transaction: all lines or none)", collection=True)
    sp.add_argument("file", metavar="FILE", nargs="?", help="JSONL file; '-' or omitted reads stdin")
    sp = command("export", cmd_export, "export a collection as JSONL", collection=True)
    sp.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    sp = command("find", cmd_find, "records matching a filter, as JSON lines", collection=True)
    sp.add_argument("filter", metavar="FILTER", nargs="?",
                    help="a JSON filter like '{\"owner\": \"ann\"}'; '-' reads stdin")
    sp.add_argument("--sort", metavar="PATHS", help="comma-separated, '-' for descending: owner,-score")
    sp.add_argument("--limit", type=int)
    sp.add_argument("--skip", type=int, default=0)
    sp.add_argument("--fields", metavar="PATHS", help="comma-separated content paths to keep")
    sp = command("count", cmd_count, "how many records match a filter", collection=True)
    sp.add_argument("filter", metavar="FILTER", nargs="?", help="a JSON filter; '-' reads stdin")
    sp = command("explain", cmd_explain, "how a query runs: the index used, the SQL, SQLite's plan",
                 collection=True)
    sp.add_argument("filter", metavar="FILTER", nargs="?", help="a JSON filter; '-' reads stdin")
    sp.add_argument("--sort", metavar="PATHS", help="comma-separated, '-' for descending")
    sp = command("aggregate", cmd_aggregate, "run an aggregation pipeline (JSON list of stages)",
                 collection=True)
    sp.add_argument("pipeline", metavar="PIPELINE", help="a JSON list like '[{\"$group\": ...}]'; '-' reads stdin")
    sp = command("search", cmd_search, "full-text search, best first", collection=True)
    sp.add_argument("text", metavar="TEXT", help='words, "a phrase", prefix*, -excluded')
    sp.add_argument("--filter", metavar="FILTER", help="a JSON filter the hits must also match")
    sp.add_argument("--limit", type=int, default=10)
    index = sub.add_parser("index", help="create, list or drop a collection's indexes",
                           description="create, list or drop a collection's indexes")
    actions = index.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help in (("create", "index fields (a progress bar shows while it builds on existing data)"),
                         ("list", "the collection's indexes"), ("drop", "drop an index by name")):
        sp = actions.add_parser(action, help=help, description=help)
        sp.add_argument("directory", metavar="DIR", help="the store's directory")
        sp.add_argument("collection", metavar="COLLECTION")
        sp.set_defaults(fn=cmd_index)
        if action == "create":
            sp.add_argument("fields", metavar="FIELDS", nargs="+",
                            help="field paths, comma-separated or as separate arguments: owner,-score")
            sp.add_argument("--unique", action="store_true", help="refuse duplicate values")
            sp.add_argument("--text", action="store_true", help="a full-text index over the fields")
            sp.add_argument("--name", help="the index name (default: from the fields)")
        elif action == "drop":
            sp.add_argument("name", metavar="NAME")
    command("verify", cmd_verify, "check every record, version, blob and index; exit 0 only if all is well")
    command("repair", cmd_repair, "rebuild derived state (indexes, catalog, blob references); never user data")
    command("health", cmd_health, "ok / degraded / failing, with named checks; exit 0 / 1 / 2")
    sp = command("audit", cmd_audit, "the audit trail: who changed what, when (hash-chained; kuradb verify checks it)")
    sp.add_argument("--since", type=int, metavar="POSITION", help="entries after this change-log position")
    sp.add_argument("--actor", help="only this author's entries")
    sp.add_argument("--limit", type=int)
    sp = command("backup", cmd_backup, "back up a store while it is in use (consistent at one position)")
    sp.add_argument("dest", metavar="DEST", help="the backup directory (one folder per backup)")
    sp.add_argument("--kind", default="full", choices=["full", "incremental", "differential"],
                    help="incremental: the changes since the newest backup; differential: since the newest full")
    sp.add_argument("--every", metavar="INTERVAL", help="keep running: a backup now and every INTERVAL (30m, 1h, 1d)")
    sp.add_argument("--full-every", metavar="INTERVAL",
                    help="with --every and --kind incremental/differential: a full backup when the newest is this old")
    sp.add_argument(*KEY_FILE, help=KEY_HELP)
    sp.add_argument("--allow-damaged", action="store_true", help="back up a damaged store anyway, marked damaged")
    for rule in ("last", "daily", "weekly"):
        sp.add_argument(f"--keep-{rule}", type=int, metavar="N", help=f"prune after each backup: keep {rule} N")
    group = sub.add_parser("backups", help="list, verify or prune the backups in a directory",
                           description="list, verify or prune the backups in a directory")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help in (("list", "the complete backups, oldest first"),
                         ("verify", "check every file and restore each backup into a temporary store"),
                         ("prune", "delete the backups no --keep rule keeps")):
        sp = actions.add_parser(action, help=help, description=help)
        sp.add_argument("dest", metavar="DEST")
        sp.set_defaults(fn=cmd_backups, store=False)
        if action == "verify":
            sp.add_argument("--id", help="only this backup")
            sp.add_argument(*KEY_FILE, help=KEY_HELP)
        if action == "prune":
            for rule in ("last", "daily", "weekly"):
                sp.add_argument(f"--keep-{rule}", type=int, metavar="N")
    sp = command("rekey", cmd_rekey, "encrypt a store, or change its key (--key-file: the current one); offline")
    sp.add_argument("--new-key-file", required=True, metavar="F", help="the new key: 32 raw bytes or a passphrase")
    sp.set_defaults(store=False)
    sp = sub.add_parser("restore", help="restore a backup as a new store (verified before it appears)",
                        description="restore a backup as a new store (verified before it appears)")
    sp.add_argument("dest", metavar="DEST", help="the backup directory")
    sp.add_argument("target", metavar="TARGET", help="a new (or empty) directory for the store")
    sp.add_argument("--id", help="the backup to restore (default: the newest)")
    sp.add_argument("--until", metavar="POSITION|TIME",
                    help="the state at a change-log position or an ISO 8601 time (point-in-time restore)")
    sp.add_argument(*KEY_FILE, help=KEY_HELP)
    sp.set_defaults(fn=cmd_restore, store=False)
    group = sub.add_parser("cache", help="statistics of a cache directory, or clear it",
                           description="statistics of a kuradb.Cache directory (L3/L4 on disk), or clear it")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help in (("stats", "items and bytes on disk; counters saved by every process at close"),
                         ("clear", "remove every entry, or those matching --pattern or carrying --tag")):
        sp = actions.add_parser(action, help=help, description=help)
        sp.add_argument("directory", metavar="DIR")
        sp.set_defaults(fn=cmd_cache, store=False)
        if action == "clear":
            sp.add_argument("--pattern", help="a glob over keys: *, ?, [abc]")
            sp.add_argument("--tag", help="only entries carrying this tag")
    demo = sub.add_parser("demo", help="a guided tour on a throwaway (or given) store",
                          description="a guided tour on a throwaway (or given) store")
    demo.add_argument("directory", metavar="DIR", nargs="?", default=":memory:")
    demo.set_defaults(fn=cmd_demo)
    return p


_READ_ONLY = ("get", "history", "stats", "changes", "export", "find", "count", "explain", "aggregate", "search",
              "audit")


_CREATES = ("init", "put", "import", "demo")  # the commands that make a store where there is none


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Output(sys.stdout, args.json)
    try:
        if not getattr(args, "store", True):
            args.fn(None, args, out)
            return 0
        read_only = args.command in _READ_ONLY or getattr(args, "action", None) == "list"
        if args.command not in _CREATES and not os.path.exists(os.path.join(args.directory, DB_FILE)):
            raise errors.NotFound(f"no kuradb store at {args.directory!r}", hint="create it with kuradb init")
        with open_store(args.directory, durability=args.durability, timeout=args.timeout,
                        read_only=read_only, encryption_key=_key(args, "key_file")) as store:
            code = args.fn(store, args, out)
            if code:
                return int(code)
    except errors.KuraError as e:
        hint = f"\n  hint: {e.hint}" if e.hint else ""
        sys.stderr.write(f"kuradb: {e.code}: {e.message}{hint}\n")
        return errors.EXIT_CODES.get(e.code, 1)
    except BrokenPipeError:
        sys.stderr.close()  # a closed pipe (e.g. `| head`) is not an error
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
