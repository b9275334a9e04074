"""Keys of an encrypted SQLite store on the command line, one way each: the store's key is --key-file (before or
after the command) or $KURADB_KEY_FILE, for every command that opens the store and for reading its backups.
Every hint names the option to use. (A plain store's encrypted backups: tests/test_cli.py.)"""
from __future__ import annotations

import json

import pytest

import kuradb
from kuradb import backups, errors
from kuradb.cli import main

KEY = "the store's passphrase"
BACKUP_KEY = "the backups' own passphrase"


@pytest.fixture
def vault(tmp_path):
    """An encrypted store with a text index and one backup, and the key files."""
    (tmp_path / "store.key").write_text(KEY + "\n")
    (tmp_path / "backup.key").write_text(BACKUP_KEY + "\n")
    with kuradb.open(tmp_path / "vault", encryption_key=KEY) as s:
        s["notes"].put({"title": "hello world", "n": 1}, id="a")
        s["notes"].create_text_index(["title"])
        s.backup(tmp_path / "bk")
    (tmp_path / "in.jsonl").write_text('{"_id": "b", "n": 2}\n')
    return tmp_path


# Every command that opens a store: its arguments after DIR, and its exit code when all is well.
OPENING = [
    ("init", [], 0), ("put", ["notes", "{}", "--id", "c"], 0), ("get", ["notes", "a"], 0),
    ("delete", ["notes", "a"], 0), ("history", ["notes", "a"], 0), ("stats", [], 0), ("changes", [], 0),
    ("import", ["notes", "IN"], 0), ("export", ["notes"], 0), ("find", ["notes"], 0), ("count", ["notes"], 0),
    ("explain", ["notes", '{"n": 1}'], 0), ("aggregate", ["notes", "[]"], 0), ("search", ["notes", "hello"], 0),
    ("index create", ["notes", "n"], 0), ("index list", ["notes"], 0), ("index drop", ["notes", "text"], 0),
    ("verify", [], 0), ("repair", [], 0), ("health", [], 0), ("audit", [], 0), ("backup", ["BK2"], 0),
    ("demo", [], 0),
]


def argv(vault, command, rest):
    subs = {"IN": str(vault / "in.jsonl"), "BK2": str(vault / "bk2")}
    return [*command.split(), str(vault / "vault"), *[subs.get(a, a) for a in rest]]


@pytest.mark.parametrize("command,rest,ok", OPENING, ids=[c for c, _, _ in OPENING])
def test_every_command_that_opens_the_store_takes_its_key_one_way(vault, capsys, monkeypatch, command, rest, ok):
    key = str(vault / "store.key")
    monkeypatch.delenv("KURADB_KEY_FILE", raising=False)
    assert main(argv(vault, command, rest)) == errors.EXIT_CODES["permission_denied"]
    assert "--key-file F" in capsys.readouterr().err
    assert main(["--key-file", key, *argv(vault, command, rest)]) == ok
    capsys.readouterr()
    if command in ("delete", "index drop"):   # once is enough: it is gone now
        return
    assert main([*argv(vault, command, rest), "--key-file", key]) == ok     # after the command, too
    capsys.readouterr()
    monkeypatch.setenv("KURADB_KEY_FILE", key)
    assert main(argv(vault, command, rest)) == ok
    capsys.readouterr()


def test_restore_of_an_encrypted_stores_backup_takes_the_stores_key(vault, capsys, monkeypatch):
    monkeypatch.delenv("KURADB_KEY_FILE", raising=False)
    key = str(vault / "store.key")
    code = main(["restore", str(vault / "bk"), str(vault / "r0")])
    err = capsys.readouterr().err
    assert code == errors.EXIT_CODES["permission_denied"] and "--key-file F" in err and "KURADB_KEY_FILE" in err
    assert main(["--key-file", key, "restore", str(vault / "bk"), str(vault / "r1")]) == 0
    assert main(["restore", str(vault / "bk"), str(vault / "r2"), "--key-file", key]) == 0
    monkeypatch.setenv("KURADB_KEY_FILE", key)
    assert main(["restore", str(vault / "bk"), str(vault / "r3")]) == 0
    for r in ("r1", "r2", "r3"):
        with kuradb.open(vault / r, encryption_key=KEY) as s:
            assert s["notes"].get("a").content == {"title": "hello world", "n": 1}


def test_backups_verify_of_an_encrypted_stores_backup_takes_the_stores_key(vault, capsys, monkeypatch):
    monkeypatch.delenv("KURADB_KEY_FILE", raising=False)
    code = main(["backups", "verify", str(vault / "bk")])
    assert code == errors.EXIT_CODES["corrupted_data"] and "--key-file F" in capsys.readouterr().err
    assert main(["--key-file", str(vault / "store.key"), "backups", "verify", str(vault / "bk")]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_an_encrypted_stores_backup_refuses_a_second_key_in_cli_words(vault, capsys):
    code = main(["--key-file", str(vault / "store.key"), "backup", str(vault / "vault"), str(vault / "bk"),
                 "--encryption-key-file", str(vault / "backup.key")])
    err = capsys.readouterr().err
    assert code == errors.EXIT_CODES["invalid_data"] and "leave --encryption-key-file out" in err
    assert "encryption_key" not in err.split("hint:")[1].replace("--encryption-key-file", "")


def test_backup_every_uses_the_stores_key(vault, capsys):
    # the schedule itself is exercised with signals in test_cli_signals; here: it opens an encrypted store
    assert main(["--key-file", str(vault / "store.key"), "backup", str(vault / "vault"), str(vault / "bk"),
                 "--every", "1h", "--keep-last", "0"]) == errors.EXIT_CODES["invalid_data"]
    assert "keep_last must be a positive integer" in capsys.readouterr().err


def test_rekey_takes_the_current_key_one_way(vault, capsys, monkeypatch):
    new = vault / "new.key"
    new.write_text("a new passphrase")
    store = str(vault / "vault")
    monkeypatch.setenv("KURADB_KEY_FILE", str(vault / "store.key"))
    assert main(["rekey", store, "--new-key-file", str(new)]) == 0
    monkeypatch.delenv("KURADB_KEY_FILE")
    assert main(["rekey", store, "--new-key-file", str(vault / "store.key"), "--key-file", str(new)]) == 0
    capsys.readouterr()
    assert main(["--key-file", str(vault / "store.key"), "get", store, "notes", "a"]) == 0


def test_a_key_file_that_cannot_be_read_is_named_by_where_it_came_from(vault, capsys, monkeypatch):
    store = str(vault / "vault")
    monkeypatch.delenv("KURADB_KEY_FILE", raising=False)
    assert main(["--key-file", str(vault / "none.key"), "get", store, "notes", "a"]) == errors.EXIT_CODES["not_found"]
    assert "(--key-file): No such file" in capsys.readouterr().err
    monkeypatch.setenv("KURADB_KEY_FILE", str(vault / "none.key"))
    assert main(["get", store, "notes", "a"]) == errors.EXIT_CODES["not_found"]
    assert "($KURADB_KEY_FILE)" in capsys.readouterr().err
    monkeypatch.delenv("KURADB_KEY_FILE")
    (vault / "empty.key").write_text("")
    assert main(["restore", str(vault / "bk"), str(vault / "r"), "--encryption-key-file",
                 str(vault / "empty.key")]) == errors.EXIT_CODES["invalid_data"]
    assert "(--encryption-key-file) is empty" in capsys.readouterr().err
    assert not (vault / "r").exists() and backups.list(vault / "bk")
