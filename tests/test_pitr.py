"""Incremental and differential backups, point-in-time restore, encrypted backups.

The property test writes at random, records the state after every write (the
reference model), takes backups of every kind along the way, and restores at
random positions and times: the result must equal the model at that point.
Backups go to local directories; restores go to new stores of the implementation
under test (``restored``).
"""
from __future__ import annotations

import itertools
import os
import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import kuradb
from kuradb import backups, errors

KEY = bytes(range(32))


def snapshot(s):
    """What a restore must bring back: every current record, its version history, indexes and blobs."""
    out = {}
    for c in s.collections():
        col = s[c]
        recs = {}
        for r in col.find():
            content = r.content
            blobs = {k: s.blobs.get(v) for k, v in content.items() if isinstance(v, kuradb.BlobRef)}
            recs[r.id] = (r.version, r.rev, content, blobs, [h.rev for h in col.history(r.id)])
        out[c] = (recs, sorted(i.name for i in col.indexes()))
    return s.position, out


_names = itertools.count()


def restored(impl, dest, **kw):
    """Restore into a new store of the implementation under test: what it holds, checked by its verify."""
    name = f"r{next(_names)}"
    info = backups.restore(dest, impl.location(name), **kw)
    with impl.open(name) as s:
        snap = snapshot(s)
        assert s.verify().ok
    impl.remove(name)
    return info, snap


names = st.sampled_from(["a", "b", "c", "d", "e"])
values = st.dictionaries(st.sampled_from(["x", "y", "tags"]), st.integers(-5, 5) | st.lists(st.integers(0, 3),
                                                                                          max_size=3), max_size=3)
ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from(["notes", "tasks"]), names, values),
    st.tuples(st.just("delete"), st.sampled_from(["notes", "tasks"]), names),
    st.tuples(st.just("many"), st.sampled_from(["notes", "tasks"]), st.lists(st.tuples(names, values), min_size=1,
                                                                            max_size=4, unique_by=lambda t: t[0])),
    st.tuples(st.just("blob"), names, st.sampled_from([10, 70_000])),
    st.tuples(st.just("index"), st.sampled_from(["notes", "tasks"]), st.sampled_from(["x", "y"])),
    st.tuples(st.just("unindex"), st.sampled_from(["notes", "tasks"]), st.sampled_from(["x", "y"])),
    st.tuples(st.just("backup"), st.sampled_from(["full", "incremental", "differential"])),
), min_size=1, max_size=30)


def apply(s, op):
    kind = op[0]
    if kind == "put":
        s.collection(op[1]).put(op[3], id=op[2])
    elif kind == "delete":
        if s.collection(op[1]).get(op[2], None) is not None:
            s.collection(op[1]).delete(op[2])
    elif kind == "many":
        s.collection(op[1]).put_many(op[2])
    elif kind == "blob":
        s.collection("assets").put({"file": s.blobs.put(os.urandom(op[2]))}, id=op[1])
    elif kind == "index":
        if op[2] not in [i.name for i in s.collection(op[1]).indexes()]:
            s.collection(op[1]).create_index(op[2], name=op[2])
    elif kind == "unindex":
        if op[2] in [i.name for i in s.collection(op[1]).indexes()]:
            s.collection(op[1]).drop_index(op[2])


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=ops, data=st.data())
def test_restore_at_any_position_or_time_equals_the_model(impl, tmp_path_factory, ops, data):
    dest = str(tmp_path_factory.mktemp("pitr") / "bk")
    name = f"store{next(_names)}"
    model = {}          # position -> state after the write that ended there
    times = []          # (time just after a write, position)
    with impl.open(name) as s:
        model[0] = snapshot(s)[1]
        s.backup(dest)
        for op in [*ops, ("backup", "incremental")]:
            if op[0] == "backup":
                info = s.backup(dest, kind=op[1])
                assert info.position == s.position
                continue
            before = s.position
            apply(s, op)
            if s.position != before:
                model[s.position] = snapshot(s)[1]
                times.append((datetime.now(UTC), s.position))
                time.sleep(0.001)
        newest = s.position
    kinds = {b.kind for b in backups.list(dest)}
    assert kinds <= {"full", "incremental", "differential"}

    def expected(p):
        return model[max(q for q in model if q <= p)]

    positions = data.draw(st.lists(st.integers(1, max(newest, 1)), min_size=1, max_size=4), label="positions")
    for p in positions if newest else []:
        info, (at, state) = restored(impl, dest, until=p)
        # the last commit at or before p (a blob's own commit is one the model does not record)
        assert max(q for q in model if q <= p) <= at == info.position <= p
        assert state == expected(p), p
    if times:
        t, p = data.draw(st.sampled_from(times), label="time")
        info, (at, state) = restored(impl, dest, until=t)
        assert (at, state) == (p, expected(p))
    info, (at, state) = restored(impl, dest)
    assert (at, state) == (newest, expected(newest))
    impl.remove(name)


erasing_ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.just("notes"), names, values),
    st.tuples(st.just("purge"), names),
    st.tuples(st.just("keep"), st.integers(1, 3)),
    st.tuples(st.just("backup"), st.sampled_from(["full", "incremental", "differential"])),
), min_size=1, max_size=30)


def current(snap):
    """The current records of a snapshot, without history (which keep_history trims)."""
    return {c: {id: rec[:4] for id, rec in recs.items()} for c, (recs, _) in snap.items()}


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=erasing_ops, data=st.data())
def test_erased_content_is_restored_exactly_or_refused_never_invented(impl, tmp_path_factory, ops, data):
    """With purge and keep_history, a restore gives the model's current records or refuses (RestoreError
    naming the erasure); at a point where a backup was taken it always succeeds."""
    dest = str(tmp_path_factory.mktemp("erase") / "bk")
    name = f"store{next(_names)}"
    model, taken = {}, []
    with impl.open(name) as s:
        s.collection("notes")
        for op in [*ops, ("backup", "incremental")]:
            before = s.position
            if op[0] == "backup":
                taken.append(s.backup(dest, kind=op[1]).position)
            elif op[0] == "put":
                s["notes"].put(op[3], id=op[2])
            elif op[0] == "purge":
                if s["notes"].get(op[1], None) is not None or op[1] in [r.id for r in s["notes"].find()]:
                    s["notes"].purge(op[1])
            elif op[0] == "keep":
                s["notes"].configure(keep_history=op[1])   # may lower it: an explicit act
            if s.position != before:
                model[s.position] = current(snapshot(s)[1])
        newest = s.position
    impl.remove(name)
    if not newest:
        return
    points = data.draw(st.lists(st.integers(1, newest), min_size=1, max_size=3), label="points")
    for p in [*points, *[t for t in taken if t]]:
        want = model[max(q for q in model if q <= p)]
        try:
            _, (at, state) = restored(impl, dest, until=p)
        except errors.RestoreError as e:
            assert p not in taken and "erased" in e.message, (p, e.message)
            event("refused: content erased before any backup held it")
            continue
        event("restored")
        assert current(state) == want, p


def _store(open_store, n=200, name="store"):
    s = open_store(name)
    s.collection("notes").put_many([(f"k{i:03}", {"i": i, "text": f"note {i}"}) for i in range(n)])
    return s


def test_chains_of_incremental_and_differential_backups(impl, open_store, tmp_path):
    dest = tmp_path / "bk"
    states = {}
    with _store(open_store, 2000) as s:
        full = s.backup(dest, kind="full")
        states[full.id] = snapshot(s)
        infos = [full]
        for kind in ("incremental", "incremental", "differential", "incremental"):
            s["notes"].put({"i": -1, "kind": kind}, id=f"k{len(infos):03}")
            s["notes"].put({"new": True}, id=f"n{len(infos)}")
            s.blobs.put(os.urandom(100_000))
            infos.append(s.backup(dest, kind=kind))
            states[infos[-1].id] = snapshot(s)
    inc1, inc2, diff, inc3 = infos[1:]
    assert [b.kind for b in infos] == ["full", "incremental", "incremental", "differential", "incremental"]
    assert (inc1.parent, inc2.parent, diff.parent, inc3.parent) == (full.id, inc1.id, full.id, diff.id)
    assert (inc1.since, inc2.since, diff.since, inc3.since) == (full.position, inc1.position, full.position,
                                                                 diff.position)
    changes = [os.path.getsize(dest / b.id / "changes.db.zst") for b in (inc1, inc2, inc3)]
    assert max(changes) < os.path.getsize(dest / full.id / "kura.db.zst") / 5   # the changes, not a copy
    assert backups.list(dest) == infos
    assert backups.verify(dest).ok
    for b in infos:
        info, snap = restored(impl, dest, id=b.id)
        assert info == b and snap == states[b.id]


def test_a_missing_parent_is_named_and_nothing_is_restored(open_store, tmp_path):
    dest = tmp_path / "bk"
    with _store(open_store) as s:
        full = s.backup(dest)
        s["notes"].put({"x": 1}, id="x")
        inc = s.backup(dest, kind="incremental")
    shutil.rmtree(dest / full.id)
    with pytest.raises(errors.RestoreError, match=f"needs backup {full.id}"):
        backups.restore(dest, tmp_path / "copy", id=inc.id)
    with pytest.raises(errors.RestoreError, match=f"needs backup {full.id}"):
        backups.restore(dest, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    assert any(f"parent backup {full.id} is missing" in p for p in backups.verify(dest).problems)


def test_without_a_usable_parent_an_incremental_is_a_full_backup(open_store, tmp_path):
    with _store(open_store) as s:
        assert s.backup(tmp_path / "bk", kind="incremental").kind == "full"
        assert s.backup(tmp_path / "bk", kind="differential").kind == "differential"
    with _store(open_store, name="other") as other:   # another store's backups are no parent of this one
        b = other.backup(tmp_path / "bk", kind="incremental")
        assert b.kind == "full" and b.parent is None


def test_content_erased_before_any_backup_took_it_is_refused_not_invented(impl, open_store, tmp_path):
    dest = tmp_path / "bk"
    with _store(open_store, 3) as s:
        s.backup(dest)
        s["notes"].put({"secret": 1}, id="gone")
        written = s.position
        s["notes"].purge("gone")          # erased before any backup held its content
        s["notes"].put({"after": 1}, id="later")
        s.backup(dest, kind="incremental")
    with pytest.raises(errors.RestoreError, match="notes/gone version 1.*erased"):
        backups.restore(dest, tmp_path / "copy", until=written)
    assert not (tmp_path / "copy").exists()
    _, (at, state) = restored(impl, dest, until=written - 1)   # before it was written: fine
    assert at == written - 1 and "gone" not in state["notes"][0]
    _, (at, state) = restored(impl, dest, until=written + 1)   # after the purge: fine
    assert "gone" not in state["notes"][0]


def test_a_dropped_collection_comes_back_at_a_point_before_the_drop(impl, open_store, tmp_path):
    dest = tmp_path / "bk"
    with _store(open_store, 50) as s:
        s.collection("notes").create_index("i", unique=True)
        s.backup(dest)
        before = snapshot(s)
        s.drop_collection("notes")
        s.collection("other").put({"a": 1}, id="a")
        s.backup(dest, kind="incremental")
        after = snapshot(s)
    assert restored(impl, dest, until=before[0])[1] == before
    assert restored(impl, dest)[1] == after


def test_times_before_the_first_change_and_after_the_newest_backup(impl, open_store, tmp_path):
    dest = tmp_path / "bk"
    start = datetime.now(UTC) - timedelta(seconds=1)
    with _store(open_store, 5) as s:
        s.backup(dest)
        newest = snapshot(s)
    with pytest.raises(errors.RestoreError, match="before the first change"):
        backups.restore(dest, tmp_path / "copy", until=start)
    assert restored(impl, dest, until=datetime.now(UTC) + timedelta(days=1))[1] == newest
    assert restored(impl, dest, until=datetime.now())[1] == newest   # naive: local time


# -- encrypted backups --------------------------------------------------------------------------

def _files_under(path):
    for d, _, names in os.walk(path):
        for n in names:
            yield os.path.join(d, n)


@pytest.mark.parametrize("key", [KEY, "correct horse battery staple"])
def test_an_encrypted_backup_holds_no_plaintext_and_needs_its_key(impl, open_store, tmp_path, key):
    dest = tmp_path / "bk"
    marker = b"PLAINTEXT-MARKER-7d1f"
    blob = os.urandom(80_000)
    with _store(open_store, 100) as s:
        s["notes"].put({"text": marker.decode()}, id="m")
        s["notes"].put({"file": s.blobs.put(blob)}, id="b")
        s.backup(dest, encryption_key=key)
        s["notes"].put({"text": marker.decode() + "-2"}, id="m2")
        s["notes"].put({"file": s.blobs.put(blob[::-1])}, id="f")
        inc = s.backup(dest, kind="incremental", encryption_key=key)
        want = snapshot(s)
        assert inc.encrypted and inc.kind == "incremental"
        with pytest.raises(errors.BackupError, match="encrypted"):
            s.backup(dest, kind="incremental")         # a chain is encrypted throughout
        with pytest.raises(errors.PermissionDenied):
            s.backup(dest, kind="incremental", encryption_key=bytes(32) if key == KEY else "wrong")
    for path in _files_under(dest):
        data = open(path, "rb").read()
        assert marker not in data and blob[1000:1064] not in data and blob[::-1][1000:1064] not in data, path
        assert b"SQLite format 3" not in data and b"note 17" not in data, path
    with pytest.raises(errors.PermissionDenied, match="encrypted"):
        backups.restore(dest, tmp_path / "copy")
    with pytest.raises(errors.PermissionDenied, match="wrong encryption key"):
        backups.restore(dest, tmp_path / "copy", encryption_key=bytes(32) if key == KEY else "wrong")
    assert not (tmp_path / "copy").exists()
    assert restored(impl, dest, encryption_key=key)[1] == want
    assert backups.verify(dest, encryption_key=key).ok
    assert any("give its encryption_key" in p for p in backups.verify(dest).problems)


def test_flipped_bytes_in_encrypted_backups_are_named_and_refused(open_store, tmp_path):
    dest = tmp_path / "bk"
    with _store(open_store, 100) as s:
        s.backup(dest, encryption_key=KEY)
        s["notes"].put({"file": s.blobs.put(os.urandom(90_000))}, id="f")
        s.backup(dest, kind="incremental", encryption_key=KEY)
    originals = {p: open(p, "rb").read() for p in _files_under(dest)}
    for path, data in originals.items():
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x01
        with open(path, "wb") as f:
            f.write(flipped)
        name = os.path.relpath(path, dest).split(os.sep, 1)[1]
        problems = backups.verify(dest, encryption_key=KEY).problems
        assert any(name in p for p in problems), (name, problems)
        with pytest.raises(errors.RestoreError):
            backups.restore(dest, tmp_path / "copy", encryption_key=KEY)
        assert not (tmp_path / "copy").exists()
        with open(path, "wb") as f:
            f.write(data)
    assert backups.verify(dest, encryption_key=KEY).ok


def test_an_encrypted_file_that_still_matches_its_hash_but_not_its_key_is_refused(open_store, tmp_path):
    """The manifest's hashes are of the sealed bytes: a file sealed under another key is caught on open."""
    from kuradb.backups import files

    dest = tmp_path / "bk"
    with _store(open_store, 20) as s:
        info = s.backup(dest, encryption_key=KEY)
    d = dest / info.id
    manifest = files.read_manifest(str(dest), info.id)
    from kuradb.crypto import Cipher

    other = Cipher.new(bytes(32))
    raw = tmp_path / "plain.zst"
    raw.write_bytes(b"x" * 100)
    other.seal_file(str(raw), str(d / "kura.db.zst"))
    digest, size = files.sha256_of(str(d / "kura.db.zst"))
    manifest["files"][0].update(sha256=digest, size=size)
    del manifest["checksum"]
    files.write_manifest(str(d), manifest)
    with pytest.raises(errors.RestoreError, match="kura.db.zst"):
        backups.restore(dest, tmp_path / "copy", encryption_key=KEY)
    assert not (tmp_path / "copy").exists()


# -- command line and schedule ------------------------------------------------------------------

def test_cli_incremental_encrypted_and_until(impl, open_store, tmp_path, capsys):
    import json

    from kuradb.cli import main

    key_file = tmp_path / "key"
    key_file.write_text("a passphrase\n")
    with _store(open_store, 20) as s:
        first = s.position
    bk, store = str(tmp_path / "bk"), impl.location("store")
    assert main(["backup", store, bk, "--encryption-key-file", str(key_file)]) == 0
    full = json.loads(capsys.readouterr().out)
    with open_store("store") as s:
        s["notes"].put({"later": True}, id="later")
        want = snapshot(s)
    assert main(["backup", store, bk, "--kind", "incremental", "--encryption-key-file", str(key_file)]) == 0
    inc = json.loads(capsys.readouterr().out)
    assert (inc["kind"], inc["parent"], inc["encrypted"]) == ("incremental", full["id"], True)
    assert main(["backups", "verify", bk, "--encryption-key-file", str(key_file)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["restore", bk, impl.location("a"), "--until", str(first),
                 "--encryption-key-file", str(key_file)]) == 0
    assert json.loads(capsys.readouterr().out)["position"] == first
    with open_store("a") as s:
        assert s["notes"].get("later", None) is None and s.position == first
    assert main(["restore", bk, impl.location("b"), "--until", datetime.now(UTC).isoformat(),
                 "--encryption-key-file", str(key_file)]) == 0
    capsys.readouterr()
    with open_store("b") as s:
        assert snapshot(s) == want
    assert main(["restore", bk, str(tmp_path / "c")]) == errors.EXIT_CODES["permission_denied"]
    assert "encrypted" in capsys.readouterr().err
    assert main(["restore", bk, str(tmp_path / "c"), "--until", "last tuesday"]) == errors.EXIT_CODES["invalid_data"]
    assert "ISO 8601" in capsys.readouterr().err
    assert main(["backup", store, bk, "--full-every", "1d"]) == errors.EXIT_CODES["invalid_data"]
    assert not (tmp_path / "c").exists()


def test_a_schedule_takes_incrementals_and_a_full_one_when_the_last_is_old(open_store, tmp_path):
    dest = tmp_path / "bk"
    with _store(open_store, 10) as s:
        schedule = s.backup_every(dest, every=3600, kind="incremental", full_every="1d")
        deadline = time.monotonic() + 10
        while schedule.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        schedule.stop()
        assert [b.kind for b in backups.list(dest)] == ["full"]
        s["notes"].put({"x": 1}, id="x")
        schedule.run_once()
        assert [b.kind for b in backups.list(dest)] == ["full", "incremental"]
        schedule.full_every = 0.001        # the newest full is now "old"
        schedule.run_once()
        assert [b.kind for b in backups.list(dest)] == ["full", "incremental", "full"]
        assert schedule.last_error is None
        with pytest.raises(errors.ValidationError, match="kind"):
            s.backup_every(dest, every=60, kind="hourly")
        with pytest.raises(errors.ValidationError, match="full_every"):
            s.backup_every(dest, every=60, kind="incremental", full_every="soon")


WRITER = """
import os, sys, time, kuradb
path, stop = sys.argv[1], sys.argv[2]
with kuradb.open(path) as s:
    c = s.collection("load")
    i = 0
    while not os.path.exists(stop) or i < 200:
        with s.transaction():   # a batch and, now and then, the delete of one earlier record: one commit
            c.put_many([(f"w{i * 5 + j:07}", {"batch": i, "pad": "x" * 300}) for j in range(5)])
            if i % 7 == 3:
                c.delete(f"w{(i - 1) * 5:07}")
        i += 1
        time.sleep(0.001)   # a busy writer, not one that starves every other (SQLite's lock is not fair)
"""


def test_backups_under_another_process_writing_restore_consistent_states(impl, open_store, tmp_path):
    import subprocess
    import sys

    dest, stop = tmp_path / "bk", tmp_path / "stop"
    open_store("store").close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, impl.location("store"), str(stop)])
    try:
        infos = []
        with open_store("store") as s:
            while s.position < 50:
                time.sleep(0.01)
            for kind in ("full", "incremental", "incremental", "differential", "incremental"):
                infos.append(s.backup(dest, kind=kind))
                time.sleep(0.05)
    finally:
        stop.touch()
        assert writer.wait(60) == 0
    assert [b.kind for b in infos] == ["full", "incremental", "incremental", "differential", "incremental"]
    assert len({b.position for b in infos}) == len(infos)

    def check(state):
        recs = state["load"][0] if "load" in state else {}
        batches = {}
        for id, (_, _, content, _, _) in recs.items():
            batches.setdefault(content["batch"], []).append(id)
        n = max(batches, default=-1) + 1
        for b in range(n):      # every batch committed whole; deletes only of earlier batches
            want = {f"w{b * 5 + j:07}" for j in range(5)}
            if any(i % 7 == 3 and i - 1 == b and i < n for i in range(n + 1)):
                want.discard(f"w{b * 5:07}")
            assert set(batches.get(b, [])) == want, b

    rnd = __import__("random").Random(7)
    points = [("id", b.id) for b in infos] + [("until", rnd.randint(1, infos[-1].position)) for _ in range(6)]
    for how, value in points:
        info, (at, state) = restored(impl, dest, **{how: value})
        check(state)
        if how == "id":
            assert at == next(b.position for b in infos if b.id == value)


# -- faults ---------------------------------------------------------------------------------------

def _chain(open_store, tmp_path):
    dest = tmp_path / "bk"
    with _store(open_store, 300) as s:
        s["notes"].put({"file": s.blobs.put(os.urandom(90_000))}, id="f0")
        s.backup(dest)
        s["notes"].put({"file": s.blobs.put(os.urandom(90_000))}, id="f1")
        s.backup(dest, kind="incremental")
        s["notes"].put({"x": 2}, id="x")
        s.backup(dest, kind="differential")
    return dest


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_every_file_of_a_chain_damaged_is_named_and_refused(open_store, tmp_path, damage):
    dest = _chain(open_store, tmp_path)
    originals = {p: open(p, "rb").read() for p in _files_under(dest)}
    assert {os.path.basename(p) for p in originals} >= {"kura.db.zst", "changes.db.zst", "manifest.json"}
    for path, data in originals.items():
        with open(path, "wb") as f:
            if damage == "flip":
                f.write(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0x40]) + data[len(data) // 2 + 1:])
            else:
                f.write(data[:len(data) - max(1, len(data) // 3)])
        name = os.path.relpath(path, dest).split(os.sep, 1)[1]
        problems = backups.verify(dest).problems
        assert any(name in p for p in problems), (name, problems)
        bid = os.path.relpath(path, dest).split(os.sep)[0]
        with pytest.raises((errors.RestoreError, errors.NotFound)):
            backups.restore(dest, tmp_path / "copy", id=bid)
        assert not (tmp_path / "copy").exists()
        with open(path, "wb") as f:
            f.write(data)
    assert backups.verify(dest).ok


def test_prune_keeps_the_chain_a_kept_backup_needs(impl, open_store, tmp_path):
    dest = _chain(open_store, tmp_path)
    full, inc, diff = backups.list(dest)
    assert backups.prune(dest, keep_last=1) == [inc.id]          # the differential needs only the full
    assert [b.id for b in backups.list(dest)] == [full.id, diff.id]
    assert restored(impl, dest)[0].id == diff.id


def test_a_full_destination_is_storage_full_and_leaves_nothing(open_store, tmp_path, monkeypatch):
    """Simulated: the filesystem says ENOSPC while the backup is written (see the tmpfs test for a real one)."""
    import errno

    from kuradb.backups import files

    dest = tmp_path / "bk"
    with _store(open_store, 100) as s:
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(files, "pack", full)
        with pytest.raises(errors.StorageFull, match="is full"):
            s.backup(dest)
    assert os.listdir(dest) == [] and backups.list(dest) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs the right to mount, as root in CI has)."""
    import subprocess

    path = tmp_path / "small"
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must be able to mount a small tmpfs for the disk-full test")
        pytest.skip("mounting a small tmpfs needs root; run the suite as root to test a really full disk")
    yield path
    subprocess.run(["umount", str(path)], check=True)


def test_a_really_full_disk_fails_backup_and_restore_cleanly(open_store, tmp_path, small_disk):
    with _store(open_store, 20) as s:
        s["notes"].put({"file": s.blobs.put(os.urandom(2_000_000))}, id="big")   # more than the disk holds
        with pytest.raises(errors.StorageFull):
            s.backup(small_disk / "bk")
        assert backups.list(small_disk / "bk") == [] and os.listdir(small_disk / "bk") == []
        s.backup(tmp_path / "bk")
    with pytest.raises(errors.StorageFull):
        backups.restore(tmp_path / "bk", small_disk / "restored")
    assert not (small_disk / "restored").exists()
    assert [p for p in os.listdir(small_disk) if p != "bk"] == []


BACKER = """
import sys, kuradb
with kuradb.open(sys.argv[1]) as s:
    print("ready", flush=True)
    s.backup(sys.argv[2], kind=sys.argv[3])
"""


@pytest.mark.parametrize("kind", ["full", "incremental"])
def test_a_backup_killed_midway_is_never_listed_and_the_next_one_works(impl, open_store, tmp_path, kind):
    import subprocess
    import sys

    dest = tmp_path / "bk"
    with _store(open_store, 5000) as s:
        s.backup(dest)
        for i in range(60):     # the backup below copies and fsyncs these: long enough to be cut
            s["notes"].put({"file": s.blobs.put(os.urandom(100_000))}, id=f"blob{i}")
        s["notes"].put_many([(f"k{i:03}", {"i": -i}) for i in range(3000)])
    interrupted = 0
    for delay in (0.002, 0.01, 0.03):
        before = backups.list(dest)
        p = subprocess.Popen([sys.executable, "-c", BACKER, impl.location("store"), str(dest), kind],
                             stdout=subprocess.PIPE)
        assert p.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        p.kill()
        p.wait()
        after = backups.list(dest)
        interrupted += len(after) == len(before)
        assert after[:len(before)] == before and len(after) <= len(before) + 1
        assert backups.verify(dest).ok      # whatever is listed is whole; a .partial- folder is not listed
    assert interrupted, "no kill landed inside a backup: make the store bigger"
    with open_store("store") as s:
        info = s.backup(dest, kind=kind)
        want = snapshot(s)
    assert restored(impl, dest, id=info.id)[1] == want
