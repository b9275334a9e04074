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
from kuradb.cli import main, parser


def run(capsys, monkeypatch, *argv, stdin=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_put_get_delete_history_round_trip(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    assert run(capsys, monkeypatch, "init", d)[0] == 0
    code, out, _ = run(capsys, monkeypatch, "put", d, "notes", '{"title": "hi"}', "--id", "n1", "--type", "note")
    assert code == 0 and json.loads(out)["version"] == 1
    code, out, _ = run(capsys, monkeypatch, "put", d, "notes", "-", "--id", "n1", stdin='{"title": "ho"}')
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
    code, _, err = run(capsys, monkeypatch, "put", d, "notes", "{bad json", "--id", "x")
    assert code == errors.EXIT_CODES["invalid_data"] and "not valid JSON" in err
    code, _, err = run(capsys, monkeypatch, "put", d, "notes", '{"_id": 1}', "--id", "x")
    assert code == errors.EXIT_CODES["invalid_data"] and "reserved" in err
    run(capsys, monkeypatch, "put", d, "notes", "{}", "--id", "x")
    code, _, err = run(capsys, monkeypatch, "put", d, "notes", "{}", "--id", "x", "--if-version", "5")
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
    run(capsys, monkeypatch, "put", d, "notes", "{}", "--id", "a")
    code, out, _ = run(capsys, monkeypatch, "stats", d)
    stats = json.loads(out)
    assert code == 0 and stats["records"] == 1 and stats["position"] == 1


def test_demo_runs(capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "demo")
    assert code == 0
    assert "revert" in out and "change log" in out and "stats: position=7" in out
    assert "['sketch-b', 'sketch-a']" in out and "sea layer (aggregate, in SQL): 1" in out


def test_console_script_runs_as_a_module(tmp_path):
    out = subprocess.run([sys.executable, "-m", "kuradb", "put", str(tmp_path), "c", '{"a": 1}', "--id", "x"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["id"] == "x"


def test_every_command_is_documented_in_the_readme():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    sub = next(a for a in parser()._actions if a.dest == "command")
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
    run(capsys, monkeypatch, "put", d, "notes", "{}", "--id", "x")
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


def seed(d, collection="notes", **records):
    """Records written through the library: the tests below are about other commands."""
    with kuradb.open(d) as s:
        for id, content in records.items():
            s[collection].put(content, id=id)


# -- put: CONTENT is the argument, the id an option ------------------------------------------------


def test_put_takes_the_content_as_its_argument_and_the_id_as_an_option(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    code, out, _ = run(capsys, monkeypatch, "put", d, "notes", '{"title": "x"}')
    rec = json.loads(out)
    assert code == 0 and rec["content"] == {"title": "x"} and rec["id"] != '{"title": "x"}'
    code, out, _ = run(capsys, monkeypatch, "put", d, "notes", "--id", "n1", '{"title": "y"}')
    assert code == 0 and (json.loads(out)["id"], json.loads(out)["content"]) == ("n1", {"title": "y"})
    code, out, _ = run(capsys, monkeypatch, "put", d, "notes", "{}", "--id=-dash")  # an id that starts with '-'
    assert code == 0 and json.loads(out)["id"] == "-dash"
    code, out, _ = run(capsys, monkeypatch, "get", d, "notes", "--", "-dash")
    assert code == 0 and json.loads(out)["id"] == "-dash"


def test_put_dash_reads_the_content_from_stdin(tmp_path):
    def put(*argv, stdin):
        return subprocess.run([sys.executable, "-m", "kuradb", "put", str(tmp_path), "notes", *argv], input=stdin,
                              capture_output=True, text=True, timeout=60)

    done = put("-", stdin='{"title": "from stdin"}')
    rec = json.loads(done.stdout)
    assert done.returncode == 0 and rec["content"] == {"title": "from stdin"} and rec["id"] != "-"
    done = put("-", "--id", "n1", stdin='{"v": 2}')
    assert done.returncode == 0 and (json.loads(done.stdout)["id"], json.loads(done.stdout)["content"]) == (
        "n1", {"v": 2})
    done = put("-", stdin="not json")
    assert done.returncode == errors.EXIT_CODES["invalid_data"] and "content on stdin is not valid JSON" in done.stderr
    with kuradb.open(tmp_path) as s:
        assert sorted(r.id for r in s["notes"].find()) == sorted(["n1", rec["id"]])


def test_put_refuses_the_old_id_then_json_form_and_says_how(tmp_path, capsys, monkeypatch):
    d = str(tmp_path / "s")
    with pytest.raises(SystemExit) as info:
        main(["put", d, "notes", "n1", '{"title": "x"}'])
    assert info.value.code == 2 and "--id ID" in capsys.readouterr().err
    code, _, err = run(capsys, monkeypatch, "put", d, "notes", "n1")  # an id where the content goes
    assert code == errors.EXIT_CODES["invalid_data"] and "CONTENT is not valid JSON" in err and "--id" in err
    assert not (tmp_path / "s").exists()   # nothing was created for a command that failed on its arguments


def test_put_is_documented_with_content_and_id():
    sub = next(a for a in parser()._actions if a.dest == "command")
    text = sub.choices["put"].format_help()
    assert "CONTENT" in text and "--id ID" in text and "stdin" in text
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "kuradb put data/ notes '{\"title\": \"hi\"}' --id n1" in readme
    assert re.search(r"kuradb put data/ notes - --id n1", readme)


def test_option_values_and_arguments_that_start_with_a_dash(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    run(capsys, monkeypatch, "import", d, "notes", stdin='{"_id": "a", "s": 1}\n{"_id": "b", "s": 2}\n')
    code, out, _ = run(capsys, monkeypatch, "find", d, "notes", "--sort", "-s", "--fields", "s")
    assert code == 0 and [r["id"] for r in _jsonl(out)] == ["b", "a"]
    code, out, _ = run(capsys, monkeypatch, "index", "create", d, "notes", "--", "-s")
    assert code == 0 and json.loads(out)["index"] == "s_desc"


def test_global_options_may_follow_the_command(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    seed(d, a={})
    code, out, _ = run(capsys, monkeypatch, "get", d, "notes", "a", "--json", "--timeout", "1", "--durability", "full")
    assert code == 0 and json.loads(out)["id"] == "a"


# -- import and export: paths, missing collections, line numbers -------------------------------------


def test_import_of_a_file_that_is_not_there_creates_nothing(tmp_path, capsys, monkeypatch):
    d = str(tmp_path / "s")
    code, out, err = run(capsys, monkeypatch, "import", d, "things", str(tmp_path / "missing.jsonl"))
    assert code == errors.EXIT_CODES["not_found"] and out == ""
    assert err.startswith(f"kuradb: not_found: cannot read '{tmp_path / 'missing.jsonl'}'")
    assert not (tmp_path / "s").exists()
    code, _, err = run(capsys, monkeypatch, "import", d, "things", str(tmp_path))   # a directory
    assert code == errors.EXIT_CODES["invalid_data"] and "Is a directory" in err


def test_import_of_bytes_that_are_not_utf8_names_the_line(tmp_path, capsys, monkeypatch):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"_id": "a"}\n{"_id": "b", "x": "\xff\xfe"}\n')
    code, _, err = run(capsys, monkeypatch, "import", str(tmp_path / "s"), "things", str(src))
    assert code == errors.EXIT_CODES["invalid_data"]
    assert err.startswith("kuradb: invalid_data: line 2 is not valid JSON")


def test_an_import_error_names_the_line_not_the_batch_item(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    lines = [json.dumps({"_id": f"k{i}"}) for i in range(1500)]
    lines[1200] = json.dumps({"_id": 5})     # line 1201: in the second batch, its item 200
    code, _, err = run(capsys, monkeypatch, "import", d, "things", stdin="\n".join(lines))
    assert code == errors.EXIT_CODES["invalid_data"]
    assert err.startswith("kuradb: invalid_data: line 1201: _id must be a string, not int"), err
    assert "items[" not in err
    code, _, err = run(capsys, monkeypatch, "import", d, "things", stdin='{"_id": "a"}\n\n{"_id": "", "_type": "t"}\n')
    assert code == errors.EXIT_CODES["invalid_data"] and err.startswith("kuradb: invalid_data: line 3: _id must be")
    with kuradb.open(d) as s:
        assert s.collections() == [] or len(s["things"]) == 0


def test_import_keeps_the_order_of_lines_for_one_id(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    code, _, _ = run(capsys, monkeypatch, "import", d, "things",
                     stdin='{"_id": "a", "v": 1}\n{"_id": "a", "_type": "t", "v": 2}\n{"_id": "b", "v": 1}\n')
    assert code == 0
    with kuradb.open(d) as s:
        rec = s["things"].get("a")
        assert (rec.content, rec.type, rec.version) == ({"v": 2}, "t", 2)


def test_export_of_a_collection_that_does_not_exist_is_not_found(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    seed(d, a={})
    code, out, err = run(capsys, monkeypatch, "export", d, "nocoll")
    assert code == errors.EXIT_CODES["not_found"] and out == ""
    assert "has no collection 'nocoll'" in err and "notes" in err   # the hint names the ones there are
    previous = tmp_path / "previous.jsonl"
    previous.write_text('{"_id": "kept"}\n')
    code, _, _ = run(capsys, monkeypatch, "export", d, "nocoll", "-o", str(previous))
    assert code == errors.EXIT_CODES["not_found"] and previous.read_text() == '{"_id": "kept"}\n'


def test_export_to_a_path_that_cannot_be_written(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    seed(d, a={})
    code, out, err = run(capsys, monkeypatch, "export", d, "notes", "-o", str(tmp_path / "none" / "x.jsonl"))
    assert code == errors.EXIT_CODES["not_found"] and out == "" and "cannot write" in err
    code, _, err = run(capsys, monkeypatch, "export", d, "notes", "-o", str(tmp_path))   # a directory
    assert code == errors.EXIT_CODES["invalid_data"] and "Is a directory" in err


def test_export_replaces_the_file_whole_and_keeps_its_mode(tmp_path, capsys, monkeypatch):
    import os

    d = str(tmp_path / "s")
    seed(d, a={"v": 1})
    target = tmp_path / "out.jsonl"
    target.write_text("old\n" * 1000)
    os.chmod(target, 0o640)
    code, out, _ = run(capsys, monkeypatch, "export", d, "notes", "-o", str(target))
    assert code == 0 and json.loads(out)["exported"] == 1
    assert target.read_text() == '{"_id":"a","_version":1,"v":1}\n' and (target.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "s"]   # no temporary file left


# -- what a terminal shows ---------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def on_terminal(monkeypatch, *argv):
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    code = main(list(argv))
    monkeypatch.undo()
    return code, screen.getvalue()


def test_verify_and_repair_print_text_on_a_terminal_and_json_when_piped(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    seed(d, a={"v": 1})
    code, text = on_terminal(monkeypatch, "verify", d)
    assert code == 0 and "{'" not in text and "{" not in text
    rows = dict(line.rsplit(None, 1) for line in text.splitlines()[1:-1])
    assert text.splitlines()[0].split() == ["CHECKED", "COUNT"] and rows["records"] == "1"
    assert text.splitlines()[-1] == f"verify {d}: ok"
    code, out, _ = run(capsys, monkeypatch, "verify", d)
    report = json.loads(out)
    assert code == 0 and report["ok"] is True and report["checked"]["records"] == 1
    code, text = on_terminal(monkeypatch, "repair", d)
    assert code == 0 and "{'" not in text and text.splitlines()[-1] == f"repair {d}: ok"


def test_verify_on_a_real_terminal(tmp_path):
    import os
    import pty

    d = str(tmp_path)
    with kuradb.open(d) as s:
        s["notes"].put({"v": 1}, id="a")
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "kuradb", "verify", d], stdout=secondary,
                              stderr=subprocess.PIPE, timeout=60)
        os.close(secondary)
        text = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:    # the terminal is closed once everything was read
                break
            if not chunk:
                break
            text += chunk
    finally:
        os.close(primary)
    lines = text.decode().replace("\r\n", "\n").splitlines()
    assert done.returncode == 0 and lines[0].split() == ["CHECKED", "COUNT"] and lines[-1] == f"verify {d}: ok"


def test_history_on_a_terminal_does_not_quote_times_or_print_null(tmp_path, capsys, monkeypatch):
    d = str(tmp_path)
    seed(d, a={"v": 1})
    with kuradb.open(d) as s:
        s["notes"].put({"v": 2}, id="a", author="ann")
    code, text = on_terminal(monkeypatch, "history", d, "notes", "a")
    header, first, second = text.splitlines()
    assert code == 0 and header.split() == ["VERSION", "MODIFIED", "AUTHOR", "DELETED", "CONTENT"]
    assert '"' not in first.split("{")[0] and "null" not in first
    modified = first.split()[1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", modified), modified
    assert second.split()[:4] == ["2", second.split()[1], "ann", "false"]


def test_import_progress_counts_every_line(tmp_path, capsys, monkeypatch):
    """Lines without an _id (or with a _type) are written one by one; they count like the rest."""
    from test_progress import screen

    lines = [{"_id": f"k{i}"} if i % 5 else {"v": i} for i in range(2500)]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(line) for line in lines))
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    code = main(["import", str(tmp_path / "s"), "things", str(src)])
    monkeypatch.undo()
    assert code == 0
    final = screen(err.getvalue())[0]
    assert final.startswith("importing into things 2,500 ") and final.rstrip().endswith("/s"), final


# -- a plain store's encrypted backups take --encryption-key-file (encrypted stores: tests/sqlite/test_cli_keys.py)

BACKUP_KEY = "the backups' own passphrase"


def test_a_plain_stores_encrypted_backups_take_their_own_key(tmp_path, capsys, monkeypatch):
    (tmp_path / "backup.key").write_text(BACKUP_KEY)
    (tmp_path / "other.key").write_text("some store's key")
    store, bk, key = str(tmp_path / "plain"), str(tmp_path / "bk"), str(tmp_path / "backup.key")
    with kuradb.open(store) as s:
        s["notes"].put({"v": 1}, id="a")
    assert main(["backup", store, bk, "--encryption-key-file", key]) == 0
    assert json.loads(capsys.readouterr().out)["encrypted"] is True
    assert main(["restore", bk, str(tmp_path / "r0")]) == errors.EXIT_CODES["permission_denied"]
    assert "--encryption-key-file F" in capsys.readouterr().err
    assert main(["backup", store, bk, "--kind", "incremental"]) == errors.EXIT_CODES["backup_failed"]
    assert "--encryption-key-file F" in capsys.readouterr().err
    assert main(["backups", "verify", bk]) == errors.EXIT_CODES["corrupted_data"]
    assert "--encryption-key-file F" in capsys.readouterr().err
    monkeypatch.setenv("KURADB_KEY_FILE", str(tmp_path / "other.key"))   # a store key in the environment
    assert main(["backups", "verify", bk, "--encryption-key-file", key]) == 0
    assert main(["restore", bk, str(tmp_path / "r1"), "--encryption-key-file", key]) == 0
    capsys.readouterr()
    with kuradb.open(tmp_path / "r1") as s:
        assert s["notes"].get("a").content == {"v": 1}
