from __future__ import annotations

from whatsgate.ports.media import MediaStore


class MemoryMediaStore(MediaStore):
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def put(self, key: str, data: bytes) -> None:
        self.blobs[key] = bytes(data)

    async def get(self, key: str) -> bytes | None:
        return self.blobs.get(key)

    async def delete_prefix(self, prefix: str) -> None:
        for key in [k for k in self.blobs if k.startswith(prefix)]:
            del self.blobs[key]
