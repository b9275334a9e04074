"""Checks and edits that tests in tests/ and tests/sqlite/ both use (blob seeks, backup manifests)."""
from __future__ import annotations

import io
import json

from kuradb import backups


def check_seeks(f, data):
    """A seekable blob reader returns the right bytes wherever it is moved."""
    assert f.seekable()
    assert f.read(100) == data[:100]
    f.seek(len(data) // 2)
    assert f.read(1000) == data[len(data) // 2:len(data) // 2 + 1000]
    f.seek(-10, io.SEEK_END)
    assert f.read() == data[-10:] and f.tell() == len(data)
    f.seek(5)
    assert f.read(5) == data[5:10]
    f.seek(0)
    assert f.read() == data


def only_backup(dest):
    """The directory of the one backup in ``dest``."""
    (info,) = backups.list(dest)
    return dest / info.id


def rewrite_manifest(d, manifest):
    """Edit a manifest as an attacker who knows the format would: its checksum matches."""
    from kuradb.backups import files

    manifest["checksum"] = files._checksum(manifest)
    (d / "manifest.json").write_text(json.dumps(manifest))
