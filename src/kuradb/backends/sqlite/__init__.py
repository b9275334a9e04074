"""The SQLite backend (the default): a store is a directory holding ``kura.db`` and ``blobs/``."""
