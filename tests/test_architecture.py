"""The architecture's boundaries, checked on the source (ARCHITECTURE.md, issue #14).

Only ``kuradb/backends/sqlite/`` talks to SQLite: nothing else imports apsw, and
nothing outside a backend (``kuradb/backends/<engine>/``) runs statements or holds
SQL. Each backend has one statement that appends to the change log (``ChangeLog``
is its only caller). Each failure names the file and line.
"""
from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import kuradb

SRC = Path(kuradb.__file__).parent
BACKENDS = SRC / "backends"
SQLITE_BACKEND = BACKENDS / "sqlite"

# SQLite's own words: its JSON functions, pragmas, full-text module, catalog, and the statements a
# module would only hold to run them. Keywords are matched as SQL writes them (upper case), so that
# prose such as "select the rows" in an error message is not taken for SQL.
_SQL = re.compile(r"\b(json_extract|json_each|json_tree|json_type|json_set|json_insert|json_remove|jsonb)\s*\("
                  r"|\bjsonb_\w+\s*\(|\bfts5\b|\bsqlite_(schema|master|sequence)\b"
                  r"|\bPRAGMA\b|\bINDEXED BY\b|\bWITHOUT ROWID\b|\bBEGIN (IMMEDIATE|EXCLUSIVE|DEFERRED)\b"
                  r"|\bCREATE (TABLE|INDEX|UNIQUE INDEX|TRIGGER|VIRTUAL TABLE|VIEW)\b"
                  r"|\bINSERT (OR \w+ )?INTO\b|\bSELECT\s|\bDELETE FROM\b|\bUPDATE \w+ SET\b")
_LOG_INSERT = re.compile(r"\bINSERT\s+(OR\s+\w+\s+)?INTO\s+log\b", re.IGNORECASE)
# A migration that rebuilds the log copies the previous layout's rows into it (INSERT INTO log ...
# SELECT ... FROM log_v4): it moves what was appended before, it appends nothing.
_LAYOUT_COPY = re.compile(r"\bFROM\s+log_v\d+\b", re.IGNORECASE)


Found = list[tuple[int, str]]     # (line, what) in one module


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _outside_sqlite_backend() -> list[Path]:
    return [p for p in _modules() if SQLITE_BACKEND not in p.parents]


def _outside_backends() -> list[Path]:
    """Modules that are not an engine's backend (``kuradb/backends/__init__.py``, which picks one, is not)."""
    return [p for p in _modules() if not any(b.is_dir() and b in p.parents for b in BACKENDS.iterdir())]


def _engines() -> list[Path]:
    return sorted(b for b in BACKENDS.iterdir() if b.is_dir() and (b / "rows.py").exists())


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the module, class and function docstrings: they describe, they are never run."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def _strings(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every string constant of a module but its docstrings (the literal parts of f-strings included)."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def apsw_imports(tree: ast.Module) -> Found:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, f"imports {n}") for n in names if n == "apsw" or n.startswith("apsw.")]
    return found


def statements_executed(tree: ast.Module) -> Found:
    """Calls ``x.execute(...)``, ``x.executemany(...)``, ``x.executescript(...)`` given a statement.
    A call without arguments (redis-py's ``pipeline.execute()``) runs no SQL."""
    return [(node.lineno, f"calls .{node.func.attr}(...)") for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("execute", "executemany", "executescript") and (node.args or node.keywords)]


def sqlite_sql(tree: ast.Module) -> Found:
    found = []
    for line, text in _strings(tree):
        m = _SQL.search(text)
        if m:
            found.append((line, f"{m.group(0).strip()!r} in {text[:60]!r}"))
    return found


def log_inserts(tree: ast.Module) -> tuple[Found, Found]:
    """(statements that append to the log, statements that copy an older layout's log into it)."""
    appends, copies = [], []
    for line, text in _strings(tree):
        if _LOG_INSERT.search(text):
            (copies if _LAYOUT_COPY.search(text) else appends).append((line, text[:60]))
    return appends, copies


def _everywhere(check: Callable[[ast.Module], Found], paths: list[Path]) -> list[str]:
    """``path:line: what`` for each finding of ``check`` in ``paths``."""
    return [f"{p.relative_to(SRC.parent)}:{line}: {what}" for p in paths for line, what in sorted(check(_tree(p)))]


def _report(what: str, offenders: list[str]) -> str:
    return f"{what}:\n  " + "\n  ".join(offenders)


def test_the_modules_are_found():
    paths = {p.relative_to(SRC).as_posix() for p in _modules()}
    assert {"store.py", "changelog.py", "cache/disk.py", "backends/sqlite/rows.py"} <= paths


def test_only_the_sqlite_backend_imports_apsw():
    offenders = _everywhere(apsw_imports, _outside_sqlite_backend())
    assert not offenders, _report("apsw imported outside kuradb/backends/sqlite/", offenders)


def test_only_backends_execute_statements():
    offenders = _everywhere(statements_executed, _outside_backends())
    assert not offenders, _report("statements executed outside kuradb/backends/<engine>/", offenders)


def test_only_backends_hold_sql():
    offenders = _everywhere(sqlite_sql, _outside_backends())
    assert not offenders, _report("SQL outside kuradb/backends/<engine>/", offenders)


def test_one_statement_per_backend_appends_to_the_change_log():
    engines = _engines()
    assert {e.name for e in engines} >= {"sqlite", "postgres"}, engines
    appends = _everywhere(lambda t: log_inserts(t)[0], _modules())
    assert sorted(a.split(":")[0] for a in appends) == sorted(
        f"kuradb/backends/{e.name}/rows.py" for e in engines), _report("the statements that append to the log"
                                                                      " (one per backend, in its rows.py)", appends)
    # the other statement that inserts into the log: the migration to layout v2 rebuilding it
    copies = _everywhere(lambda t: log_inserts(t)[1], _modules())
    assert all(c.startswith("kuradb/backends/sqlite/schema.py:") for c in copies), \
        _report("the log's rows copied outside the migrations", copies)


_SAMPLE = '''"""PRAGMA and SELECT in a docstring describe."""
import apsw
import apsw.ext
from apsw import Connection
import apswlike

class C:
    """INSERT INTO log in a docstring describes."""

    def f(self, c, p, x):
        """CREATE TABLE here too."""
        c.execute("SELECT 1")
        c.executemany(sql, rows)
        p.execute()
        q = f"UPDATE t SET a = {x}"
        return ("json_extract(body, ?)", "select the rows", "INSERT INTO log VALUES(?)", "INSERT INTO logs",
                "INSERT INTO log(a) SELECT a FROM log_v4")
'''


def test_the_checks_see_what_they_look_for():
    """The checks above pass because nothing offends, not because they cannot see: run them on a sample."""
    tree = ast.parse(_SAMPLE)
    assert [line for line, _ in apsw_imports(tree)] == [2, 3, 4]
    assert [what for _, what in statements_executed(tree)] == ["calls .execute(...)", "calls .executemany(...)"]
    assert sorted(line for line, _ in sqlite_sql(tree)) == [12, 15, 16, 16, 16, 17]
    appends, copies = log_inserts(tree)
    assert [line for line, _ in appends] == [16] and [line for line, _ in copies] == [17]
