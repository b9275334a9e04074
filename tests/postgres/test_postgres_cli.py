"""The command line takes a PostgreSQL URL wherever it takes a store directory."""
from __future__ import annotations

import json

from kuradb.backends import shown
from kuradb.cli import main


def test_a_password_is_never_shown():
    assert shown("postgresql://u:s3cret@h:5/db?schema=x") == "postgresql://u:***@h:5/db?schema=x"
    assert shown("postgresql://u@h/db") == "postgresql://u@h/db" and shown("/data/store") == "/data/store"


def test_init_put_get_history_stats_verify_on_a_url(pg, capsys):
    url = pg.location("cli")
    assert main(["init", url]) == 0
    assert main(["put", url, "notes", '{"x": 1}', "--id", "a"]) == 0
    assert main(["put", url, "notes", '{"x": 2}', "--id", "a"]) == 0
    capsys.readouterr()
    assert main(["--json", "get", url, "notes", "a"]) == 0
    assert json.loads(capsys.readouterr().out)["content"] == {"x": 2}
    assert main(["--json", "history", url, "notes", "a"]) == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == [1, 2]
    assert main(["--json", "stats", url]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["engine"], stats["records"], stats["versions"], stats["position"]) == ("postgresql", 1, 2, 2)
    assert main(["--json", "verify", url]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
