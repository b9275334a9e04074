"""Signals and the CLI's backups: SIGTERM abandons the backup in progress and removes its partial folder;
the next backup into DEST removes the partials of killed processes, never one that is being written."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import kuradb
from kuradb import backups
from kuradb.cli import main


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A store whose backup takes a second or more: signals land while it is being written."""
    d = tmp_path_factory.mktemp("big") / "store"
    with kuradb.open(d) as s:
        s["docs"].put_many([(f"k{i}", {"text": "x" * 200, "i": i}) for i in range(5000)])
        for i in range(1200):   # file blobs (over 64 KiB), copied one by one into the backup
            s.blobs.put(i.to_bytes(16, "big") * (70_000 // 16))
    return str(d)


@pytest.fixture
def small(tmp_path):
    d = tmp_path / "small"
    with kuradb.open(d) as s:
        s["notes"].put({"v": 1}, id="a")
    return str(d)


def partials(dest) -> list[str]:
    return sorted(n for n in os.listdir(dest) if n.startswith(".partial-")) if os.path.isdir(dest) else []


def start_backup(store, dest, *args):
    return subprocess.Popen([sys.executable, "-m", "kuradb", "backup", store, str(dest), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_partial(proc, dest, timeout=60):
    deadline = time.monotonic() + timeout
    while not partials(dest):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no partial folder appeared"
        time.sleep(0.005)
    return partials(dest)


def test_sigterm_to_backup_every_abandons_the_backup_in_progress(big, tmp_path):
    dest = tmp_path / "bk"
    proc = start_backup(big, dest, "--every", "1h")
    wait_for_partial(proc, dest)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and out == ""
    assert partials(dest) == [] and backups.list(dest) == []   # stopped, not finished, and nothing left over


def test_sigterm_to_one_backup_removes_its_partial_and_exits_143(big, tmp_path):
    dest = tmp_path / "bk"
    proc = start_backup(big, dest)
    wait_for_partial(proc, dest)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err and out == ""
    assert partials(dest) == [] and os.listdir(dest) == []


def test_the_next_backup_removes_the_partial_of_a_killed_one(big, small, tmp_path, capsys):
    dest = tmp_path / "bk"
    proc = start_backup(big, dest)
    left = wait_for_partial(proc, dest)
    proc.kill()    # SIGKILL: nothing can clean up
    proc.communicate(timeout=60)
    assert partials(dest) == left
    assert main(["backup", small, str(dest)]) == 0
    made = json.loads(capsys.readouterr().out)
    assert partials(dest) == [] and [b.id for b in backups.list(dest)] == [made["id"]]
    assert sorted(os.listdir(dest)) == [made["id"]]
    assert sorted(os.listdir(dest / made["id"])) == ["blobs", "kura.db.zst", "manifest.json"]  # no lock file kept


def test_a_partial_that_a_live_process_is_writing_is_left_alone(big, small, tmp_path):
    dest = tmp_path / "bk"
    proc = start_backup(big, dest)
    theirs = wait_for_partial(proc, dest)
    with kuradb.open(small) as s:
        ours = s.backup(dest)     # starts by removing stale partials: theirs is not one
    assert set(theirs) <= set(partials(dest)) or proc.poll() is not None
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert sorted(b.id for b in backups.list(dest)) == sorted([ours.id, json.loads(out)["id"]])
    assert partials(dest) == []


def test_backup_every_reports_each_failed_run_and_keeps_going(small, tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    proc = subprocess.Popen([sys.executable, "-m", "kuradb", "backup", small, str(tmp_path / "afile" / "bk"),
                             "--every", "0.05s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [proc.stderr.readline() for _ in range(3)]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out == "" and "Traceback" not in err
    assert all(line.startswith("kuradb: backup failed: cannot create the backup directory") for line in lines)
