"""The tiered cache: ``kuradb.Cache`` on its own, and the pieces it is made of (see docs/CACHE.md)."""
from __future__ import annotations

from .core import Cache, saved_stats
from .source import CachedSource
from .stats import CacheStats, TierStats

__all__ = ["Cache", "CachedSource", "CacheStats", "TierStats", "saved_stats"]
