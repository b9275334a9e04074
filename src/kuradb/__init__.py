"""kuradb (蔵, "storehouse"): one store for JSON documents with history, blobs and a change log."""
from __future__ import annotations

from . import backups, errors
from .backups import BackupInfo
from .backups.transfer import copy
from .cache import Cache, CachedSource, CacheStats
from .collection import Collection
from .encoding import BlobRef
from .integrity import Report
from .readcache import CacheConfig
from .records import Change, Record
from .repository import Repository
from .store import Store, migrate, open

__version__ = "0.1.0"

__all__ = ["BackupInfo", "BlobRef", "Cache", "CacheConfig", "CachedSource", "CacheStats", "Change", "Collection",
           "Record", "Report", "Repository", "Store", "backups", "copy", "errors", "migrate", "open", "__version__"]
