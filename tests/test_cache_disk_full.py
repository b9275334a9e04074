"""The cache on a full disk: StorageFull, a failed write changes nothing, the cache goes on serving.

Before: ``set()`` raised a raw ``apsw.FullError`` and so did ``close()``; opening a cache on a
full disk said ``CorruptedData``, "delete the cache directory". Tested on a real 1 MiB tmpfs
(needs the right to mount, as root in CI has), and with ENOSPC injected under SQLite (an apsw
VFS whose writes fail), which needs nothing special.
"""
from __future__ import annotations

import logging
import os
import subprocess

import apsw
import pytest

import kuradb
from kuradb import errors

VALUE = "x" * 2000


@pytest.fixture
def small_disk(tmp_path):
    path = tmp_path / "small"
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must be able to mount a small tmpfs for the disk-full tests: {done.stderr.strip()}")
        pytest.skip("mounting a small tmpfs needs root; the injected-ENOSPC tests below cover the rest")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path) -> object:
    """Write a file until the disk is full; returns it open (close and delete it to give the space back)."""
    f = open(path, "wb", buffering=0)
    try:
        while True:
            f.write(b"\0" * 4096)
    except OSError as e:
        assert e.errno == 28
    return f


def _forget_memory(c: kuradb.Cache) -> None:
    for tier in (c.l1, c.l2):
        if tier is not None:
            for key in list(tier.data):
                tier.pop(key)


def _fill_cache(c: kuradb.Cache) -> tuple[list[str], errors.StorageFull]:
    written = []
    for i in range(100_000):
        try:
            c.set(f"k{i}", VALUE)
        except errors.StorageFull as e:
            return written, e
        written.append(f"k{i}")
    raise AssertionError("the disk never filled")


def _assert_nothing_changes_and_reads_go_on(c: kuradb.Cache, written: list[str]) -> None:
    failing = f"k{len(written)}"
    assert c.get(failing) is None                           # the write that failed changed nothing
    with pytest.raises(errors.StorageFull, match="is full"):
        c.set("kept", "new")
    with pytest.raises(errors.StorageFull):
        c.delete("kept")
    with pytest.raises(errors.StorageFull):
        c.set_ttl("kept", 60)
    with pytest.raises(errors.StorageFull):
        c.incr("count")
    with pytest.raises(errors.StorageFull):
        c.clear()
    assert c.get("kept") == "old" and c.get("count") == 1
    assert all(c.get(k) == VALUE for k in written)            # from memory
    _forget_memory(c)
    assert c.get("kept") == "old" and all(c.get(k) == VALUE for k in written)   # and from disk
    assert c.get_or_set("loaded", lambda: "computed") == "computed"    # a loader's value still reaches its caller
    h = c.health()
    assert h.status == "failing" and h.checks["disk"].value == "full" and "StorageFull" in h.checks["disk"].detail
    tiers = c.stats().tiers
    assert tiers["l3"].state == "full" and tiers["l3"].errors >= 6


def _attempt(c: kuradb.Cache, model: dict, op: str, key: str, arg=None) -> bool:
    """Run one write; on a real full disk a small one may still fit. Either it happened (the model
    follows) or it raised StorageFull and changed nothing (the model stays). True if it failed."""
    try:
        if op == "set":
            c.set(key, arg)
            model[key] = arg
        elif op == "delete":
            c.delete(key)
            model.pop(key, None)
        elif op == "incr":
            assert c.incr(key) == model[key] + 1
            model[key] += 1
    except errors.StorageFull:
        return True
    return False


def test_a_full_disk_is_storage_full_changes_nothing_and_reads_go_on(small_disk, caplog):
    directory = small_disk / "cache"
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * 192 * 1024)           # space to give back later
    c = kuradb.Cache(directory)
    model = {"kept": "old", "count": 1}
    for k, v in model.items():
        c.set(k, v)
    with caplog.at_level(logging.WARNING, logger="kuradb.cache"):
        written, e = _fill_cache(c)
        assert e.code == "storage_full" and len(written) > 20
        model.update(dict.fromkeys(written, VALUE))
        failures = 1
        for i in range(200):
            failures += _attempt(c, model, "set", f"big{i}", VALUE)
            failures += _attempt(c, model, "set", "kept", f"new{i}")
            failures += _attempt(c, model, "incr", "count")
            failures += _attempt(c, model, "delete", written[i % len(written)])
            for k in ("kept", "count", written[i % len(written)]):
                assert c.get(k) == model.get(k)
        assert failures > 200                           # the disk stayed full
        assert c.get_or_set("loaded", lambda: "computed") == "computed"   # a loader's value reaches its caller
        h = c.health()
        assert h.status == "failing" and h.checks["disk"].value == "full"
        assert c.stats().tiers["l3"].state == "full" and c.stats().tiers["l3"].errors >= 200
        _forget_memory(c)
        assert all(c.get(k) == v for k, v in model.items())     # the disk agrees with what was acknowledged
        c.close()                                       # no exception: its statistics are what it gives up
    full_warnings = [r for r in caplog.records if r.name == "kuradb.cache" and "is full" in r.getMessage()]
    assert len(full_warnings) == 2                      # once when it filled, once at close

    with pytest.raises(errors.StorageFull, match="disk is full"):   # a new cache cannot be made
        kuradb.Cache(small_disk / "another")
    ballast.unlink()
    with kuradb.Cache(directory) as c:                  # space is back: every acknowledged write is there
        assert all(c.get(k) == v for k, v in model.items())
        c.set("kept", "newest")
        assert c.health().status == "ok" and c.stats().tiers["l3"].state == "ok"
    with kuradb.Cache(directory) as c:
        assert c.get("kept") == "newest"


def test_opening_a_cache_on_a_full_disk_is_storage_full(small_disk):
    directory = small_disk / "cache"
    with kuradb.Cache(directory) as c:
        c.set("k", "v")
    ballast = _fill(small_disk / "ballast")
    try:
        with pytest.raises(errors.StorageFull, match="disk is full") as info:
            kuradb.Cache(directory)                     # its -shm file cannot be made (SQLITE_IOERR_SHMSIZE)
        assert not isinstance(info.value, errors.CorruptedData) and "delete" not in str(info.value)
        os.makedirs(small_disk / "new")
        with pytest.raises(errors.StorageFull):
            kuradb.Cache(small_disk / "new")
    finally:
        ballast.close()
        os.unlink(small_disk / "ballast")
    with kuradb.Cache(directory) as c:
        assert c.get("k") == "v"


# -- ENOSPC injected under SQLite ------------------------------------------------------------------


class _FullFile(apsw.VFSFile):
    def __init__(self, vfs: _FullVFS, name, flags) -> None:
        self._vfs = vfs
        super().__init__(vfs.base, name, flags)

    def xWrite(self, data, offset) -> None:   # noqa: N802 - apsw's name
        if self._vfs.full:
            raise apsw.FullError("injected: no space left on device")
        super().xWrite(data, offset)


class _FullVFS(apsw.VFS):
    """The default VFS, except that while ``full`` every write fails with SQLITE_FULL."""

    def __init__(self) -> None:
        self.full = False
        self.base = apsw.vfs_names()[0]
        super().__init__("kuradb-test-full", self.base, makedefault=True)

    def xOpen(self, name, flags):   # noqa: N802 - apsw's name
        return _FullFile(self, name, flags)


@pytest.fixture
def enospc():
    vfs = _FullVFS()
    yield vfs
    vfs.unregister()


def test_injected_enospc_is_storage_full_and_changes_nothing(tmp_path, enospc):
    c = kuradb.Cache(tmp_path)
    c.set("kept", "old")
    c.set("count", 1)
    written = [f"k{i}" for i in range(30)]
    for k in written:
        c.set(k, VALUE)
    enospc.full = True
    with pytest.raises(errors.StorageFull):
        c.set(f"k{len(written)}", VALUE)
    _assert_nothing_changes_and_reads_go_on(c, written)
    c.close()
    enospc.full = False
    with kuradb.Cache(tmp_path) as c:
        assert c.get("kept") == "old" and all(c.get(k) == VALUE for k in written)


def test_an_increment_redis_took_is_never_undone_by_the_disk_copy(tmp_path, enospc, redis_url):
    """incr through Redis happens first; if the disk then cannot take the new value, its old row is not served."""
    import redis

    url, ns = redis_url
    with kuradb.Cache(tmp_path, redis_url=url, namespace=ns) as c:
        c.set("n", 1)
        enospc.full = True
        assert c.incr("n") == 2                       # Redis took it: not an error
        assert c.stats().tiers["l3"].state == "full"
        _forget_memory(c)
        redis.Redis.from_url(url).delete(ns + ":n")   # and now Redis loses it
        assert c.get("n") is None                     # a miss, not the stale 1 from the disk
        enospc.full = False
        c.set("other", 1)                             # the first write that succeeds deletes the stale row
        assert c.health().status == "ok"
    with kuradb.Cache(tmp_path) as c:
        assert c.get("n") is None and c.get("other") == 1
