"""kuradb (蔵, "storehouse"): one store for JSON documents with history, blobs and a change log."""
from __future__ import annotations

from . import errors
from .collection import Collection
from .encoding import BlobRef
from .records import Change, Record
from .repository import Repository
from .store import Store, open

__version__ = "0.1.0"

__all__ = ["BlobRef", "Change", "Collection", "Record", "Repository", "Store", "errors", "open",
           "__version__"]
