"""Django's own cache test suite (``BaseCacheTests``, 54 tests) against ``kuradb.contrib.django.KuraCache``.

At collection time the pinned Django source distribution is fetched with pip into a cache
directory outside the repository (``$XDG_CACHE_HOME/kuradb-test``, else ``~/.cache/kuradb-test``),
checked against its SHA-256, and ``tests/cache/`` (the suite, its models and helpers) is
extracted from it; nothing of Django's is kept in this repository. BaseCacheTests then runs as
Django's own backends run it (compare ``FileBasedCacheTests``), in three configurations: a cache
directory, memory only, and Redis as L2 in front of a directory. If the source cannot be had,
the module fails under CI=true and is skipped otherwise, saying why.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

import pytest

DJANGO = "5.2.19"      # the test extra pins the same version (pyproject.toml)
SHA256 = "ad03d8abc51dbff95ebf34b27123cf0c26a3b62db7ba0cd520783686362533d1"
SUITE_FILES = ("__init__.py", "tests.py", "models.py", "closeable_cache.py", "failing_cache.py",
               "liberal_backend.py")


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kuradb-test"


def _suite() -> Path:
    """The directory holding Django's ``cache`` test package, fetched and extracted once."""
    root = _cache_dir()
    target = root / f"django-{DJANGO}-tests"
    if all((target / "cache" / name).exists() for name in SUITE_FILES):
        return target
    root.mkdir(parents=True, exist_ok=True)
    sdist = root / f"django-{DJANGO}.tar.gz"
    if not sdist.exists():
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
                               "--no-deps", f"django=={DJANGO}", "-d", str(root)],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not sdist.exists():
            _unavailable(f"cannot download the Django {DJANGO} source distribution for its cache test suite: "
                         f"{done.stderr.strip()[-500:]}")
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SHA256:
        sdist.unlink()
        _unavailable(f"{sdist} has SHA-256 {digest}, not the pinned {SHA256}: deleted, try again")
    staging = Path(tempfile.mkdtemp(dir=root))
    with tarfile.open(sdist) as tar:
        for name in SUITE_FILES:
            member = tar.getmember(f"django-{DJANGO}/tests/cache/{name}")
            data = tar.extractfile(member)
            assert data is not None
            (staging / "cache").mkdir(exist_ok=True)
            (staging / "cache" / name).write_bytes(data.read())
    try:
        os.replace(staging, target)      # another run may have got there first: either copy will do
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


django = pytest.importorskip("django", reason="pip install 'kuradb[test]' to run Django's cache test suite")
if django.__version__ != DJANGO:
    _unavailable(f"Django's cache test suite is pinned to Django {DJANGO}; Django {django.__version__} is "
                 f"installed (pip install 'kuradb[test]')")
sys.path.insert(0, str(_suite()))

import django_settings  # noqa: E402

django_settings.configure()

from django.conf import settings  # noqa: E402
from django.core.cache import caches  # noqa: E402
from django.test import TestCase, override_settings  # noqa: E402
from django.test.signals import setting_changed  # noqa: E402
from django.test.utils import (  # noqa: E402
    setup_databases,
    setup_test_environment,
    teardown_databases,
    teardown_test_environment,  # noqa: E402
)

override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, "cache"]).enable()   # Poll, the suite's model

from cache.tests import BaseCacheTests, caches_setting_for_tests  # noqa: E402

BACKEND = "kuradb.contrib.django.KuraCache"


@pytest.fixture(scope="module", autouse=True)
def django_test_database():
    """What Django's test runner does around a run: the test environment and a test database."""
    setup_test_environment()
    names = setup_databases(verbosity=0, interactive=False)
    yield
    teardown_databases(names, verbosity=0)
    teardown_test_environment()


class _KuraCacheTests(BaseCacheTests):
    """Every alias of the suite (default, prefix, v2, custom_key, cull, ...) shares one location per test,
    as FileBasedCacheTests' aliases share one directory."""

    options: dict = {}
    on_disk = True

    def setUp(self) -> None:
        super().setUp()
        self.dirname = tempfile.mkdtemp() if self.on_disk else ""
        for params in settings.CACHES.values():
            params["LOCATION"] = self.dirname
            params["OPTIONS"] = {**params.get("OPTIONS", {}), **self.options}
        setting_changed.send(self.__class__, setting="CACHES", enter=False)

    def tearDown(self) -> None:
        super().tearDown()                  # cache.clear()
        caches["default"].cache.close()      # the kuradb.Cache the aliases shared
        if self.dirname:
            shutil.rmtree(self.dirname)


@override_settings(CACHES=caches_setting_for_tests(BACKEND=BACKEND))
class KuraCacheDiskTests(_KuraCacheTests, TestCase):
    pass


@override_settings(CACHES=caches_setting_for_tests(BACKEND=BACKEND))
class KuraCacheMemoryTests(_KuraCacheTests, TestCase):
    on_disk = False


@override_settings(CACHES=caches_setting_for_tests(BACKEND=BACKEND))
class KuraCacheRedisTests(_KuraCacheTests, TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        import redis

        try:
            redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
        except redis.RedisError:
            message = "Redis at 127.0.0.1:6379 is not reachable; start it with: redis-server --daemonize yes"
            if os.environ.get("CI") == "true":
                raise AssertionError(message) from None
            raise __import__("unittest").SkipTest(message) from None
        super().setUpClass()

    def setUp(self) -> None:
        self.options = {"redis_url": "redis://127.0.0.1:6379/0", "namespace": f"kuradb-test-{uuid.uuid4().hex[:12]}"}
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()      # clear() emptied this test's namespace in Redis
