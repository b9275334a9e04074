"""The suite's layout: outside tests/sqlite/, stores are opened only through the implementation fixtures.

So the next implementations (PostgreSQL, the remote client) run every contract test
by adding themselves to conftest.IMPLEMENTATIONS. A module outside tests/sqlite/ may
not open a store itself (``kuradb.open``, ``Store(...)``), reach into a SQLite store
(``apsw``, ``kuradb.backends``, ``.directory``, ``.backend``), except:

- a child process's entry point opening the location it was handed (a parameter of a
  helper function, or ``sys.argv`` in a script string): the test hands it
  ``impl.location(name)``;
- what ALLOWED names, each with its reason.
"""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
SQLITE_ONLY = TESTS / "sqlite"
POSTGRES_ONLY = TESTS / "postgres"   # what only the PostgreSQL backend does (its URL, its server, its locks)

# "module" or "module::function" -> why it may do what the rules forbid
ALLOWED = {
    "conftest.py": "defines the implementations: SqliteImplementation opens its stores with kuradb.open",
    "test_cli.py": "the command line takes store directories: its tests make and read stores at the paths they pass",
    "test_cli_bad_input.py": "the command line's bad inputs are paths (a file, a garbage kura.db, an unwritable dir)",
    "test_cli_signals.py": "the command line takes store directories (and a tmpfs too small for a backup)",
    "test_cache_disk_full.py": "kuradb.Cache's disk tier is a SQLite file whatever the store: ENOSPC comes from an "
                               "apsw VFS; no store is opened",
    "test_cache.py": "kuradb.Cache's disk tier is a SQLite file whatever the store: a test counts the archive's codecs "
                     "through a read-only connection of its own; no store is opened",
    "test_open.py::test_unavailable_backends_say_so": "kuradb.open's own refusal of a URL scheme not built yet; "
                                                      "no store is opened",
    "test_open.py::test_a_location_that_is_not_a_path_raises_validation_error": "kuradb.open's check of the "
                                                                                "location's type, before any store",
}

FORBIDDEN_IMPORTS = ("apsw", "kuradb.backends")
FORBIDDEN_ATTRIBUTES = ("directory", "backend")


def _modules() -> list[Path]:
    """Every module outside tests/sqlite/ and tests/postgres/ but this one (whose examples of what is
    forbidden are strings)."""
    return sorted(p for p in TESTS.rglob("*.py") if SQLITE_ONLY not in p.parents and POSTGRES_ONLY not in p.parents
                  and p != Path(__file__))


def _is_kuradb_open(call: ast.Call) -> bool:
    f = call.func
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "kuradb":
        return f.attr in ("open", "Store")
    return isinstance(f, ast.Name) and f.id == "Store"


def _handed_in(function: ast.FunctionDef | None, arg: ast.expr) -> bool:
    """Is ``arg`` a location the function was handed: a parameter, or a name unpacked from one?"""
    if function is None or function.name.startswith("test") or not isinstance(arg, ast.Name):
        return False
    if any(d for d in function.decorator_list if "fixture" in ast.unparse(d)):
        return False
    params = {a.arg for a in function.args.args}
    if arg.id in params:
        return True
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in params:
            for target in node.targets:
                if arg.id in {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}:
                    return True
    return False


def _from_argv(script: ast.Module, arg: ast.expr) -> bool:
    """In a child's script: is ``arg`` sys.argv[i], or a name assigned from sys.argv?"""
    if "sys.argv" in ast.unparse(arg):
        return True
    if not isinstance(arg, ast.Name):
        return False
    for node in ast.walk(script):
        if isinstance(node, ast.Assign) and "sys.argv" in ast.unparse(node.value):
            if arg.id in {n.id for n in ast.walk(node.targets[0]) if isinstance(n, ast.Name)}:
                return True
    return False


def _scripts(tree: ast.Module):
    """String constants that are Python opening a store: scripts run in child processes."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "kuradb.open(" in node.value:
            try:
                yield node.lineno, ast.parse(textwrap.dedent(node.value))
            except SyntaxError:
                continue    # prose mentioning kuradb.open, not a script


def _functions(tree: ast.Module):
    """(node, enclosing function or None) for every node."""
    def walk(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            yield child, inner
            yield from walk(child, inner)
    yield from walk(tree, None)


def violations(path: Path, root: Path = TESTS) -> list[str]:
    rel = path.relative_to(root).as_posix()
    if rel in ALLOWED:
        return []
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def where(node, function, what):
        if function is not None and f"{rel}::{function.name}" in ALLOWED:
            return
        found.append(f"{rel}:{node.lineno}{f' ({function.name})' if function else ''}: {what}")

    for node, function in _functions(tree):
        if isinstance(node, ast.Call) and _is_kuradb_open(node):
            if not (node.args and _handed_in(function, node.args[0])):
                where(node, function, f"opens a store itself: {ast.unparse(node)[:80]}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.startswith(FORBIDDEN_IMPORTS):
                    where(node, function, f"imports {name} (SQLite's: tests/sqlite/)")
            if isinstance(node, ast.ImportFrom) and node.module == "kuradb":
                if {"open", "Store"} & {a.name for a in node.names}:
                    where(node, function, "imports kuradb.open/Store by name")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            where(node, function, f".{node.attr} is the SQLite store's (tests/sqlite/)")
    for line, script in _scripts(tree):
        for node in ast.walk(script):
            if isinstance(node, ast.Call) and _is_kuradb_open(node):
                if not (node.args and _from_argv(script, node.args[0])):
                    found.append(f"{rel}:{line}: a child's script opens {ast.unparse(node)[:60]}, not the location "
                                 f"it is handed in sys.argv")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(TESTS).as_posix())
def test_stores_are_opened_only_through_the_implementation_fixtures(path):
    assert violations(path) == []


def test_the_allow_list_names_modules_and_functions_that_exist():
    assert len(ALLOWED) <= 8, "the allow-list stays short"
    for key, reason in ALLOWED.items():
        module, _, function = key.partition("::")
        path = TESTS / module
        assert path.exists() and SQLITE_ONLY not in path.parents and reason, key
        if function:
            names = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
            assert function in names, key


def test_the_checker_catches_what_it_is_for(tmp_path):
    """The rules above can fail: each forbidden form is found, each allowed form passes."""
    bad = tmp_path / "test_bad.py"
    bad.write_text(textwrap.dedent('''
        import apsw
        import kuradb
        from kuradb import open

        def test_direct(tmp_path):
            kuradb.open(tmp_path / "s")

        def test_internals(store):
            return store.directory, store.backend

        def _child(location):
            kuradb.open(location)           # handed in: allowed

        SCRIPT = """
        import sys, kuradb
        kuradb.open(sys.argv[1])
        kuradb.open("/tmp/elsewhere")
        """
    '''))
    found = violations(bad, root=tmp_path)
    assert [f.split(": ", 1)[1][:20] for f in found] == [
        "imports apsw (SQLite", "imports kuradb.open/", "opens a store itself", ".directory is the SQ",
        ".backend is the SQLi", "a child's script ope"], found


def test_sqlite_only_modules_import_their_helpers_by_name():
    """tests/sqlite/ runs with tests/ on sys.path (conftest.py), so the shared helpers are importable there too."""
    import populate
    import reference

    assert Path(populate.__file__).parent == TESTS and Path(reference.__file__).parent == TESTS
    # no __init__.py: pytest imports test modules by their file name, which must be unique across both folders
    names = [p.name for p in TESTS.rglob("test_*.py")]
    assert len(names) == len(set(names)), "test module names are unique across tests/ and tests/sqlite/"


def test_contract_tests_run_once_per_implementation_and_the_marker_narrows_them(pytester):
    """With a second implementation registered, an unmarked test runs on both, a marked one on those it names,
    --impl picks; tests under sqlite/ run on SQLite alone."""
    conftest = (TESTS / "conftest.py").read_text()
    pytester.makeconftest(conftest + '\n\nIMPLEMENTATIONS["other"] = _sqlite\n'
                                     'pytest_plugins = []\n')
    pytester.makepyfile(test_contract='''
        import pytest

        def test_everywhere(store):
            store["c"].put({}, id="x")

        @pytest.mark.implementations("sqlite", reason="an example")
        def test_sqlite_only(open_store):
            open_store("a").close()
    ''')
    pytester.mkdir("sqlite").joinpath("test_files.py").write_text("def test_files(impl):\n    pass\n")
    result = pytester.runpytest("-q", "--collect-only", "-p", "no:cacheprovider")
    listed = {line.strip() for line in result.outlines if "::" in line}
    assert listed == {"test_contract.py::test_everywhere[sqlite]", "test_contract.py::test_everywhere[postgres]",
                      "test_contract.py::test_everywhere[other]", "test_contract.py::test_sqlite_only[sqlite]",
                      "sqlite/test_files.py::test_files[sqlite]"}
    result = pytester.runpytest("-q", "--impl", "other", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2)     # the others have no implementation left: skipped, not hidden


def test_a_marker_without_a_reason_or_naming_no_implementation_is_refused(pytester):
    pytester.makeconftest((TESTS / "conftest.py").read_text() + "\npytest_plugins = []\n")
    pytester.makepyfile(test_marked='''
        import pytest

        @pytest.mark.implementations("postgres-someday", reason="not yet")
        def test_x(store):
            pass
    ''')
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    assert result.ret != 0 and "implementations() names known ones" in result.stdout.str() + result.stderr.str()
