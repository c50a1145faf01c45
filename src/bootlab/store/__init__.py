"""The local results store (SQLite + compressed logs): every boot, trial, matrix, comparison and note."""

from bootlab.store.db import Ref, Store, open_store, parse_ref, record_boot, store_dir

__all__ = ["Ref", "Store", "open_store", "parse_ref", "record_boot", "store_dir"]
