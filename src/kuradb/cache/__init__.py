"""The tiered cache: ``kuradb.Cache`` on its own, and the pieces it is made of (see docs/CACHE.md)."""
from __future__ import annotations

from .core import Cache
from .source import CachedSource
from .stats import CacheStats, TierStats, saved_stats

__all__ = ["Cache", "CachedSource", "CacheStats", "TierStats", "saved_stats"]
