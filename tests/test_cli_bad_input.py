"""Every subcommand given bad input (paths that are not there or not writable, files where directories go,
bad JSON, bad options) prints ``kuradb: CODE: message`` and exits with a documented non-zero code: never a
traceback."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

import kuradb
from kuradb import errors
from kuradb.cli import main, parser

DOCUMENTED = set(errors.EXIT_CODES.values()) | {2}   # 2: usage errors (argparse)


def _unwritable(tmp: str) -> str | None:
    """A directory in which creating anything raises PermissionError (root ignores file modes: /sys)."""
    candidates = ["/sys"] if os.geteuid() == 0 else []
    if os.geteuid() != 0:
        locked = os.path.join(tmp, "locked")
        os.mkdir(locked, 0o500)
        candidates.append(locked)
    for path in candidates:
        try:
            fd, name = tempfile.mkstemp(dir=path)
        except PermissionError:
            return path
        except OSError:
            continue
        os.close(fd)
        os.unlink(name)
    return None


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    with kuradb.open(root / "st") as s:
        s["notes"].put({"v": 1}, id="a")
        s.backup(root / "bk")
    (root / "afile").write_text("just a file\n")
    (root / "notastore").mkdir()
    (root / "notastore" / "file.txt").write_text("x")
    (root / "garbage").mkdir()
    (root / "garbage" / "kura.db").write_bytes(b"garbage, not a database" * 100)
    (root / "binary.jsonl").write_bytes(b'{"_id": "a"}\n\xff\xfe\x00\x01\n')
    (root / "bad.jsonl").write_text('{"_id": "a"}\n{"_id": \n')
    (root / "emptybk").mkdir()
    (root / "full").mkdir()
    (root / "full" / "x").write_text("x")
    with kuradb.Cache(root / "cache") as c:
        c.set("k", 1)
    return {"root": str(root), "UW": _unwritable(str(root))}


# Placeholders: ST a store, BK its backups, NS a path that is not there, FILE a regular file, NOSTORE a
# directory with a file but no store, GARBAGE a directory whose kura.db is not a database, UW a directory
# nothing can be created in.
CASES = [
    ["init", "FILE/sub"], ["init", "UW/new"],
    ["put", "ST", "notes", "{bad"], ["put", "ST", "notes", "not json"], ["put", "ST", "notes", "[1, 2]"],
    ["put", "ST", "notes", "{}", "--id", ""], ["put", "ST", "bad name!", "{}"], ["put", "FILE/sub", "notes", "{}"],
    ["put", "ST", "notes", "{}", "--if-version", "x"], ["put", "ST", "notes", "a", "{}"], ["put", "UW/s", "n", "{}"],
    ["put", "GARBAGE", "notes", "{}"],
    ["get", "NS", "notes", "a"], ["get", "FILE", "notes", "a"], ["get", "NOSTORE", "notes", "a"],
    ["get", "GARBAGE", "notes", "a"], ["get", "ST", "notes", "missing"], ["get", "ST", "notes", "a", "--version", "x"],
    ["get", "ST", "notes", "a", "--version", "99"],
    ["delete", "ST", "notes", "missing"], ["delete", "NS", "notes", "a"],
    ["history", "ST", "notes", "missing"], ["history", "FILE", "notes", "a"],
    ["stats", "NS"], ["stats", "FILE"], ["stats", "NOSTORE"], ["stats", "GARBAGE"],
    ["changes", "NS"], ["changes", "ST", "--since", "x"],
    ["import", "ST", "notes", "NS.jsonl"], ["import", "ST", "notes", "NOSTORE"], ["import", "ST", "notes", "BINARY"],
    ["import", "ST", "notes", "BADJSON"], ["import", "FILE/sub", "notes", "BADJSON"], ["import", "ST", "notes", "FILE"],
    ["export", "ST", "notes", "-o", "NS/x.jsonl"], ["export", "ST", "notes", "-o", "NOSTORE"],
    ["export", "ST", "notes", "-o", "FILE/x"], ["export", "ST", "notes", "-o", "UW/x.jsonl"],
    ["export", "ST", "nocoll"], ["export", "NS", "notes"],
    ["find", "ST", "notes", "{bad"], ["find", "ST", "notes", '{"a": {"$nope": 1}}'],
    ["find", "ST", "notes", "--sort", ""],
    ["find", "ST", "notes", "--limit", "x"], ["find", "NS", "notes"],
    ["count", "ST", "notes", "{bad"], ["count", "ST", "notes", "[1]"],
    ["explain", "ST", "notes", "{bad"], ["explain", "ST", "notes", '{"$or": 5}'],
    ["aggregate", "ST", "notes", "{bad"], ["aggregate", "ST", "notes", "{}"],
    ["aggregate", "ST", "notes", '[{"$x": 1}]'],
    ["search", "ST", "notes", "hello"], ["search", "ST", "notes", "x", "--filter", "{bad"],
    ["index", "create", "ST", "notes", "a..b"], ["index", "create", "NS", "notes", "a"],
    ["index", "list", "NS", "notes"], ["index", "drop", "ST", "notes", "nope"],
    ["verify", "NS"], ["verify", "FILE"], ["verify", "GARBAGE"],
    ["repair", "NS"], ["repair", "GARBAGE"],
    ["health", "NS"], ["health", "GARBAGE"],
    ["audit", "NS"], ["audit", "ST", "--since", "x"],
    ["backup", "ST", "FILE"], ["backup", "ST", "FILE/bk"], ["backup", "ST", "UW/bk"], ["backup", "NS", "BK"],
    ["backup", "ST", "BK", "--every", "x"], ["backup", "ST", "BK", "--every", "0"],
    ["backup", "ST", "BK", "--kind", "x"],
    ["backup", "ST", "BK", "--full-every", "1d"], ["backup", "ST", "BK", "--encryption-key-file", "NS.key"],
    ["backups", "list", "NS"], ["backups", "list", "FILE"], ["backups", "verify", "NS"],
    ["backups", "verify", "BK", "--id", "nope"], ["backups", "prune", "NS", "--keep-last", "1"],
    ["backups", "prune", "BK"], ["backups", "prune", "BK", "--keep-last", "-1"],
    ["restore", "NS", "NS2"], ["restore", "EMPTYBK", "NS2"], ["restore", "BK", "FULL"], ["restore", "BK", "FILE/sub"],
    ["restore", "BK", "UW/r"], ["restore", "BK", "NS2", "--until", "last tuesday"],
    ["restore", "BK", "NS2", "--id", "x"],
    ["restore", "BK", "NS2", "--encryption-key-file", "NOSTORE"],
    ["copy", "NS", "NS2"], ["copy", "GARBAGE", "NS2"], ["copy", "ST", "FULL"], ["copy", "ST", "FILE"],
    ["copy", "ST", "FILE/sub"], ["copy", "ST", "UW/c"], ["copy", "ST", "ST"], ["copy", "ST", "GARBAGE"],
    ["copy", "ST", "NS2", "--dest-key-file", "NS.key"], ["copy", "ST", "postgresql://nohost.invalid:1/x"],
    ["rekey", "NS", "--new-key-file", "FILE"], ["rekey", "FILE", "--new-key-file", "FILE"],
    ["rekey", "ST", "--new-key-file", "NS.key"], ["rekey", "NOSTORE", "--new-key-file", "FILE"],
    ["migrate", "NS"], ["migrate", "FILE"], ["migrate", "NOSTORE"],
    ["cache", "stats", "NS"], ["cache", "stats", "FILE"], ["cache", "clear", "NS"], ["cache", "clear", "FILE"],
    ["demo", "FILE"], ["demo", "FILE/sub"], ["demo", "UW/demo"],
    ["--key-file", "NS.key", "get", "ST", "notes", "a"], ["--key-file", "NOSTORE", "stats", "ST"],
    ["--timeout", "x", "stats", "ST"], ["nosuchcommand"],
]


def resolve(places, argv):
    root = places["root"]
    names = {"ST": "st", "BK": "bk", "NS": "none", "NS2": "none2", "NS.jsonl": "none.jsonl", "NS.key": "none.key",
             "FILE": "afile", "NOSTORE": "notastore", "GARBAGE": "garbage", "BINARY": "binary.jsonl",
             "BADJSON": "bad.jsonl", "EMPTYBK": "emptybk", "FULL": "full"}
    out = []
    for a in argv:
        head, _, tail = a.partition("/")
        if head == "UW":
            if places["UW"] is None:
                pytest.skip("no directory here refuses writes (root without /sys)")
            out.append(os.path.join(places["UW"], "kuradb-" + tail))
        elif head in names:
            out.append(os.path.join(root, names[head], tail) if tail else os.path.join(root, names[head]))
        else:
            out.append(a)
    return out


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(a) for a in CASES])
def test_bad_input_is_a_typed_error(places, argv, capsys):
    try:
        code = main(resolve(places, argv))
    except SystemExit as e:   # argparse: a usage error
        code = e.code
    err = capsys.readouterr().err
    assert code != 0 and code in DOCUMENTED, err
    if code != 2:
        assert err.startswith("kuradb: ") and err.split(":")[1].strip() in errors.EXIT_CODES, err
    assert "Traceback" not in err


def test_every_subcommand_has_bad_input_cases():
    sub = next(a for a in parser()._actions if a.dest == "command")
    covered = {tuple(a[:2]) if a[0] in ("index", "backups", "cache") else (a[0],) for a in CASES}
    for name, sp in sub.choices.items():
        actions = next((a for a in sp._actions if a.dest == "action"), None)
        for key in ([(name, action) for action in actions.choices] if actions else [(name,)]):
            assert key in covered, f"no bad-input case for kuradb {' '.join(key)}"


@pytest.mark.parametrize("argv", [
    ["import", "ST", "notes", "NS.jsonl"], ["export", "ST", "notes", "-o", "NS/x.jsonl"],
    ["rekey", "FILE", "--new-key-file", "FILE"], ["restore", "BK", "FILE/sub"], ["put", "ST", "notes", "{bad"],
    ["import", "ST", "notes", "BINARY"],
], ids=lambda a: " ".join(a))
def test_no_traceback_from_the_process(places, argv):
    done = subprocess.run([sys.executable, "-m", "kuradb", *resolve(places, argv)], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode in DOCUMENTED and done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("kuradb: "), done.stderr
