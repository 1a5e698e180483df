from __future__ import annotations

from typing import Protocol


class MediaStore(Protocol):
    """Media bytes by key (a filesystem by default)."""

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every key that starts with ``prefix`` (a session's media on delete)."""
        ...
