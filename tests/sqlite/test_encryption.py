"""Encryption at rest: the database, its WAL and blob files hold no plaintext; keys are checked before use."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import pytest

import kuradb
from kuradb import backups, errors
from kuradb.backends.sqlite import atrest
from kuradb.cli import main

KEY = bytes(range(32))
MARKER = "PLAINTEXT-7c1e"


def files_under(path):
    for d, _, names in os.walk(path):
        for n in names:
            yield os.path.join(d, n)


def leaks(path, needles):
    """The files under ``path`` holding any of ``needles``."""
    return [p for p in files_under(path) for needle in needles if needle in open(p, "rb").read()]


def fingerprint(path):
    return {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in files_under(path)}


@pytest.fixture
def secret_blob():
    return os.urandom(200_000)


def fill(s, blob, n=300):
    c = s.collection("notes")
    c.put_many([(f"k{i:04}", {"text": f"{MARKER} {i}", "n": i}) for i in range(n)])
    c.create_index("n")
    c.put({"file": s.blobs.put(blob), "small": s.blobs.put(b"tiny " + MARKER.encode())}, id="assets")
    c.update("k0001", {"text": f"{MARKER} changed"})


def needles(blob):
    return [MARKER.encode(), blob[1000:1064], blob[150_000:150_064], b"SQLite format 3"]


def test_nothing_under_the_store_directory_is_plaintext(tmp_path, secret_blob):
    path = tmp_path / "store"
    with kuradb.open(path, encryption_key=KEY) as s:
        fill(s, secret_blob)
        assert os.path.getsize(path / "kura.db-wal") > 0
        assert leaks(path, needles(secret_blob)) == []          # with the WAL in use
        assert s.blobs.get(s["notes"].get("assets")["file"]) == secret_blob
        assert s["notes"].find_one({"n": 7})["text"] == f"{MARKER} 7"
        assert s.verify().ok
    assert leaks(path, needles(secret_blob)) == []              # after the checkpoint at close
    with kuradb.open(path, encryption_key=KEY, read_only=True) as s:
        assert s["notes"].get("k0001")["text"] == f"{MARKER} changed"
        assert s.blobs.get(s["notes"].get("assets")["file"]) == secret_blob


@pytest.mark.parametrize("key,wrong", [(KEY, bytes(32)), ("it's a \"long\" passphrase", "it's a long passphrase")])
def test_a_wrong_or_missing_key_is_refused_without_touching_the_files(tmp_path, key, wrong):
    path = tmp_path / "store"
    with kuradb.open(path, encryption_key=key) as s:
        s["c"].put({"x": 1}, id="a")
    before = fingerprint(path)
    with pytest.raises(errors.PermissionDenied, match="wrong encryption key"):
        kuradb.open(path, encryption_key=wrong)
    with pytest.raises(errors.PermissionDenied, match="is encrypted"):
        kuradb.open(path)
    with pytest.raises(errors.PermissionDenied, match="is encrypted"):
        kuradb.open(path, read_only=True)
    assert fingerprint(path) == before
    with kuradb.open(path, encryption_key=key) as s:
        assert s["c"].get("a")["x"] == 1


def test_a_key_for_a_plain_store_and_bad_keys_are_refused(tmp_path):
    with kuradb.open(tmp_path / "plain") as s:
        s["c"].put({"x": 1}, id="a")
    with pytest.raises(errors.PermissionDenied, match="not encrypted"):
        kuradb.open(tmp_path / "plain", encryption_key=KEY)
    for bad in (b"short", "", 42, bytes(31)):
        with pytest.raises(errors.ValidationError, match="encryption_key|passphrase"):
            kuradb.open(tmp_path / "new", encryption_key=bad)
    assert not (tmp_path / "new" / "kura.db").exists()


def test_a_damaged_sealed_blob_is_named(tmp_path, secret_blob):
    path = tmp_path / "store"
    with kuradb.open(path, encryption_key=KEY) as s:
        ref = s.blobs.put(secret_blob)
    f = path / "blobs" / ref.hash[:2] / ref.hash
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1
    f.write_bytes(bytes(data))
    with kuradb.open(path, encryption_key=KEY) as s:
        with pytest.raises(errors.CorruptedData, match=f"blob {ref.hash}"):
            s.blobs.get(ref)
        assert any(ref.hash in p and "authentication" in p for p in s.verify().problems)


def test_rekey_changes_the_key_and_encrypts_a_plain_store(tmp_path, secret_blob):
    path = tmp_path / "store"
    with kuradb.open(path) as s:
        fill(s, secret_blob)
        want = [(r.id, r.version, r.content) for r in s["notes"].find()]
    assert leaks(path, needles(secret_blob))                 # plain, as it should be
    assert atrest.rekey(str(path), None, "first key") == 1   # one blob file (the small one is inline)
    assert leaks(path, needles(secret_blob)) == []
    with kuradb.open(path, encryption_key="first key") as s:
        assert [(r.id, r.version, r.content) for r in s["notes"].find()] == want
        assert s.verify().ok
        other = kuradb.open(path, encryption_key="first key")
        with pytest.raises(errors.PermissionDenied, match="open elsewhere"):
            atrest.rekey(str(path), "first key", KEY)
        other.close()
    with pytest.raises(errors.PermissionDenied, match="wrong encryption key"):
        atrest.rekey(str(path), "not it", KEY)
    assert atrest.rekey(str(path), "first key", KEY) == 0     # blob files keep their key (inside the db)
    with pytest.raises(errors.PermissionDenied):
        kuradb.open(path, encryption_key="first key")
    with kuradb.open(path, encryption_key=KEY) as s:
        assert s.blobs.get(s["notes"].get("assets")["file"]) == secret_blob
        assert s.verify().ok
    with pytest.raises(errors.ValidationError, match="does not decrypt"):
        atrest.rekey(str(path), KEY, None)


KILLED_WRITER = """
import sys, kuradb
with kuradb.open(sys.argv[1], encryption_key=bytes(range(32))) as s:
    c = s.collection("load")
    print("ready", flush=True)
    i = 0
    while True:
        c.put_many([(f"k{i}-{j}", {"i": i, "text": "PLAINTEXT-7c1e"}) for j in range(20)])
        i += 1
"""


def test_an_encrypted_store_survives_kill_9_mid_write(tmp_path):
    path = tmp_path / "store"
    p = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"ready"
    time.sleep(0.5)
    p.kill()
    p.wait()
    assert leaks(path, [MARKER.encode()]) == []
    with kuradb.open(path, encryption_key=KEY) as s:
        assert s.verify().ok
        counts = {}
        for r in s["load"].find():
            counts[r["i"]] = counts.get(r["i"], 0) + 1
        assert counts and set(counts.values()) == {20}         # whole transactions only


def test_backups_of_an_encrypted_store_stay_encrypted(tmp_path, secret_blob):
    path, dest = tmp_path / "store", tmp_path / "bk"
    with kuradb.open(path, encryption_key=KEY) as s:
        fill(s, secret_blob)
        full = s.backup(dest)
        middle = s.position
        s["notes"].put({"text": f"{MARKER} late", "file": s.blobs.put(secret_blob[::-1])}, id="late")
        inc = s.backup(dest, kind="incremental")
        want = [(r.id, r.version, r.content) for r in s["notes"].find()]
        with pytest.raises(errors.ValidationError, match="store's own key"):
            s.backup(dest, encryption_key=KEY)
    assert full.encrypted and inc.encrypted and inc.parent == full.id
    assert leaks(dest, [*needles(secret_blob), secret_blob[::-1][5000:5064]]) == []
    with pytest.raises(errors.PermissionDenied, match="encrypted store"):
        backups.restore(dest, tmp_path / "r0")
    with pytest.raises(errors.PermissionDenied, match="wrong encryption key"):
        backups.restore(dest, tmp_path / "r0", encryption_key=bytes(32))
    assert not (tmp_path / "r0").exists()
    backups.restore(dest, tmp_path / "r1", encryption_key=KEY)
    with pytest.raises(errors.PermissionDenied):
        kuradb.open(tmp_path / "r1")                          # the restored store is encrypted too
    with kuradb.open(tmp_path / "r1", encryption_key=KEY) as r:
        assert [(x.id, x.version, x.content) for x in r["notes"].find()] == want
        assert r.blobs.get(r["notes"].get("late")["file"]) == secret_blob[::-1]
    backups.restore(dest, tmp_path / "r2", until=middle, encryption_key=KEY)
    with kuradb.open(tmp_path / "r2", encryption_key=KEY) as r:
        assert r.position == middle and r["notes"].get("late", None) is None
    assert leaks(tmp_path / "r1", needles(secret_blob)) == []
    assert backups.verify(dest, encryption_key=KEY).ok
    assert any("give its encryption_key" in p for p in backups.verify(dest).problems)


def test_cli_key_file_and_rekey(tmp_path, capsys):
    import json

    old, new = tmp_path / "old.key", tmp_path / "new.key"
    old.write_bytes(KEY)
    new.write_text("a new passphrase\n")
    store = str(tmp_path / "store")
    with kuradb.open(store, encryption_key=KEY) as s:
        s["notes"].put({"x": 1}, id="a")
    assert main(["get", store, "notes", "a"]) == errors.EXIT_CODES["permission_denied"]
    assert "is encrypted" in capsys.readouterr().err
    assert main(["--key-file", str(old), "get", store, "notes", "a"]) == 0
    assert json.loads(capsys.readouterr().out)["content"] == {"x": 1}
    assert main(["--key-file", str(old), "rekey", store, "--new-key-file", str(new)]) == 0
    assert json.loads(capsys.readouterr().out)["rekeyed"] == store
    assert main(["--key-file", str(old), "get", store, "notes", "a"]) == errors.EXIT_CODES["permission_denied"]
    capsys.readouterr()
    assert main(["--key-file", str(new), "verify", store]) == 0


def test_an_encrypted_store_with_a_read_cache(tmp_path):
    path = tmp_path / "store"
    with kuradb.open(path, encryption_key=KEY, cache="default") as s:
        s["c"].put({"v": 1}, id="a")
        assert s["c"].get("a")["v"] == 1
        with kuradb.open(path, encryption_key=KEY) as other:     # another writer: the cache must see it
            other["c"].put({"v": 2}, id="a")
        assert s["c"].get("a")["v"] == 2
        assert s.stats()["cache"]["catch_ups"] >= 1 and s.stats()["encrypted"] is True


def test_rekey_of_a_path_that_is_a_file_is_not_found(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.NotFound):
        atrest.rekey(str(tmp_path / "file"), None, b"k" * 32)
