"""A damaged database page (64 bytes overwritten, the store closed): every read path either works or raises
CorruptedData, verify reports the damage, health fails, a backup refuses the store, a restore of damaged data is a
RestoreError, and prune keeps a good backup behind unrestorable ones."""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import apsw
import pytest

import kuradb
from kuradb import backups, errors
from kuradb.cli import main
from kuradb.errors import EXIT_CODES

N = 3000


def _bytes(n: int) -> bytes:
    out, i = b"", 0
    while len(out) < n:
        out += hashlib.sha256(str(i).encode()).digest()
        i += 1
    return out[:n]


SMALL, MEDIUM, BIG = b"a small inline blob", _bytes(20_000), _bytes(100_000)   # inline, inline (overflow pages), file


def _fill(path):
    with kuradb.open(path) as s:
        n = s["notes"]
        n.put_many([(f"r{i:05d}", {"n": i, "title": f"note number {i}", "tags": ["a", "b"], "pad": "x" * 80})
                    for i in range(N)])
        for i in range(0, N, 7):
            n.update(f"r{i:05d}", {"n": i + 1})
        n.create_index("n")
        n.create_text_index(["title"])
        n.put({"t": "pics", "small": s.blobs.put(SMALL), "medium": s.blobs.put(MEDIUM), "big": s.blobs.put(BIG)},
              id="pics")
        s["other"].put_many([(f"o{i:03d}", {"k": i}) for i in range(200)])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A closed store of a few thousand records, history, an index, a text index and blobs, and where each of its
    b-trees' pages are: {(name, pagetype): [page numbers]}."""
    path = tmp_path_factory.mktemp("damaged") / "pristine"
    _fill(path)
    conn = apsw.Connection(str(path / "kura.db"), flags=apsw.SQLITE_OPEN_READONLY)
    pages: dict[tuple[str, str], list[int]] = {}
    for name, page, kind in conn.execute("SELECT name, pageno, pagetype FROM dbstat ORDER BY pageno"):
        pages.setdefault((name, kind), []).append(page)
    conn.close()
    return path, pages


def _damage_page(db, page: int, page_size: int = 4096) -> None:
    """Overwrite 64 bytes of the page's content: from its middle, or its last used bytes if it is mostly free."""
    with open(db, "r+b") as f:
        f.seek((page - 1) * page_size)
        data = f.read(page_size)
        at = page_size // 2
        while at + 64 < page_size and not any(data[at:at + 64]):
            at += 64
        at = min(at, page_size - 64)
        f.seek((page - 1) * page_size + at)
        f.write(b"\xaa" * 64)


def _copy(pristine, tmp_path):
    path = tmp_path / "s"
    shutil.copytree(pristine, path)
    return path


def _read_paths(s):
    """Every public read, each a callable."""
    def notes():
        return s["notes"]
    ids = [f"r{i:05d}" for i in range(N)]
    return {
        "collection": lambda: s.collection("other"),
        "get": lambda: [notes().get(i) for i in ids],
        "get version": lambda: notes().get("r00007", version=1),
        "get_many": lambda: notes().get_many(ids),
        "history": lambda: [notes().history(i) for i in ids[::7]],
        "len": lambda: len(notes()),
        "iter": lambda: list(notes()),
        "in": lambda: [i in notes() for i in ids],
        "find": lambda: notes().find(),
        "find sorted by index": lambda: notes().find({"n": {"$gt": 10}}, sort="n"),
        "find_one": lambda: notes().find_one({"n": 5}),
        "scan": lambda: list(notes().scan(batch_size=100)),
        "count": lambda: notes().count({"n": {"$gte": 0}}),
        "exists": lambda: notes().exists({"n": N - 1}),
        "aggregate": lambda: notes().aggregate([{"$group": {"_id": None, "s": {"$sum": "$n"}}}]),
        "search_text": lambda: notes().search_text("number"),
        "query": lambda: notes().query().where("n", ">", 5).order_by("-n").all(),
        "indexes": lambda: notes().indexes(),
        "changes": lambda: list(s.changes()),
        "watch": lambda: list(s.watch(since=0, timeout=0)),
        "audit": lambda: s.audit(),
        "stats": lambda: s.stats(),
        "collections": lambda: s.collections(),
        "position": lambda: s.position,
        "blobs.get": lambda: [s.blobs.get(hashlib.sha256(b).hexdigest()) for b in (SMALL, MEDIUM, BIG)],
        "blobs.stat": lambda: s.blobs.stat(hashlib.sha256(BIG).hexdigest()),
        "blobs.open": lambda: [s.blobs.open(hashlib.sha256(b).hexdigest()).read() for b in (MEDIUM, BIG)],
        "blobs.exists": lambda: s.blobs.exists(hashlib.sha256(SMALL).hexdigest()),
        "health": lambda: s.health(),
    }


# (b-tree, page type): a data page and an interior page of the tables, indexes and text index, the small
# catalog tables, and the schema (page 1 is the schema's root, and the file header).
PLACES = [("log", "leaf"), ("log", "internal"), ("log_live", "leaf"), ("log_live", "internal"),
          ("kura:1:n", "leaf"), ("kura:1:n", "internal"),
          ("kura_fts:1_data", "leaf"), ("kura_fts:1_docsize", "leaf"), ("blobs", "leaf"),
          ("blobs", "overflow"), ("collections", "leaf"), ("indexes", "leaf"), ("array_paths", "leaf"),
          ("blob_refs", "leaf"), ("sqlite_schema", "leaf"), ("sqlite_schema", "internal")]


@pytest.mark.parametrize("place", PLACES, ids=[f"{n}-{k}" for n, k in PLACES])
def test_every_read_path_works_or_raises_corrupted_data(pristine, tmp_path, place):
    source, pages = pristine
    found = pages[place]
    path = _copy(source, tmp_path)
    _damage_page(path / "kura.db", found[len(found) // 2])
    try:
        s = kuradb.open(path)
    except errors.CorruptedData as e:   # the schema itself: open refuses, typed, saying what to do
        assert "cannot be opened" in e.message and "restore" in (e.hint or "")
        return
    with s:
        outcomes = {}
        for name, read in _read_paths(s).items():
            try:
                read()
                outcomes[name] = "works"
            except errors.CorruptedData as e:
                assert e.code == "corrupted_data" and e.message, name
                outcomes[name] = "corrupted"
        report = s.verify()   # a Report, never an exception, and it names the damage
        assert not report.ok and report.problems, outcomes
        assert s.health().status == "failing"
        if "corrupted" in outcomes.values():
            with pytest.raises(errors.BackupError, match="the store is damaged"):
                s.backup(tmp_path / "bk")


def _body_offsets(db, content):
    """Where the stored content (JSONB) of ``content`` is in the file (the current copy and the history one)."""
    conn = apsw.Connection(":memory:")
    body = conn.execute("SELECT jsonb(?)", (json.dumps(content, separators=(",", ":")),)).fetchone()[0]
    data = db.read_bytes()
    found, at = [], data.find(body)
    while at >= 0:
        found.append(at)
        at = data.find(body, at + 1)
    assert found, "content not found in the file"
    return found


def _damage_content(db, content, near=None):
    """Overwrite 64 bytes of ``content`` where it is stored: the copy nearest ``near``, or every copy."""
    found = _body_offsets(db, content)
    for at in found if near is None else [min(found, key=lambda o: abs(o - near))]:
        with open(db, "r+b") as f:
            f.seek(at + 4)
            f.write(b"\xaa" * 64)


@pytest.fixture
def middle(tmp_path):
    """The issue's case: a closed store of a few thousand records, 64 bytes overwritten in the middle of kura.db,
    inside a stored record's content."""
    path = tmp_path / "s"
    with kuradb.open(path) as s:
        s["notes"].put_many([(f"r{i:05d}", {"n": i, "text": "y" * 100}) for i in range(N)])
    db = path / "kura.db"
    _damage_content(db, {"n": 1500, "text": "y" * 100}, near=db.stat().st_size // 2)
    return path


def test_a_damaged_record_in_the_middle_is_reported_refused_and_never_restored(middle, tmp_path):
    with kuradb.open(middle) as s:
        report = s.verify()
        assert not report.ok
        assert any("notes/r01500" in p and "damaged" in p for p in report.problems), report.problems
        assert s.health().status == "failing" and s.health().checks["last_verify"].status == "failing"
        for read in (lambda: len(s["notes"]), lambda: list(s["notes"]), s.stats):
            try:
                read()
            except errors.CorruptedData:
                pass
        with pytest.raises(errors.BackupError, match="the store is damaged") as refused:
            s.backup(tmp_path / "bk")
        assert "notes/r01500" in refused.value.message and "allow_damaged" in (refused.value.hint or "")
        assert not os.path.exists(tmp_path / "bk") or backups.list(tmp_path / "bk") == []
        assert s.health().checks["damage"].status == "failing"
        info = s.backup(tmp_path / "bk", allow_damaged=True)
    assert info.damaged and "notes/r01500" in info.damaged[0]
    assert backups.list(tmp_path / "bk")[0].damaged == info.damaged
    checked = backups.verify(tmp_path / "bk")
    assert not checked.ok and any(info.id in p for p in checked.problems)
    with pytest.raises(errors.RestoreError) as failed:
        backups.restore(tmp_path / "bk", tmp_path / "restored")
    assert info.id in failed.value.message and "notes/r01500" in failed.value.message
    assert "taken of a damaged store" in failed.value.message
    assert not os.path.exists(tmp_path / "restored")


def test_a_verify_through_a_read_only_handle_makes_its_health_fail(middle):
    with kuradb.open(middle, read_only=True) as s:
        assert s.health().checks["damage"].status == "ok"
        assert not s.verify().ok
        h = s.health()
        assert h.status == "failing" and "notes/r01500" in h.checks["damage"].detail


def test_a_read_that_meets_a_damaged_page_makes_health_fail_without_a_verify(pristine, tmp_path):
    source, pages = pristine
    path = _copy(source, tmp_path)
    page = pages[("log_live", "leaf")][len(pages[("log_live", "leaf")]) // 2]
    db = path / "kura.db"
    original = db.read_bytes()[(page - 1) * 4096:page * 4096]
    _damage_page(db, page)
    with kuradb.open(path) as s:
        assert s.health().checks["damage"].status == "ok"
        with pytest.raises(errors.CorruptedData):
            len(s["notes"])
        h = s.health()
        assert h.status == "failing" and "damaged" in h.checks["damage"].detail
    with kuradb.open(path) as s:   # recorded in the store: another handle (or process) sees it
        assert s.health().checks["damage"].status == "failing"
    with open(db, "r+b") as f:   # the page mended (by hand): the damage stays known until a verify finds none
        f.seek((page - 1) * 4096)
        f.write(original)
    with kuradb.open(path) as s:
        assert s.health().checks["damage"].status == "failing"
        assert s.verify().ok
        assert s.health().checks["damage"].status == "ok" and s.health().status != "failing"


def test_an_incremental_backup_of_damaged_changes_is_refused(tmp_path):
    path = tmp_path / "s"
    with kuradb.open(path) as s:
        s["notes"].put_many([(f"r{i:05d}", {"n": i, "text": "y" * 100}) for i in range(N)])
        s.backup(tmp_path / "bk")
        s["notes"].put_many([(f"new{i:03d}", {"n": -i, "text": "z" * 100}) for i in range(100)])
    _damage_content(path / "kura.db", {"n": -50, "text": "z" * 100})
    with kuradb.open(path) as s:
        with pytest.raises(errors.BackupError, match="the store is damaged"):
            s.backup(tmp_path / "bk", kind="incremental")
    assert [b.kind for b in backups.list(tmp_path / "bk")] == ["full"]


def test_prune_keeps_a_good_backup_behind_unrestorable_ones(tmp_path):
    path = tmp_path / "s"
    dest = tmp_path / "bk"
    with kuradb.open(path) as s:
        s["notes"].put_many([(f"r{i:05d}", {"n": i, "text": "y" * 100}) for i in range(N)])
        good = s.backup(dest)
        s["notes"].put({"n": -1, "text": "a string with one byte to flip"}, id="flip")
    db = path / "kura.db"
    data = bytearray(db.read_bytes())
    for at in [i for i in range(len(data)) if data.startswith(b"one byte to flip", i)]:
        data[at] ^= 0x20   # "one" -> "One": still well-formed, so the backup's own check cannot see it
    db.write_bytes(bytes(data))
    with kuradb.open(path) as s:
        unverified = s.backup(dest)   # taken (its check sees no damage); only a verify of it can tell
    assert not backups.verify(dest, unverified.id).ok    # ... and that outcome is kept
    _damage_content(db, {"n": 1500, "text": "y" * 100})
    with kuradb.open(path) as s:
        damaged = [s.backup(dest, allow_damaged=True) for _ in range(2)]
    assert all(b.damaged for b in damaged)
    removed = backups.prune(dest, keep_last=1)
    assert {b.id for b in backups.list(dest)} == {good.id, damaged[-1].id}
    assert set(removed) == {unverified.id, damaged[0].id}
    backups.restore(dest, tmp_path / "restored", id=good.id)
    with kuradb.open(tmp_path / "restored") as r:
        assert len(r["notes"]) == N and r.verify().ok


def test_repair_says_what_it_could_not_repair(pristine, tmp_path, capsys):
    source, pages = pristine
    path = _copy(source, tmp_path)
    page = pages[("log", "leaf")][len(pages[("log", "leaf")]) // 2]
    _damage_page(path / "kura.db", page)
    with kuradb.open(path) as s:
        report = s.repair()
        assert not report.ok and report.problems
        # what remains is what verify finds, and each rebuild that could not read past the damage
        # (an index over the log cannot be built while a page of the log cannot be read)
        rest = [p for p in report.problems if p not in s.verify().problems]
        assert all(p.startswith("repair: ") and "could not be rebuilt" in p for p in rest), rest
    assert main(["repair", str(path)]) == EXIT_CODES["corrupted_data"]
    out, err = capsys.readouterr()
    assert json.loads(out)["ok"] is False and "problem(s) remain" in err and "Traceback" not in err


def test_cli_export_and_backup_of_a_damaged_store(middle, tmp_path, capsys):
    assert main(["export", str(middle), "notes", "-o", str(tmp_path / "out.jsonl")]) == EXIT_CODES["corrupted_data"]
    err = capsys.readouterr().err
    assert "kuradb: corrupted_data:" in err and "Traceback" not in err
    assert main(["backup", str(middle), str(tmp_path / "bk")]) == EXIT_CODES["backup_failed"]
    assert "the store is damaged" in capsys.readouterr().err
    assert main(["--json", "backup", str(middle), str(tmp_path / "bk"), "--allow-damaged"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["damaged"]
