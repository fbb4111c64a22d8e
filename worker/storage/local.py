"""Results in a local directory (``AUDIO_STORE`` a path or ``file:///abs/path``): the embedded
default. The download is written into the directory itself under a hidden ``.part`` name,
fsynced, and renamed into place, so a reader never sees half a file."""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping
from pathlib import Path

from worker.storage.resultstore import Purged, StorageError, Stored

PART_MAX_AGE = 3600.0  # a partial download older than this belongs to no live worker


def is_partial(name: str) -> bool:
    return name.startswith(".") and name.endswith(".part")


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging_dir = root

    def describe(self) -> str:
        return str(self.root.resolve())

    def put(
        self,
        path: Path,
        name: str,
        *,
        sha256: str,
        size: int,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> Stored:
        target = (self.root / name).resolve()
        if target.parent != self.root.resolve() or "/" in name or name.startswith("."):
            raise StorageError(f"refused to store {name!r} outside {self.describe()}")
        try:
            os.replace(path, target)
        except OSError as exc:
            raise StorageError(f"cannot move the result into {self.describe()}: {exc}") from None
        return Stored(location=str(target), file=str(target))

    def download_url(self, location: str, ttl: int) -> str | None:
        return None

    def delete(self, location: str) -> None:
        target = Path(location).resolve()
        if target.parent != self.root.resolve():
            raise StorageError(f"{location!r} is not a result in {self.describe()}")
        try:
            target.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {location}: {exc}") from None

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{os.getpid()}.part"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StorageError(f"AUDIO_STORE {self.describe()} is not writable: {exc}") from None

    def purge(self, older_than: float, keep: Collection[str]) -> Purged:
        report = Purged()
        if not self.root.is_dir():
            return report
        now = time.time()
        with os.scandir(self.root) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                name = entry.name
                st = entry.stat(follow_symlinks=False)
                if is_partial(name):
                    expired = st.st_mtime < now - PART_MAX_AGE
                else:
                    expired = st.st_mtime < older_than and name.rsplit(".", 1)[0] not in keep
                if not expired:
                    continue
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue  # another worker sharing the directory got there first
                report.names.append(name)
                report.bytes += st.st_size
        return report
