"""store.health(): named checks with thresholds; backup and verify outcomes are remembered by the store.

A store failing its verify (damage made in kura.db): tests/sqlite/test_health_damage.py.
"""
from __future__ import annotations

import json

import pytest

from kuradb import errors
from kuradb.cli import main
from kuradb.health import DEFAULTS as ALL_CHECKS


def test_checks_follow_backups_and_verifies(open_store, tmp_path):
    with open_store("s") as s:
        s["n"].put({"a": 1}, id="x")
        h = s.health()
        # disk_free where the store is a directory (tests/sqlite/test_health_damage.py), not on a server
        assert {"wal_size", "last_backup", "last_verify", "damage"} <= set(h.checks) <= set(ALL_CHECKS)
        assert h.status == "degraded" and h.checks["last_backup"].detail == "no backup recorded"
        assert h.checks["last_verify"].detail == "never verified"
        assert all(h.checks[k].status == "ok" for k in ("disk_free", "wal_size") if k in h.checks)
        info = s.backup(tmp_path / "bk")
        assert s.verify().ok
        h = s.health()
        assert h.ok and info.id in h.checks["last_backup"].detail and h.checks["last_verify"].value == 0
    with open_store("s") as s:       # remembered by the store, not by the handle
        h = s.health()
        assert h.ok and info.id in h.checks["last_backup"].detail


def test_thresholds(open_store):
    with open_store("s") as s:
        s["n"].put({"a": 1}, id="x")
        h = s.health(thresholds={"wal_size": {"degraded": 0}, "last_backup": None})
        assert "last_backup" not in h.checks
        assert h.checks["wal_size"].status == "degraded" and h.status == "degraded"
        h = s.health(thresholds={"wal_size": {"failing": 0}})
        assert h.checks["wal_size"].status == "failing" and h.status == "failing"
        for bad in ({"nope": None}, {"disk_free": 5}, {"wal_size": {"degraded": -1}}, {"wal_size": {"bad": 1}}):
            with pytest.raises(errors.ValidationError, match="health check|thresholds"):
                s.health(thresholds=bad)


def test_a_read_only_store_reports_without_recording(open_store, tmp_path):
    with open_store("s") as s:
        s["n"].put({"a": 1}, id="x")
    with open_store("s", read_only=True) as s:
        s.backup(tmp_path / "bk")
        assert s.verify().ok
        assert s.health().checks["last_backup"].detail == "no backup recorded"


def test_cli_exit_code_reflects_status(impl, tmp_path, capsys):
    d = impl.location("s")
    main(["put", d, "n", "{}", "--id", "x"])
    capsys.readouterr()
    assert main(["health", d]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "degraded"
    assert main(["backup", d, str(tmp_path / "bk")]) == 0
    assert main(["health", d]) == 0


def test_the_read_cache_hit_rate_is_a_check_once_it_means_something(open_store):
    with open_store("s", cache="default") as s:
        c = s["n"]
        c.put_many([(f"k{i}", {"i": i}) for i in range(2000)])
        for i in range(10):
            c.get(f"k{i}")
        check = s.health().checks["cache_hit_rate"]
        assert check.status == "ok" and "too few to judge" in check.detail
        for i in range(2000):          # every read a first read: a miss
            c.get(f"k{i}")
        check = s.health().checks["cache_hit_rate"]
        assert check.status == "degraded" and check.value < 0.2
        for _ in range(5):
            for i in range(100):
                c.get(f"k{i}")
        assert s.health(thresholds={"cache_hit_rate": {"degraded": 0.1}}).checks["cache_hit_rate"].status == "ok"
        assert "cache_hit_rate" not in s.health(thresholds={"cache_hit_rate": None}).checks
    with open_store("s") as s:
        assert "cache_hit_rate" not in s.health().checks     # no cache, no check
