"""The kuradb command line: JSON when piped, typed exit codes, JSONL import/export."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kuradb
from kuradb import errors
from kuradb.cli import _parser, main


def run(capsys, monkeypatch, *argv, stdin=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_put_get_delete_history_round_trip(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    assert run(capsys, monkeypatch, "init", d)[0] == 0
    code, out, _ = run(capsys, monkeypatch, "put", d, "notes", "n1", '{"title": "hi"}', "--type", "note")
    assert code == 0 and json.loads(out)["version"] == 1
    code, out, _ = run(capsys, monkeypatch, "put", d, "notes", "n1", stdin='{"title": "ho"}')
    assert code == 0 and json.loads(out)["content"] == {"title": "ho"}
    code, out, _ = run(capsys, monkeypatch, "get", d, "notes", "n1")
    rec = json.loads(out)
    assert rec["content"] == {"title": "ho"} and rec["version"] == 2
    code, out, _ = run(capsys, monkeypatch, "get", d, "notes", "n1", "--version", "1")
    assert json.loads(out)["content"] == {"title": "hi"}
    code, out, _ = run(capsys, monkeypatch, "history", d, "notes", "n1")
    assert [h["version"] for h in json.loads(out)] == [1, 2]
    code, out, _ = run(capsys, monkeypatch, "delete", d, "notes", "n1")
    assert code == 0 and json.loads(out)["deleted"] is True
    code, out, _ = run(capsys, monkeypatch, "changes", d, "--since", "1")
    assert [c["position"] for c in json.loads(out)] == [2, 3]


def test_errors_exit_with_their_code_and_message(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    run(capsys, monkeypatch, "init", d)
    code, out, err = run(capsys, monkeypatch, "get", d, "notes", "missing")
    assert code == errors.EXIT_CODES["not_found"] and out == ""
    assert err.startswith("kuradb: not_found: notes/missing does not exist")
    code, _, err = run(capsys, monkeypatch, "put", d, "notes", "x", "{bad json")
    assert code == errors.EXIT_CODES["invalid_data"] and "not valid JSON" in err
    code, _, err = run(capsys, monkeypatch, "put", d, "notes", "x", '{"_id": 1}')
    assert code == errors.EXIT_CODES["invalid_data"] and "reserved" in err
    run(capsys, monkeypatch, "put", d, "notes", "x", "{}")
    code, _, err = run(capsys, monkeypatch, "put", d, "notes", "x", "{}", "--if-version", "5")
    assert code == errors.EXIT_CODES["conflict_detected"] and "hint:" in err
    code, _, err = run(capsys, monkeypatch, "get", str(tmp_path / "none"), "notes", "x")
    assert code == errors.EXIT_CODES["not_found"] and "no kuradb store" in err


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["get"])
    assert info.value.code == 2


def test_import_export_round_trip(tmp_path, capsys, monkeypatch):
    d = str(tmp_path / "s")
    lines = [{"_id": f"k{i}", "i": i, "tags": ["a"]} for i in range(2500)]
    lines.append({"_id": "typed", "_type": "special", "x": 1})
    lines.append({"no_id": True})
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    code, out, _ = run(capsys, monkeypatch, "import", d, "things", str(src))
    assert code == 0 and json.loads(out)["imported"] == 2502
    dest = tmp_path / "out.jsonl"
    code, out, _ = run(capsys, monkeypatch, "export", d, "things", "-o", str(dest))
    assert code == 0 and json.loads(out)["exported"] == 2502
    exported = [json.loads(line) for line in dest.read_text().splitlines()]
    by_id = {e["_id"]: e for e in exported}
    assert by_id["k7"] == {"_id": "k7", "_version": 1, "i": 7, "tags": ["a"]}
    assert by_id["typed"]["_type"] == "special"
    # exported lines import again as they are
    code, out, _ = run(capsys, monkeypatch, "import", str(tmp_path / "copy"), "things", str(dest))
    assert code == 0
    with kuradb.open(tmp_path / "copy") as s:
        assert len(s["things"]) == 2502 and s["things"].get("typed").type == "special"


def test_import_is_all_or_nothing(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    code, _, err = run(capsys, monkeypatch, "import", d, "things",
                       stdin='{"_id": "a", "v": 1}\n{"_id": "b", "v": NaN}\n')
    assert code == errors.EXIT_CODES["invalid_data"] and "line 2" in err
    code, _, err = run(capsys, monkeypatch, "import", d, "things", stdin='{"_id": "a"}\n[1, 2]\n')
    assert code == errors.EXIT_CODES["invalid_data"] and "line 2: expected a JSON object" in err
    with kuradb.open(d) as s:
        assert "a" not in s["things"]


def test_stats_reports_counts(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    run(capsys, monkeypatch, "put", d, "notes", "a", "{}")
    code, out, _ = run(capsys, monkeypatch, "stats", d)
    stats = json.loads(out)
    assert code == 0 and stats["records"] == 1 and stats["position"] == 1


def test_demo_runs(capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "demo")
    assert code == 0
    assert "revert" in out and "change log" in out and "stats: position=7" in out
    assert "['sketch-b', 'sketch-a']" in out and "sea layer (aggregate, in SQL): 1" in out


def test_console_script_runs_as_a_module(tmp_path):
    out = subprocess.run([sys.executable, "-m", "kuradb", "put", str(tmp_path), "c", "x", '{"a": 1}'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["id"] == "x"


def test_every_command_is_documented_in_the_readme():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    sub = next(a for a in _parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert re.search(rf"kuradb {name}\b", readme), f"`kuradb {name}` is not in the README"


def _jsonl(out):
    return [json.loads(line) for line in out.splitlines()]


def test_query_commands(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    rows = [{"_id": "a", "owner": "ann", "score": 3, "title": "hello world"},
            {"_id": "b", "owner": "bob", "score": 5, "title": "goodbye world"},
            {"_id": "c", "owner": "ann", "score": 1, "title": "hello again"}]
    run(capsys, monkeypatch, "import", d, "notes", stdin="\n".join(json.dumps(r) for r in rows))
    code, out, _ = run(capsys, monkeypatch, "find", d, "notes", '{"owner": "ann"}', "--sort=-score", "--fields=title")
    assert code == 0 and [(r["id"], r["content"]) for r in _jsonl(out)] == [
        ("a", {"title": "hello world"}), ("c", {"title": "hello again"})]
    code, out, _ = run(capsys, monkeypatch, "find", d, "notes", "--sort", "owner,-score", "--limit", "2", "--skip", "1")
    assert [r["id"] for r in _jsonl(out)] == ["c", "b"]
    code, out, _ = run(capsys, monkeypatch, "find", d, "notes", "-", stdin='{"score": {"$gt": 4}}')
    assert [r["id"] for r in _jsonl(out)] == ["b"]
    assert run(capsys, monkeypatch, "count", d, "notes", '{"score": {"$gt": 2}}')[1] == "2\n"
    assert run(capsys, monkeypatch, "count", d, "notes")[1] == "3\n"

    code, out, _ = run(capsys, monkeypatch, "index", "create", d, "notes", "owner,-score")
    assert code == 0 and json.loads(out)["index"] == "owner_score_desc"
    code, out, _ = run(capsys, monkeypatch, "index", "create", d, "notes", "title", "--text")
    assert code == 0
    code, out, _ = run(capsys, monkeypatch, "index", "list", d, "notes")
    assert [(i["name"], i["kind"]) for i in json.loads(out)] == [
        ("_id", "btree"), ("owner_score_desc", "btree"), ("text", "text")]
    code, out, _ = run(capsys, monkeypatch, "explain", d, "notes", '{"owner": "ann"}', "--sort=-score")
    plan = json.loads(out)
    assert plan["index"] == "owner_score_desc" and plan["used_for"] == ["filter", "sort"]

    code, out, _ = run(capsys, monkeypatch, "aggregate", d, "notes",
                       '[{"$group": {"_id": "$owner", "total": {"$sum": "$score"}}}, {"$sort": "-total"}]')
    assert _jsonl(out) == [{"_id": "bob", "total": 5}, {"_id": "ann", "total": 4}]
    code, out, _ = run(capsys, monkeypatch, "search", d, "notes", "hello", "--filter", '{"score": {"$lt": 3}}')
    assert [h["id"] for h in _jsonl(out)] == ["c"] and _jsonl(out)[0]["score"] > 0

    code, out, _ = run(capsys, monkeypatch, "index", "drop", d, "notes", "owner_score_desc")
    assert code == 0
    code, _, err = run(capsys, monkeypatch, "index", "drop", d, "notes", "owner_score_desc")
    assert code == errors.EXIT_CODES["not_found"] and "no index 'owner_score_desc'" in err
    code, _, err = run(capsys, monkeypatch, "index", "create", d, "notes", "owner", "--unique")
    assert code == errors.EXIT_CODES["duplicate_key"] and "records a, c share a value" in err


@pytest.mark.parametrize("argv,code,message", [
    (["find", "D", "notes", '{"a": {"$in": 5}}'], "invalid_query", "a.$in needs a list"),
    (["find", "D", "notes", "{bad"], "invalid_data", "FILTER is not valid JSON"),
    (["find", "D", "notes", "--sort", "a..b"], "invalid_query", "sort[0]"),
    (["count", "D", "notes", '{"$bogus": 1}'], "invalid_query", "$bogus"),
    (["aggregate", "D", "notes", '[{"$nope": 1}]'], "invalid_query", "pipeline[0]: unknown stage"),
    (["search", "D", "notes", "x"], "not_found", "no text index"),
    (["index", "create", "D", "notes", "a..b"], "invalid_data", "empty part"),
])
def test_query_commands_report_bad_input(tmp_path, capsys, monkeypatch, argv, code, message):
    d = str(tmp_path)
    run(capsys, monkeypatch, "put", d, "notes", "x", "{}")
    got, out, err = run(capsys, monkeypatch, *[d if a == "D" else a for a in argv])
    assert got == errors.EXIT_CODES[code] and out == "" and message in err


def test_find_streams_into_a_closed_pipe(tmp_path):
    d = str(tmp_path)
    with kuradb.open(d) as s:
        s["c"].put_many([(f"k{i:05}", {"i": i}) for i in range(20000)])
    cmd = f"{sys.executable} -m kuradb find {d} c | head -1"
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout)["id"] == "k00000" and "Traceback" not in out.stderr


@pytest.mark.parametrize("argv", [["health"], ["verify"], ["repair"], ["audit"], ["stats"], ["find", "n"],
                                  ["count", "n"], ["index", "list", "n"], ["delete", "n", "x"]])
def test_commands_do_not_create_a_store_where_there_is_none(tmp_path, capsys, argv):
    where = str(tmp_path / "none")
    if argv[0] == "index":
        argv = ["index", argv[1], where, *argv[2:]]
    else:
        argv = [argv[0], where, *argv[1:]]
    assert main(argv) == errors.EXIT_CODES["not_found"]
    assert "no kuradb store at" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_cache_stats_and_clear(capsys, monkeypatch, tmp_path):
    with kuradb.Cache(tmp_path / "c") as c:
        for i in range(6):
            c.set(f"k{i}", i, tags=["even"] if i % 2 == 0 else [])
        c.get("k1")
        c.get("missing")
    code, out, _ = run(capsys, monkeypatch, "--json", "cache", "stats", str(tmp_path / "c"))
    stats = json.loads(out)
    assert code == 0 and stats["tiers"]["l3"]["items"] == 6 and stats["hits"] == 1 and stats["misses"] == 1
    code, out, _ = run(capsys, monkeypatch, "cache", "clear", str(tmp_path / "c"), "--tag", "even")
    assert code == 0 and json.loads(out) == {"removed": 3}
    code, out, _ = run(capsys, monkeypatch, "--json", "cache", "stats", str(tmp_path / "c"))
    assert json.loads(out)["tiers"]["l3"]["items"] == 3
    assert main(["cache", "stats", str(tmp_path / "none")]) == errors.EXIT_CODES["not_found"]
    assert not (tmp_path / "none").exists()
