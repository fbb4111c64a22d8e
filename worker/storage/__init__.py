"""Where finished results are kept (``AUDIO_STORE``): a local directory by default, or any
S3-compatible object store. :func:`open_store` builds the one the settings name."""

from __future__ import annotations

from config.settings import Settings
from worker.storage.local import LocalStore
from worker.storage.resultstore import Purged, ResultStore, StorageError, Stored

__all__ = ["LocalStore", "Purged", "ResultStore", "StorageError", "Stored", "open_store"]


def open_store(settings: Settings) -> ResultStore:
    target = settings.store_target()
    if target.kind == "s3":
        from worker.storage.s3 import S3Store  # boto3 is imported only when S3 is used

        return S3Store.from_settings(settings)
    assert target.path is not None
    return LocalStore(target.path)
