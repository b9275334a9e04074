from __future__ import annotations

import os
import sys

import pytest

import kuradb

sys.path.insert(0, os.path.dirname(__file__))  # tests import their helpers (reference.py) by name


@pytest.fixture
def store(tmp_path):
    with kuradb.open(tmp_path / "store") as s:
        yield s


@pytest.fixture
def notes(store):
    return store.collection("notes")


def _service_missing(what: str, start: str) -> None:
    message = f"{what} is not reachable; start it with: {start}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_url():
    """A namespace of our own on the Redis at 127.0.0.1:6379, deleted after the test."""
    import uuid

    redis = pytest.importorskip("redis") if os.environ.get("CI") != "true" else __import__("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        _service_missing("Redis at 127.0.0.1:6379",
                         "redis-server --daemonize yes --port 6379 --save '' --appendonly no")
    namespace = f"kuradb-test-{uuid.uuid4().hex[:12]}"
    yield "redis://127.0.0.1:6379/0", namespace
    for key in client.scan_iter(match=namespace + ":*", count=1000):
        client.delete(key)
    client.close()
