"""A full disk: StorageFull, nothing committed is lost, and writes resume when space returns."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

import kuradb
from kuradb import errors


@pytest.fixture
def tiny_disk(tmp_path):
    """A 512 KiB tmpfs (needs root and permission to mount; skipped with a message otherwise)."""
    mountpoint = tmp_path / f"tiny-{uuid.uuid4().hex[:8]}"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mountpoint)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the disk-full test needs it")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_full_disk_raises_storage_full_and_loses_nothing(tiny_disk):
    store_dir = tiny_disk / "store"
    ballast = tiny_disk / "ballast"
    written = {}
    with kuradb.open(store_dir) as s:
        c = s["c"]
        ballast.write_bytes(b"\0" * 64 * 1024)  # room to give back later
        with pytest.raises(errors.StorageFull) as info:
            for i in range(100_000):
                c.put({"i": i, "pad": "x" * 2000}, id=f"k{i}")
                written[f"k{i}"] = i
        assert info.value.code == "storage_full"
        assert len(written) > 10
        with pytest.raises(errors.StorageFull):
            s.blobs.put(os.urandom(200 * 1024))
        assert not os.listdir(store_dir / "blobs" / "tmp")  # no partial temp file left behind
        for id, i in written.items():
            assert c.get(id)["i"] == i
        ballast.unlink()
        c.put({"after": True}, id="after")
    with kuradb.open(store_dir) as s:
        c = s["c"]
        assert c.get("after")["after"] is True
        for id, i in written.items():
            assert c.get(id)["i"] == i
        positions = [ch.position for ch in s.changes()]
        assert positions == list(range(1, len(positions) + 1))
