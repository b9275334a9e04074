"""Stores of the old layouts become layout v2 (schema 5) whole, or stay as they were: never half-migrated."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import apsw
import oldstores
import pytest

import kuradb
from kuradb import errors
from kuradb.backends.sqlite import backend as sqlite_backend
from kuradb.backends.sqlite.schema import LATEST

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _schema(path: Path) -> int:
    conn = apsw.Connection(str(path / "kura.db"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def v4(tmp_path):
    """The store made by the code of commit 03dae12 (tests/fixtures/make_v4_store.py)."""
    path = tmp_path / "v4"
    with zipfile.ZipFile(FIXTURES / "store-v4.zip") as z:
        z.extractall(path)
    return path


def test_a_store_made_by_the_old_code_round_trips_everything(v4):
    want = json.loads((FIXTURES / "store-v4.expected.json").read_text())
    assert _schema(v4) == 4
    with kuradb.open(v4) as s:
        assert _schema(v4) == LATEST
        assert s.position == want["position"] and s.collections() == want["collection_names"]
        for name, coll in want["collections"].items():
            c = s.collection(name)
            assert sorted(c) == sorted(coll["records"]), name
            for id, versions in coll["records"].items():
                assert [r.to_dict() for r in c.history(id)] == versions, f"{name}/{id}"
            assert [i.to_dict() for i in c.indexes()] == coll["indexes"]
            assert c.keep_history == coll["keep_history"]
            assert (c.schema if isinstance(c.schema, dict) else None) == coll["schema"]
        assert [r.to_dict() for r in s["notes"].history("n03")] == want["deleted"]["notes/n03"]
        for h, blob in want["blobs"].items():
            ref = s.blobs.stat(h)
            assert (ref.size, ref.content_type) == (blob["size"], blob["content_type"])
            s.blobs.get(h)   # file and inline blobs read back, verified against their hash
        assert [e.to_dict() for e in s.audit()] == want["audit"]     # the audit chain, hash for hash
        assert [c.to_dict() for c in s.changes()] == want["changes"]
        assert [h.record.id for h in s["notes"].search_text("fox", limit=20)] == want["text_search"]
        assert [r.id for r in s["notes"].find({"owner": "u1"}, sort="-score")] == want["find_owner_u1"]
        assert s["notes"].explain({"owner": "u1"}, sort="-score").index == "owner_score_desc"
        assert s.verify().ok
        # and it goes on working as a store of the new layout
        s["notes"].put({"title": "after the migration"}, id="new")
        assert s["users"].get("user3")["email"] == "u3@example.org"
        with pytest.raises(errors.DuplicateKey):
            s["users"].put({"email": "u1@example.org"}, id="other")
        assert s.verify().ok


def test_a_backup_taken_before_the_migration_still_restores(v4, tmp_path):
    """The backup format of the old layout: a full backup of a schema-4 store restores (and migrates)."""
    src = tmp_path / "migrated"
    shutil.copytree(v4, src)
    dest = tmp_path / "bk"
    want = json.loads((FIXTURES / "store-v4.expected.json").read_text())
    with kuradb.open(src) as s:
        s.backup(dest)          # of the migrated store
        s["notes"].put({"title": "later"}, id="later")
        s.backup(dest, kind="incremental")
    kuradb.backups.restore(dest, tmp_path / "restored", until=want["position"])
    with kuradb.open(tmp_path / "restored") as r:
        assert r.position == want["position"] and r.verify().ok
        assert "later" not in r["notes"]


def test_migrate_false_refuses_and_leaves_the_file_as_it_was(v4):
    before = (v4 / "kura.db").read_bytes()
    with pytest.raises(errors.MigrationRequired, match="schema version 4") as e:
        kuradb.open(v4, migrate=False)
    assert "kuradb migrate" in (e.value.hint or "") and e.value.code == "migration_required"
    assert isinstance(e.value, errors.UnsupportedVersion)
    assert (v4 / "kura.db").read_bytes() == before


def test_a_large_store_is_migrated_on_purpose_not_when_it_opens(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_backend, "AUTO_MIGRATE_MAX", 10)
    last = oldstores.make(tmp_path / "big", 4, {"c": {f"k{i}": [{"i": i}, {"i": -i}] for i in range(20)}})
    with pytest.raises(errors.MigrationRequired, match="40 change-log entries"):
        kuradb.open(tmp_path / "big")
    with pytest.raises(errors.ReadOnly, match="needs migrating"):
        kuradb.open(tmp_path / "big", read_only=True)
    seen: list[float] = []
    assert kuradb.migrate(tmp_path / "big", progress=seen.append) == LATEST
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    with kuradb.open(tmp_path / "big") as s:
        assert s.position == last and s["c"].get("k7")["i"] == -7 and s.verify().ok
    assert kuradb.migrate(tmp_path / "big") == LATEST     # already there: nothing to do


def test_kuradb_migrate_on_the_command_line(tmp_path, capsys):
    from kuradb.cli import main

    oldstores.make(tmp_path / "s", 4, {"c": {"a": [{"v": 1}]}})
    assert main(["migrate", str(tmp_path / "s"), "--vacuum"]) == 0
    assert json.loads(capsys.readouterr().out) == {"migrated": str(tmp_path / "s"), "schema_version": LATEST}
    assert _schema(tmp_path / "s") == LATEST
    assert main(["migrate", str(tmp_path / "missing")]) != 0
    assert "not_found" in capsys.readouterr().err


def test_a_schema_1_store_goes_through_every_migration(tmp_path):
    """From before the query engine: the array catalog and the audit chain are backfilled on the way."""
    oldstores.make(tmp_path / "v1", 1, {"c": {"a": [{"tags": ["x", "y"]}],
                                              "b": [{"tags": "x"}, {"tags": "x", "n": 1}]}})
    with kuradb.open(tmp_path / "v1") as s:
        c = s.collection("c")
        assert [r.id for r in c.find({"tags": "y"})] == ["a"]
        c.create_index("tags")
        assert [r.id for r in c.find({"tags": "x"})] == ["a", "b"]   # the index does not hide array members
        assert s.verify().ok


_MIGRATE = "import sys, kuradb; kuradb.migrate(sys.argv[1]); print('done', flush=True)"


def _expected(records: dict) -> dict:
    return {id: (len(v), v[-1]) for id, v in records["c"].items()}


def _content(path: Path) -> dict:
    with kuradb.open(path, migrate=True) as s:
        assert s.verify().ok
        c = s.collection("c")
        return {id: (c.get(id).version, c.get(id).content) for id in c}


def test_kill_9_during_the_migration_leaves_the_old_layout_or_the_new(tmp_path):
    """The migration is one transaction: killed at any moment, the store is at schema 4 (and opens,
    migrating then) or at schema 5, with every record and version either way."""
    _kill_during_migration(tmp_path, 6)


@pytest.mark.slow
def test_kill_9_during_the_migration_many_times(tmp_path):
    _kill_during_migration(tmp_path, 40)


def _kill_during_migration(tmp_path: Path, kills: int) -> None:
    rnd = random.Random(5)
    records = {"c": {f"k{i:05}": [{"i": i, "tags": ["a"], "pad": "x" * 50}, {"i": -i}] for i in range(15_000)}}
    pristine = tmp_path / "pristine"
    oldstores.make(pristine, 4, records)
    want = _expected(records)
    started = time.perf_counter()
    probe = tmp_path / "probe"
    shutil.copytree(pristine, probe)
    subprocess.run([sys.executable, "-c", _MIGRATE, str(probe)], check=True, env={**os.environ, "CI": ""})
    whole = time.perf_counter() - started
    outcomes = set()
    for n in range(kills):
        trial = tmp_path / f"trial{n}"
        shutil.copytree(pristine, trial)
        proc = subprocess.Popen([sys.executable, "-c", _MIGRATE, str(trial)], stdout=subprocess.PIPE)
        # spread over the whole run (start-up, the migration itself, after its commit), jittered
        time.sleep((0.1 + 1.2 * n / max(kills - 1, 1)) * whole * rnd.uniform(0.9, 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        version = _schema(trial)
        assert version in (4, LATEST)
        outcomes.add(version)
        assert _content(trial) == want
    assert _content(probe) == want
    # the kills fell both before the commit and after it (the timings spread over the whole migration)
    assert outcomes == {4, LATEST}, outcomes
