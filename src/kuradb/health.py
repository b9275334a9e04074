"""``store.health()``: named checks, each ok / degraded / failing, and the worst of them.

Checks and their default thresholds (``store.health(thresholds={...})``
overrides any of them; ``None`` turns a check off):

    disk_free      free space on the store's filesystem   degraded < 1 GiB, failing < 100 MiB
    wal_size       the write-ahead log's size             degraded > 256 MiB, failing > 1 GiB
                   (PostgreSQL: the server's, where the role may list it; degraded > max_wal_size, failing > 2x)
    last_backup    age of the last successful backup      degraded > 1 day or none recorded
    last_verify    the last ``verify()`` result           failing if it found problems
    damage         damage met by a read or a backup       failing until a verify since finds none
    cache_hit_rate the read cache's hit rate (``cache=``)  degraded < 0.2, once it has seen 1,000 reads
    replicas       a PostgreSQL store's read replicas     degraded when one is skipped (down, not a
                   (``replicas=``)                        standby, lagging past replica_max_lag),
                                                          failing when all are

``backup()`` and ``verify()`` (and ``repair()``, which ends with one) record
their outcome in the store (``meta``) when it is writable, so any process can
see them. A read that meets damage (SQLite reports a damaged page, stored text
that is not UTF-8 or JSON that does not parse) tells the store's backend at
once, at no cost to reads that do not; ``health()`` reports it and records it
in ``meta`` too, as a backup that refuses a damaged store does. A verify that
finds nothing afterwards clears it.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from . import errors

if TYPE_CHECKING:
    from .store import Store

GiB, MiB = 1 << 30, 1 << 20
DEFAULTS: dict[str, Any] = {
    "disk_free": {"degraded": 1 * GiB, "failing": 100 * MiB},
    "wal_size": {"degraded": 256 * MiB, "failing": 1 * GiB},
    "last_backup": {"degraded": 86_400},  # seconds
    "last_verify": {},
    "damage": {},
    "cache_hit_rate": {"degraded": 0.2},
    "replicas": {},
}
CACHE_SAMPLE = 1000   # reads before the hit rate means anything
ORDER = {"ok": 0, "degraded": 1, "failing": 2}


@dataclass(frozen=True)
class Check:
    status: str
    detail: str
    value: Any = None


@dataclass(frozen=True)
class Health:
    """``status`` is the worst check's; ``checks`` maps each check's name to its Check."""

    status: str
    checks: dict[str, Check] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        checks = {k: {"status": c.status, "detail": c.detail, "value": c.value} for k, c in self.checks.items()}
        return {"status": self.status, "checks": checks}


def record(store: Store, key: str, value: dict[str, Any]) -> None:
    """Remember an outcome (last backup, last verify) in the store, if it is writable and has room."""
    if store.read_only:
        return
    try:
        with store.backend.write() as tx:
            tx.set_meta(key, orjson.dumps(value).decode())
    except errors.StorageFull:
        pass    # a full disk: the outcome (a verify's, a backup's) is still returned, just not remembered


def _recorded(store: Store, key: str) -> dict[str, Any] | None:
    try:
        value = store.backend.reader().meta(key)
    except errors.CorruptedData:   # the read noted the damage, which the damage check reports
        return None
    return None if value is None else orjson.loads(value)


def note_damage(store: Store, problem: str) -> None:
    """Damage found by a check (a backup's): health() is failing until a verify finds none."""
    store.backend.note_damage(problem)
    _keep_damage(store)


def _keep_damage(store: Store) -> dict[str, Any] | None:
    """The latest damage seen by this process or recorded by any; this process's is recorded
    (when the store is writable and this thread is not inside a transaction)."""
    seen, recorded = store.backend.damage, _recorded(store, "damage")
    if seen is not None and (recorded is None or recorded["at"] < seen["at"]):
        if not store.read_only and not store.backend.in_transaction():
            try:
                record(store, "damage", seen)
            except errors.KuraError:
                pass   # the write met the damage too (or the lock): it stays known to this process
        return seen
    return recorded


def _thresholds(given: dict[str, Any] | None, engine: dict[str, Any]) -> dict[str, Any]:
    if given is not None and not isinstance(given, dict):
        raise errors.ValidationError(f"thresholds must be a dict of check name -> limits, not {given!r}",
                                     path="thresholds", hint="e.g. thresholds={'disk_free': {'degraded': 2**30}}")
    out: dict[str, Any] = {k: dict(v) for k, v in {**DEFAULTS, **engine}.items()}
    for name, value in (given or {}).items():
        if name not in DEFAULTS:
            raise errors.ValidationError(f"unknown health check {name!r}", path=f"thresholds.{name}",
                                         hint=f"checks are {', '.join(DEFAULTS)}")
        if value is None:
            out[name] = None
            continue
        if not isinstance(value, dict) or not set(value) <= {"degraded", "failing"} or not all(
                type(v) in (int, float) and v >= 0 for v in value.values()):
            raise errors.ValidationError(f"thresholds.{name} must be None or a dict of 'degraded'/'failing'"
                                         f" numbers, not {value!r}", path=f"thresholds.{name}")
        out[name].update(value)
    return out


def _below(value: float, limits: dict[str, Any]) -> str:
    if "failing" in limits and value < limits["failing"]:
        return "failing"
    return "degraded" if "degraded" in limits and value < limits["degraded"] else "ok"


def _above(value: float, limits: dict[str, Any]) -> str:
    if "failing" in limits and value > limits["failing"]:
        return "failing"
    return "degraded" if "degraded" in limits and value > limits["degraded"] else "ok"


def health(store: Store, thresholds: dict[str, Any] | None = None) -> Health:
    described = store.backend.describe()
    limits = _thresholds(thresholds, {"wal_size": described["wal_limits"]} if "wal_limits" in described else {})
    checks: dict[str, Check] = {}
    if limits["disk_free"] is not None and os.path.isdir(store.directory):   # not a server's store (its disk)
        free = shutil.disk_usage(store.directory).free
        checks["disk_free"] = Check(_below(free, limits["disk_free"]), f"{free / GiB:,.1f} GiB free", free)
    size = described.get("wal_bytes")
    if limits["wal_size"] is not None and size is not None:
        checks["wal_size"] = Check(_above(size, limits["wal_size"]), f"write-ahead log {size / MiB:,.1f} MiB", size)
    if limits["last_backup"] is not None:
        last = _recorded(store, "last_backup")
        if last is None:
            status = "degraded" if "degraded" in limits["last_backup"] else "ok"
            checks["last_backup"] = Check(status, "no backup recorded")
        else:
            age = time.time() - last["at"]
            checks["last_backup"] = Check(_above(age, limits["last_backup"]),
                                          f"backup {last['id']} to {last['dest']!r}, {age / 3600:,.1f} h ago", age)
    if limits["last_verify"] is not None:
        last = _recorded(store, "last_verify")
        if last is None:
            checks["last_verify"] = Check("ok", "never verified")
        else:
            age = time.time() - last["at"]
            status = "failing" if last["problems"] else _above(age, limits["last_verify"])
            detail = (f"{last['problems']} problem(s) found" if last["problems"] else "no problem found") + \
                f" {age / 3600:,.1f} h ago"
            checks["last_verify"] = Check(status, detail, last["problems"])
    if limits["damage"] is not None:
        checks["damage"] = _damage_check(store)
    rc = store.read_cache
    if limits["cache_hit_rate"] is not None and rc is not None:
        st = rc.cache.stats()
        reads = st.hits + st.misses
        status = _below(st.hit_rate, limits["cache_hit_rate"]) if reads >= CACHE_SAMPLE else "ok"
        checks["cache_hit_rate"] = Check(status, f"{st.hit_rate:.1%} of {reads:,} cached reads"
                                         + ("" if reads >= CACHE_SAMPLE else " (too few to judge)"), st.hit_rate)
    replicas = described.get("replicas")
    if limits["replicas"] is not None and replicas:
        checks["replicas"] = _replicas_check(replicas)
    worst = max((c.status for c in checks.values()), key=ORDER.__getitem__, default="ok")
    return Health(worst, checks)


def _replicas_check(replicas: list[dict[str, Any]]) -> Check:
    """ok while every replica serves reads; degraded when one is skipped; failing when all are."""
    used = [r for r in replicas if r["state"] == "ok"]
    skipped = [r for r in replicas if r["state"] != "ok"]
    status = "ok" if not skipped else "degraded" if used else "failing"
    detail = f"{len(used)} of {len(replicas)} replica(s) in use"
    if used:
        detail += f", lag up to {max(r['lag_seconds'] or 0 for r in used):g} s"
    for r in skipped:
        detail += f"; {r['url']} skipped: {r['state']}" + (f" ({r['detail']})" if r["detail"] else "")
    return Check(status, detail, replicas)


def known_damage(store: Store) -> str | None:
    """The damage known of the store, if any: met by a read or a backup and not cleared by a verify since,
    or found by the last verify (a backup refuses such a store: a restore would refuse its copy)."""
    verified = _recorded(store, "last_verify")
    if verified is not None and verified["problems"]:
        return f"the last verify found {verified['problems']} problem(s)"
    seen = _keep_damage(store)
    if seen is not None and (verified is None or verified["at"] < seen["at"]):
        return seen["problem"]
    return None


def _damage_check(store: Store) -> Check:
    seen = _keep_damage(store)
    if seen is None:
        return Check("ok", "no damage seen")
    age = f"{(time.time() - seen['at']) / 3600:,.1f} h ago"
    verified = _recorded(store, "last_verify")
    if verified is not None and verified["at"] >= seen["at"] and not verified["problems"]:
        return Check("ok", f"damage was seen {age}; a verify since found none")
    return Check("failing", f"damage seen {age}: {seen['problem']} (run kuradb verify; restore from a backup)",
                 seen["problem"])
