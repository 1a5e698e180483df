"""Media bytes as files under a root directory (the data directory by default)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from pathlib import Path

from whatsgate.domain.errors import InvalidInput
from whatsgate.ports.media import MediaStore

#: A key is ``/``-separated segments of letters, digits, ``.``, ``_`` and ``-``, none starting
#: with a dot: no absolute path, no ``..``, no hidden file can be named.
_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){0,7}$")
_PREFIX = re.compile(r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,127}/?){0,8}$")
_TEMP = ".tmp-"


class FilesystemMediaStore(MediaStore):
    """One file per key under ``root``. Writes are atomic (a temporary file in the same
    directory, then a rename), so a reader never sees half a file, even after a crash."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise InvalidInput(f"{key!r} is not a valid media key.", key=key)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidInput(f"{key!r} is not a valid media key.", key=key)
        return path

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        await asyncio.to_thread(_write_atomic, path, bytes(data))

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return await asyncio.to_thread(_read, path)

    async def delete_prefix(self, prefix: str) -> None:
        if not _PREFIX.match(prefix):
            raise InvalidInput(f"{prefix!r} is not a valid media key prefix.", prefix=prefix)
        await asyncio.to_thread(_delete_prefix, self.root, prefix)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=_TEMP, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _delete_prefix(root: Path, prefix: str) -> None:
    folder, _, _ = prefix.rpartition("/")
    base = root / folder if folder else root
    if not base.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(base, topdown=False):
        directory = Path(dirpath)
        for name in filenames:
            key = (directory / name).relative_to(root).as_posix()
            if key.startswith(prefix) and not name.startswith(_TEMP):
                (directory / name).unlink(missing_ok=True)
        if directory != root and f"{directory.relative_to(root).as_posix()}/".startswith(prefix):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only empty folders go
