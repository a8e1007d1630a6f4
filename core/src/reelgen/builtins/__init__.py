"""Built-in plugins (SQLite cache, fsspec storage), loaded through the `reelgen` entry points."""
