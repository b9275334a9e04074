"""Full backups: consistent under writes, verified, restored only when intact, pruned by rules.

A backup is a local directory whatever the store's implementation; a restore goes to
``impl.location(name)`` and the test opens the result as its store ``name``. The SQLite
file inside a backup and the blob files of a store: tests/sqlite/test_backup_files.py.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import populate
import pytest
from shared import only_backup, rewrite_manifest

from kuradb import backups, errors
from kuradb.backups import BackupInfo
from kuradb.cli import main


@pytest.fixture
def source(open_store):
    """The name of a closed store holding populate.backup_source()."""
    with open_store("store") as s:
        populate.backup_source(s)
    return "store"


@pytest.fixture
def state(open_store):
    """state(name): what a restore of the store ``name`` must bring back."""
    def of(name):
        with open_store(name) as s:
            return s.position, {c: [(r.id, r.version, r.rev, r.content) for r in s[c].find()]
                                for c in s.collections()}
    return of


def test_backup_restore_round_trip(source, impl, open_store, state, tmp_path):
    with open_store(source) as s:
        info = s.backup(tmp_path / "bk")
        assert info.kind == "full" and info.parent is None and info.position == s.position and info.size > 150_000
    assert backups.list(tmp_path / "bk") == [info]
    assert backups.verify(tmp_path / "bk").ok
    restored = backups.restore(tmp_path / "bk", impl.location("copy"))
    assert restored == info
    assert state("copy") == state(source)
    with open_store("copy") as s:
        assert s.verify().ok
        assert len(s.blobs.get(s["notes"].get("pic")["img"])) == 150_000
        assert s["notes"].search_text("b")
        with pytest.raises(errors.DuplicateKey):
            s["notes"].put({"i": 5}, id="dup")  # the unique index came back too


def test_backup_while_writing_is_consistent_at_its_position(impl, open_store, tmp_path):
    with open_store("store") as s:
        c = s.collection("c")
        stop = threading.Event()

        def write():
            i = 0
            while not stop.is_set() or i < 50:
                c.put({"i": i, "pad": "x" * 200}, id=f"w{i:06}")
                i += 1

        t = threading.Thread(target=write)
        t.start()
        try:
            infos = [s.backup(tmp_path / "bk") for _ in range(3)]
        finally:
            stop.set()
            t.join()
    for n, info in enumerate(infos):
        backups.restore(tmp_path / "bk", impl.location(f"copy{n}"), id=info.id)
        with open_store(f"copy{n}") as r:
            assert r.position == info.position
            ids = [x.id for x in r["c"].find()]
            assert ids == [f"w{i:06}" for i in range(len(ids))]  # a prefix of the writes, no hole
            assert r.verify().ok


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,named", [
    (lambda d: _flip(d / "kura.db.zst", 100), "kura.db.zst does not match its hash"),
    (lambda d: (d / "kura.db.zst").write_bytes((d / "kura.db.zst").read_bytes()[:-10]),
     "kura.db.zst does not match its hash"),
    (lambda d: _flip(d / "blobs" / next(p for p in os.listdir(d / "blobs")), 10), "does not match its hash"),
    (lambda d: (d / "blobs" / next(p for p in os.listdir(d / "blobs"))).unlink(), "is missing"),
    (lambda d: _flip(d / "manifest.json", 150), "manifest.json"),   # unreadable, or not its checksum
])
def test_damaged_backups_are_named_and_never_restored(source, open_store, tmp_path, damage, named):
    with open_store(source) as s:
        s.backup(tmp_path / "bk")
    damage(only_backup(tmp_path / "bk"))
    report = backups.verify(tmp_path / "bk")
    assert not report.ok and any(named in p for p in report.problems), report.problems
    with pytest.raises(errors.RestoreError, match="does not match|missing|cannot be read"):
        backups.restore(tmp_path / "bk", tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".kuradb-restore")] == []


def test_a_garbage_manifest_is_reported_and_not_listed(source, open_store, tmp_path):
    with open_store(source) as s:
        s.backup(tmp_path / "bk")
    d = only_backup(tmp_path / "bk")
    (d / "manifest.json").write_text("{not json")
    assert backups.list(tmp_path / "bk") == []
    report = backups.verify(tmp_path / "bk")
    assert any("manifest.json cannot be read" in p for p in report.problems)
    with pytest.raises(errors.RestoreError, match="cannot be read"):
        backups.restore(tmp_path / "bk", tmp_path / "copy")


def test_restore_refuses_to_overwrite_or_to_invent_a_future(source, impl, open_store, state, tmp_path):
    with open_store(source) as s:
        info = s.backup(tmp_path / "bk")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("mine")
    with pytest.raises(errors.RestoreError, match="not empty"):
        backups.restore(tmp_path / "bk", tmp_path / "busy")
    assert (tmp_path / "busy" / "file").read_text() == "mine"
    with pytest.raises(errors.RestoreError, match="after the newest backup"):
        backups.restore(tmp_path / "bk", tmp_path / "copy", until=info.position + 1)
    for bad in (0, -3, "yesterday", 1.5, True):
        with pytest.raises(errors.ValidationError):
            backups.restore(tmp_path / "bk", tmp_path / "copy", until=bad)
    assert not (tmp_path / "copy").exists()
    backups.restore(tmp_path / "bk", impl.location("copy"), until=info.position)
    assert state("copy") == state(source)
    with pytest.raises(errors.NotFound):
        backups.restore(tmp_path / "bk", tmp_path / "x", id="nope")
    for call in (backups.list, backups.verify, lambda d: backups.restore(d, tmp_path / "y"),
                 lambda d: backups.prune(d, keep_last=1)):
        with pytest.raises(errors.NotFound, match="no backup directory"):
            call(tmp_path / "nowhere")
    with open_store(source) as s, pytest.raises(errors.ValidationError, match="kind"):
        s.backup(tmp_path / "bk", kind="weekly")


def test_prune_rules():
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)

    def b(id, hours, parent=None):
        return BackupInfo(id, "full" if parent is None else "incremental", parent, 0, now - timedelta(hours=hours), 1)

    history = [b("a", 24 * 20), b("b", 24 * 8), b("c", 24 * 2), b("d", 30), b("e", 5), b("f", 1, parent="c")]
    assert backups._keep(history, 2, None, None) == {"e", "f", "c"}  # f needs its parent c
    assert backups._keep(history, None, 2, None) == {"f", "d", "c"}  # newest of today, of yesterday; f needs c
    assert backups._keep(history, None, None, 3) == {"f", "c", "b", "a"}


def test_prune_deletes_what_no_rule_keeps(source, open_store, tmp_path):
    with open_store(source) as s:
        infos = [s.backup(tmp_path / "bk") for _ in range(3)]
    with pytest.raises(errors.ValidationError, match="would delete everything"):
        backups.prune(tmp_path / "bk")
    with pytest.raises(errors.ValidationError, match="keep_last"):
        backups.prune(tmp_path / "bk", keep_last=-1)
    assert backups.prune(tmp_path / "bk", keep_last=1) == [infos[0].id, infos[1].id]
    assert backups.list(tmp_path / "bk") == [infos[2]]


def test_without_zstandard_a_backup_says_what_to_install(source, open_store, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with open_store(source) as s, pytest.raises(errors.BackupError, match=r"kuradb\[backup\]"):
        s.backup(tmp_path / "bk")


def test_cli(source, impl, tmp_path, capsys):
    assert main(["backup", impl.location(source), str(tmp_path / "bk")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert main(["backups", "list", str(tmp_path / "bk")]) == 0
    assert [b["id"] for b in json.loads(capsys.readouterr().out)] == [info["id"]]
    assert main(["backups", "verify", str(tmp_path / "bk")]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["restore", str(tmp_path / "bk"), str(tmp_path / "copy")]) == 0
    assert json.loads(capsys.readouterr().out)["position"] == info["position"]
    assert main(["restore", str(tmp_path / "bk"), str(tmp_path / "copy")]) == errors.EXIT_CODES["restore_failed"]
    assert "not empty" in capsys.readouterr().err
    _flip(only_backup(tmp_path / "bk") / "kura.db.zst", 50)
    assert main(["backups", "verify", str(tmp_path / "bk")]) == errors.EXIT_CODES["corrupted_data"]
    assert "kura.db.zst does not match its hash" in capsys.readouterr().out
    assert main(["backups", "prune", str(tmp_path / "bk"), "--keep-last", "1"]) == 0


def test_the_manifest_anchors_the_audit_chain(source, open_store, tmp_path):
    """A backup whose log was cut short (or the manifest edited) does not end where the manifest says."""
    with open_store(source) as s:
        info = s.backup(tmp_path / "bk")
        head = s.audit(since=s.position - 1)[0].hash
    d = only_backup(tmp_path / "bk")
    manifest = json.loads((d / "manifest.json").read_text())
    assert (manifest["position"], manifest["audit_head"]) == (info.position, head)
    manifest["audit_head"] = "0" * 32
    rewrite_manifest(d, manifest)
    assert any("not where the backups recorded" in p for p in backups.verify(tmp_path / "bk").problems)
    with pytest.raises(errors.RestoreError, match="not where the backups recorded"):
        backups.restore(tmp_path / "bk", tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_a_schedule_backs_up_and_prunes_until_stopped(source, open_store, tmp_path):
    from kuradb.schedule import parse_duration

    assert [parse_duration(x) for x in ("90s", "15m", "1h", "1d", "1w", 2, timedelta(minutes=1))] == [
        90, 900, 3600, 86_400, 604_800, 2, 60]
    for bad in ("5x", "", "-1h", 0, "0s"):
        with pytest.raises(errors.ValidationError):
            parse_duration(bad)
    seen = []
    with open_store(source) as s:
        with pytest.raises(errors.ValidationError, match="keep_last"):
            s.backup_every(tmp_path / "bk", every="1h", keep_last=0)
        schedule = s.backup_every(tmp_path / "bk", every=0.1, keep_last=2, on_backup=seen.append)
        deadline = time.monotonic() + 30
        while schedule.runs < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        schedule.stop(timeout=30)
        assert not schedule.is_alive() and schedule.last_error is None
        assert len(seen) >= 4 and schedule.last == seen[-1]
        assert backups.list(tmp_path / "bk") == seen[-2:]
        assert s.health().checks["last_backup"].status == "ok"


def test_a_failing_schedule_keeps_going_and_closing_the_store_stops_it(source, open_store, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    s = open_store(source)
    schedule = s.backup_every(tmp_path / "file" / "bk", every=0.05)
    deadline = time.monotonic() + 30
    while schedule.runs < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert schedule.runs >= 3 and isinstance(schedule.last_error, errors.BackupError) and schedule.is_alive()
    s.close()
    assert not schedule.is_alive()


def test_cli_backup_every_runs_until_terminated(source, impl, tmp_path):
    import signal
    import subprocess

    proc = subprocess.Popen([sys.executable, "-m", "kuradb", "backup", impl.location(source), str(tmp_path / "bk"),
                             "--every", "0.2s", "--keep-last", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline() for _ in range(3)]  # three backups, each printed as it happens
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    ids = [json.loads(line)["id"] for line in lines + out.splitlines()]
    assert len(ids) >= 3
    assert [b.id for b in backups.list(tmp_path / "bk")] == ids[-2:]


# -- follow-ups of issue #13 -------------------------------------------------------------------


def test_prune_leaves_a_day_old_partial_that_a_live_writer_still_holds(store, tmp_path):
    """A backup running for over a day keeps its folder: prune removes only partials nobody holds."""
    import fcntl

    from kuradb.backups import files

    dest = tmp_path / "bk"
    store["c"].put({"a": 1}, id="x")
    store.backup(dest)
    held = dest / f"{files.PARTIAL}held"
    held.mkdir()
    fd = os.open(held / files.PARTIAL_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    old_unlocked = dest / f"{files.PARTIAL}older-kuradb"        # no lock file: an older kuradb's, abandoned
    old_unlocked.mkdir()
    day_ago = time.time() - 2 * 86_400
    for p in (held, old_unlocked):
        os.utime(p, (day_ago, day_ago))
    try:
        backups.prune(dest, keep_last=1)
        assert held.exists() and not old_unlocked.exists()
    finally:
        os.close(fd)


def test_restore_into_an_unwritable_place_is_a_typed_error(store, tmp_path):
    dest = tmp_path / "bk"
    store["c"].put({"a": 1}, id="x")
    store.backup(dest)
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(errors.RestoreError, match="cannot restore into"):
        backups.restore(dest, tmp_path / "file" / "below" / "target")
