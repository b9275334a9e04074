"""Health of SQLite stores: kura.db damaged after a good verify, an old last backup, the free space of its disk."""
from __future__ import annotations

import json
import time

import apsw

import kuradb
from kuradb import errors
from kuradb.cli import main


def test_a_failed_verify_and_an_old_backup_make_health_fail(tmp_path):
    with kuradb.open(tmp_path / "s") as s:
        s["n"].put({"a": 1}, id="x")
        s.backup(tmp_path / "bk")
        assert s.verify().ok and s.health().ok
    conn = apsw.Connection(str(tmp_path / "s" / "kura.db"))
    conn.execute("UPDATE log SET rev = 'x' WHERE position = 1")
    conn.execute("UPDATE meta SET value = json_set(value, '$.at', ?) WHERE key = 'last_backup'",
                 (time.time() - 3 * 86_400,))
    conn.close()
    with kuradb.open(tmp_path / "s") as s:
        assert not s.verify().ok
        h = s.health()
        assert h.status == "failing" and h.checks["last_verify"].status == "failing"
        assert h.checks["last_backup"].status == "degraded" and "72.0 h ago" in h.checks["last_backup"].detail


def test_cli_health_exits_2_after_a_failed_verify(tmp_path, capsys):
    d = str(tmp_path / "s")
    main(["put", d, "n", "{}", "--id", "x"])
    assert main(["backup", d, str(tmp_path / "bk")]) == 0
    assert main(["health", d]) == 0
    conn = apsw.Connection(str(tmp_path / "s" / "kura.db"))
    conn.execute("UPDATE log SET rev = 'x' WHERE position = 1")
    conn.close()
    assert main(["verify", d]) == errors.EXIT_CODES["corrupted_data"]
    capsys.readouterr()
    assert main(["health", d]) == 2
    assert json.loads(capsys.readouterr().out)["checks"]["last_verify"]["status"] == "failing"


def test_a_store_in_a_directory_reports_the_free_space_of_its_disk(tmp_path):
    with kuradb.open(tmp_path / "s") as s:
        s["n"].put({"a": 1}, id="x")
        h = s.health()
        assert set(h.checks) == {"disk_free", "wal_size", "last_backup", "last_verify", "damage"}
        assert h.checks["disk_free"].status == "ok" and h.checks["disk_free"].value > 0
        h = s.health(thresholds={"disk_free": {"failing": 1 << 60}})
        assert h.checks["disk_free"].status == "failing" and h.status == "failing"
