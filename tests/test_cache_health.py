"""A Redis the cache cannot use is said so: one warning on the "kuradb.cache" logger, ``Cache.health()``
and the L2 ``state`` in ``stats()``; the cache keeps working with its own tiers.

Before, a wrong database index or an unreachable Redis at start went unnoticed: caching silently
became local-only, with only ``errors: 2`` in the statistics.
"""
from __future__ import annotations

import logging
import signal
import time

import pytest
from cache_worker import free_port, start_redis

import kuradb
from kuradb import errors
from kuradb.health import Health


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kuradb.cache" and r.levelno == logging.WARNING]


def _use(c: kuradb.Cache, rounds: int = 5) -> None:
    """Calls that each try Redis again once its back-off has passed."""
    for i in range(rounds):
        c.set(f"k{i}", i)
        assert c.get(f"k{i}") == i
        time.sleep(0.06)


def test_a_database_redis_does_not_have_is_refused_loudly_once(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="kuradb.cache"):
        with kuradb.Cache(tmp_path, redis_url="redis://127.0.0.1:6379/99") as c:
            _use(c)                                             # the cache works from its own tiers
            h = c.health()
            assert isinstance(h, Health) and h.status == "failing" and not h.ok
            check = h.checks["redis"]
            assert check.status == "failing" and check.value == "refused"
            assert "redis://127.0.0.1:6379/99" in check.detail and "out of range" in check.detail
            assert h.checks["disk"].status == "ok"
            l2 = c.stats().tiers["l2"]
            assert l2.state == "refused" and l2.errors >= 1
    warned = _warnings(caplog)
    assert len(warned) == 1, warned
    assert "redis://127.0.0.1:6379/99" in warned[0] and "out of range" in warned[0] and "health()" in warned[0]


def test_an_unreachable_redis_is_degraded_warned_once_and_recovers(tmp_path, caplog):
    port = free_port()
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    with caplog.at_level(logging.INFO, logger="kuradb.cache"):
        with kuradb.Cache(None, redis_url=url) as c:
            _use(c)
            h = c.health()
            assert h.status == "degraded" and h.checks["redis"].value == "unreachable"
            assert c.stats().tiers["l2"].state == "unreachable"
            assert "s3cret" not in h.checks["redis"].detail and ":***@" in h.checks["redis"].detail
            server = start_redis(port, tmp_path)
            try:
                deadline = time.monotonic() + 10
                while c.health().status != "ok" and time.monotonic() < deadline:
                    time.sleep(0.1)                             # health() tries Redis again itself
                assert c.health().checks["redis"].status == "ok"
                assert c.stats().tiers["l2"].state == "ok"
                c.set("shared", 1)
                with kuradb.Cache(None, redis_url=url) as other:
                    assert other.get("shared") == 1             # Redis is the L2 again
                server.send_signal(signal.SIGKILL)              # and an outage later on is said once too
                server.wait()
                _use(c)
                assert c.health().checks["redis"].value == "unreachable"
            finally:
                server.kill()
                server.wait()
    warned = _warnings(caplog)
    assert len(warned) == 2 and all("unreachable" in w and "s3cret" not in w for w in warned), warned
    infos = [r.getMessage() for r in caplog.records if r.name == "kuradb.cache" and r.levelno == logging.INFO]
    assert any("reachable again" in m for m in infos)


def test_a_working_redis_is_ok(redis_url):
    url, ns = redis_url
    with kuradb.Cache(None, redis_url=url, namespace=ns) as c:
        h = c.health()
        assert h.ok and h.checks["redis"].detail == f"Redis at {url}"
        assert set(h.checks) == {"redis"} and c.stats().tiers["l2"].state == "ok"
    with kuradb.Cache(None) as c:
        assert c.health().ok and c.health().checks == {}
        assert c.stats().tiers["l2"].state == "ok" and c.stats().tiers["l3"].state == "off"


def test_a_redis_url_that_is_not_one_is_a_validation_error():
    with pytest.raises(errors.ValidationError, match="notaurl") as info:
        kuradb.Cache(None, redis_url="notaurl")
    assert info.value.path == "redis_url"
