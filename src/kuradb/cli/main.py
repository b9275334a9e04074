"""The ``kuradb`` command's arguments, and ``main``: parse, open the store, run the command, print errors.

Errors go to stderr as ``kuradb: CODE: message`` (and a hint) and exit with the
error's code from ``kuradb.errors.EXIT_CODES``; 2 is for usage errors, 130 and
143 for SIGINT and SIGTERM (``backup --every`` exits 0 on either: that is how it
is stopped).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import errors
from ..store import open as open_store
from . import commands as c
from .io import Output, os_error

EPILOG = """\
The options before COMMAND (--json, --key-file, --durability, --timeout) may also
follow it. An argument that starts with '-' (an id, a field sorted descending, an
excluded search word) goes after '--', as in: kuradb get DIR notes -- -x. An
option's value may start with '-': --id=-x, --sort -score.

Keys: the key of an encrypted store is --key-file F (or $KURADB_KEY_FILE), for
every command that opens the store and for reading its backups (restore, backups
verify). A plain store's backups can be encrypted with a key of their own:
--encryption-key-file F (backup, backups verify, restore). A key file holds 32 raw
bytes or a passphrase.
"""

# Options whose value may start with '-' ("--sort -score"): argparse would take it for an option.
_DASH_VALUES = ("--sort", "--fields", "--id")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kuradb", description="kuradb: one store for everything an app keeps.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="JSON output even on a terminal")
    p.add_argument("--durability", choices=["full", "normal", "off"], default="normal")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds a writer waits for the lock")
    p.add_argument("--key-file", metavar="F",
                   help="the key of an encrypted store: 32 raw bytes or a passphrase (default: $KURADB_KEY_FILE)")
    # The same options after COMMAND; SUPPRESS keeps the value given before it when they are not repeated.
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    key = argparse.ArgumentParser(add_help=False)
    key.add_argument("--key-file", metavar="F", default=argparse.SUPPRESS,
                     help="the store's key (also before COMMAND, or $KURADB_KEY_FILE)")
    opening = argparse.ArgumentParser(add_help=False, parents=[key])
    opening.add_argument("--durability", choices=["full", "normal", "off"], default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)
    opening.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(parent: Any, name: str, help: str, fn: Any, *, store: bool = True, parents: tuple[Any, ...] = ()) -> Any:
        sp = parent.add_parser(name, help=help, description=help, parents=[output, *parents])
        sp.set_defaults(fn=fn, store=store)
        return sp

    def command(name: str, fn: Any, help: str, *, collection: bool = False, id: bool = False) -> Any:
        sp = add(sub, name, help, fn, parents=(opening,))
        sp.add_argument("directory", metavar="DIR", help="the store: its directory, or a postgresql:// URL")
        if collection:
            sp.add_argument("collection", metavar="COLLECTION")
        if id:
            sp.add_argument("id", metavar="ID", help="the record's id (one that starts with '-': after '--')")
        return sp

    def backup_key(sp: Any, what: str) -> None:
        sp.add_argument(c.BACKUP_KEY, metavar="F", help=f"{what} a plain store's backups with their own key"
                        " (32 raw bytes or a passphrase); backups of an encrypted store use its --key-file")

    command("init", c.cmd_init, "create a store (or check an existing one opens)")
    sp = command("put", c.cmd_put, "write a record: CONTENT is its JSON, or - to read it from stdin",
                 collection=True)
    sp.add_argument("content", metavar="CONTENT", help="the record's content: JSON text, or - to read it from stdin")
    sp.add_argument("extra", nargs="*", help=argparse.SUPPRESS)   # the old form, PUT DIR COLL ID JSON: refused
    sp.add_argument("--id", help="the record's id (default: a new one); one that starts with '-': --id=-x")
    sp.add_argument("--type")
    sp.add_argument("--author")
    sp.add_argument("--if-version", type=int, metavar="N", help="write only if the record is at version N")
    sp.set_defaults(prepare=c.prepare_put)
    sp = command("get", c.cmd_get, "print a record", collection=True, id=True)
    sp.add_argument("--version", type=int)
    sp = command("delete", c.cmd_delete, "delete a record (a tombstone version)", collection=True, id=True)
    sp.add_argument("--author")
    sp.add_argument("--if-version", type=int, metavar="N")
    command("history", c.cmd_history, "every version of a record, oldest first", collection=True, id=True)
    command("stats", c.cmd_stats, "counts and sizes")
    sp = command("changes", c.cmd_changes, "the change log")
    sp.add_argument("--since", type=int, default=0)
    sp.add_argument("--limit", type=int, default=None)
    sp = command("import", c.cmd_import, "import JSONL (one transaction: all lines or none)", collection=True)
    sp.add_argument("file", metavar="FILE", nargs="?", help="JSONL file; '-' or omitted reads stdin (a file named"
                    " '-': ./-)")
    sp.set_defaults(prepare=c.prepare_import)
    sp = command("export", c.cmd_export, "export a collection as JSONL", collection=True)
    sp.add_argument("-o", "--output", metavar="FILE", help="write here (replaced when complete) instead of stdout")
    sp = command("find", c.cmd_find, "records matching a filter, as JSON lines", collection=True)
    sp.add_argument("filter", metavar="FILTER", nargs="?",
                    help="a JSON filter like '{\"owner\": \"ann\"}'; '-' reads stdin")
    sp.add_argument("--sort", metavar="PATHS", help="comma-separated, '-' for descending: owner,-score")
    sp.add_argument("--limit", type=int)
    sp.add_argument("--skip", type=int, default=0)
    sp.add_argument("--fields", metavar="PATHS", help="comma-separated content paths to keep")
    sp = command("count", c.cmd_count, "how many records match a filter", collection=True)
    sp.add_argument("filter", metavar="FILTER", nargs="?", help="a JSON filter; '-' reads stdin")
    sp = command("explain", c.cmd_explain, "how a query runs: the index used, the SQL, the engine's plan",
                 collection=True)
    sp.add_argument("filter", metavar="FILTER", nargs="?", help="a JSON filter; '-' reads stdin")
    sp.add_argument("--sort", metavar="PATHS", help="comma-separated, '-' for descending")
    sp = command("aggregate", c.cmd_aggregate, "run an aggregation pipeline (JSON list of stages)",
                 collection=True)
    sp.add_argument("pipeline", metavar="PIPELINE", help="a JSON list like '[{\"$group\": ...}]'; '-' reads stdin")
    sp = command("search", c.cmd_search, "full-text search, best first", collection=True)
    sp.add_argument("text", metavar="TEXT", help='words, "a phrase", prefix*, -excluded (alone: after --)')
    sp.add_argument("--filter", metavar="FILTER", help="a JSON filter the hits must also match")
    sp.add_argument("--limit", type=int, default=10)
    index = sub.add_parser("index", help="create, list or drop a collection's indexes",
                           description="create, list or drop a collection's indexes")
    actions = index.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help in (("create", "index fields (a progress bar shows while it builds on existing data)"),
                         ("list", "the collection's indexes"), ("drop", "drop an index by name")):
        sp = add(actions, action, help, c.cmd_index, parents=(opening,))
        sp.add_argument("directory", metavar="DIR", help="the store: its directory, or a postgresql:// URL")
        sp.add_argument("collection", metavar="COLLECTION")
        if action == "create":
            sp.add_argument("fields", metavar="FIELDS", nargs="+",
                            help="field paths, comma-separated or as separate arguments: owner,-score"
                            " (a separate descending one after --: -- owner -score)")
            sp.add_argument("--unique", action="store_true", help="refuse duplicate values")
            sp.add_argument("--text", action="store_true", help="a full-text index over the fields")
            sp.add_argument("--name", help="the index name (default: from the fields)")
        elif action == "drop":
            sp.add_argument("name", metavar="NAME")
    command("verify", c.cmd_verify, "check every record, version, blob and index; exit 0 only if all is well")
    command("repair", c.cmd_repair, "rebuild derived state (indexes, catalog, blob references); never user data")
    command("health", c.cmd_health, "ok / degraded / failing, with named checks; exit 0 / 1 / 2")
    sp = command("audit", c.cmd_audit, "the audit trail: who changed what, when (hash-chained; kuradb verify checks"
                 " it)")
    sp.add_argument("--since", type=int, metavar="POSITION", help="entries after this change-log position")
    sp.add_argument("--actor", help="only this author's entries")
    sp.add_argument("--limit", type=int)
    sp = command("backup", c.cmd_backup, "back up a store while it is in use (consistent at one position)")
    sp.add_argument("dest", metavar="DEST", help="the backup directory (one folder per backup)")
    sp.add_argument("--kind", default="full", choices=["full", "incremental", "differential"],
                    help="incremental: the changes since the newest backup; differential: since the newest full")
    sp.add_argument("--every", metavar="INTERVAL", help="keep running: a backup now and every INTERVAL (30m, 1h, 1d),"
                    " until SIGTERM or SIGINT (which abandon the backup in progress)")
    sp.add_argument("--full-every", metavar="INTERVAL",
                    help="with --every and --kind incremental/differential: a full backup when the newest is this old")
    backup_key(sp, "encrypt")
    sp.add_argument("--allow-damaged", action="store_true", help="back up a damaged store anyway, marked damaged")
    for rule in ("last", "daily", "weekly"):
        sp.add_argument(f"--keep-{rule}", type=int, metavar="N", help=f"prune after each backup: keep {rule} N")
    group = sub.add_parser("backups", help="list, verify or prune the backups in a directory",
                           description="list, verify or prune the backups in a directory")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help in (("list", "the complete backups, oldest first"),
                         ("verify", "check every file and restore each backup into a temporary store"),
                         ("prune", "delete the backups no --keep rule keeps")):
        sp = add(actions, action, help, c.cmd_backups, store=False, parents=(key,) if action == "verify" else ())
        sp.add_argument("dest", metavar="DEST")
        if action == "verify":
            sp.add_argument("--id", help="only this backup")
            backup_key(sp, "open")
        if action == "prune":
            for rule in ("last", "daily", "weekly"):
                sp.add_argument(f"--keep-{rule}", type=int, metavar="N")
    sp = add(sub, "rekey", "encrypt a store, or change its key (--key-file: the current one); offline", c.cmd_rekey,
             store=False, parents=(key,))
    sp.add_argument("directory", metavar="DIR", help="the store: its directory, or a postgresql:// URL")
    sp.add_argument("--new-key-file", required=True, metavar="F", help="the new key: 32 raw bytes or a passphrase")
    sp = add(sub, "migrate", "rewrite a store made by an older kuradb in this kuradb's layout (one transaction;"
             " close other processes first)", c.cmd_migrate, store=False, parents=(key,))
    sp.add_argument("directory", metavar="DIR", help="the store: its directory, or a postgresql:// URL")
    sp.add_argument("--vacuum", action="store_true",
                    help="then rewrite the file compactly (frees the space of the old layout)")
    sp = add(sub, "restore", "restore a backup as a new store (verified before it appears)", c.cmd_restore,
             store=False, parents=(key,))
    sp.add_argument("dest", metavar="DEST", help="the backup directory")
    sp.add_argument("target", metavar="TARGET", help="a new (or empty) directory for the store, or a"
                    " postgresql://…?schema= URL of a new (or empty) schema")
    sp.add_argument("--id", help="the backup to restore (default: the newest)")
    sp.add_argument("--until", metavar="POSITION|TIME",
                    help="the state at a change-log position or an ISO 8601 time (point-in-time restore)")
    backup_key(sp, "open")
    sp = add(sub, "copy", "copy a store with its whole history into a new store, of either backend (SQLite"
             " directory or postgresql:// URL), verified before it is kept", c.cmd_copy, store=False,
             parents=(key,))
    sp.add_argument("source", metavar="SRC", help="the store: its directory, or a postgresql:// URL")
    sp.add_argument("dest", metavar="DEST", help="a new (or empty) directory, or a postgresql://…?schema= URL of a"
                    " new (or empty) schema")
    sp.add_argument("--dest-key-file", metavar="F", help="encrypt a directory DEST with this key (default: the"
                    " source's --key-file)")
    group = sub.add_parser("cache", help="statistics of a cache directory, or clear it",
                           description="statistics of a kuradb.Cache directory (L3/L4 on disk), or clear it")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help in (("stats", "items and bytes on disk; counters saved by every process at close"),
                         ("clear", "remove every entry, or those matching --pattern or carrying --tag")):
        sp = add(actions, action, help, c.cmd_cache, store=False)
        sp.add_argument("directory", metavar="DIR")
        if action == "clear":
            sp.add_argument("--pattern", help="a glob over keys: *, ?, [abc]")
            sp.add_argument("--tag", help="only entries carrying this tag")
    sp = add(sub, "demo", "a guided tour on a throwaway (or given) store", c.cmd_demo, parents=(opening,))
    sp.add_argument("directory", metavar="DIR", nargs="?", default=":memory:")
    return p


_READ_ONLY = ("get", "history", "stats", "changes", "export", "find", "count", "explain", "aggregate", "search",
              "audit")
_CREATES = ("init", "put", "import", "demo")  # the commands that make a store where there is none


def _attach_dash_values(argv: list[str]) -> list[str]:
    """``--sort -score`` -> ``--sort=-score``, for the options whose values may start with '-'."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--":
            return out + argv[i:]
        if argv[i] in _DASH_VALUES and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and not argv[i + 1].startswith("--") and argv[i + 1] != "-":
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` in the main thread, so the work in progress undoes itself (a backup
    removes its partial folder, an import rolls back) as it does for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)   # a second SIGTERM ends the process at once
        raise c.Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(_attach_dash_values(list(sys.argv[1:] if argv is None else argv)))
    if getattr(args, "extra", None):
        p.error(f"put takes one CONTENT argument and the id as an option: kuradb put DIR {args.collection} CONTENT"
                " --id ID")
    args.key_source = c.STORE_KEY
    if args.key_file is None and os.environ.get("KURADB_KEY_FILE"):
        args.key_file, args.key_source = os.environ["KURADB_KEY_FILE"], "$KURADB_KEY_FILE"
    out = Output(sys.stdout, args.json)
    with _sigterm_raises():
        try:
            return _run(args, out)
        except errors.KuraError as e:
            return _fail(e)
        except BrokenPipeError:
            sys.stderr.close()  # a closed pipe (e.g. `| head`) is not an error
        except OSError as e:   # a path the library did not name in a typed error
            return _fail(os_error(e, repr(e.filename) if e.filename else "input/output"))
        except KeyboardInterrupt:
            return 130
        except c.Terminated:
            return 143
    return 0


def _run(args: argparse.Namespace, out: Output) -> int:
    prepare = getattr(args, "prepare", None)
    if prepare is not None:
        prepare(args)
    if not args.store:
        return int(args.fn(None, args, out) or 0)
    read_only = args.command in _READ_ONLY or getattr(args, "action", None) == "list"
    create = True if args.command == "init" else None if args.command in _CREATES else False
    with open_store(args.directory, durability=args.durability, timeout=args.timeout, read_only=read_only,
                    encryption_key=c.store_key(args), create=create) as store:
        return int(args.fn(store, args, out) or 0)


def _fail(e: errors.KuraError) -> int:
    hint = f"\n  hint: {e.hint}" if e.hint else ""
    sys.stderr.write(f"kuradb: {e.code}: {e.message}{hint}\n")
    return errors.EXIT_CODES.get(e.code, 1)
