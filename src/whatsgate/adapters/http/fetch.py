"""Media given by URL: fetched once, bounded in size and time, never from private networks
unless the operator allows it (the same rule as webhooks)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

from whatsgate.domain.errors import InvalidInput, MediaTooLarge

FETCH_TIMEOUT = 30.0


class MediaFetcher:
    def __init__(self, *, max_bytes: int, allow_private: bool = False) -> None:
        self.max_bytes = max_bytes
        self.allow_private = allow_private

    async def fetch(self, url: str) -> tuple[bytes, str | None]:
        """The bytes at ``url`` and the content type the server gave."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput("media.url must be an http(s) URL.", field="media.url")
        if not self.allow_private:
            await _refuse_private(parts.hostname, parts.port or 443)
        chunks: list[bytes] = []
        size = 0
        try:
            async with (
                httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise InvalidInput(
                        f"Fetching media.url answered {response.status_code}.",
                        field="media.url",
                    )
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise MediaTooLarge(max_bytes=self.max_bytes)
                    chunks.append(chunk)
                mime = response.headers.get("content-type")
        except httpx.HTTPError as exc:
            raise InvalidInput(f"media.url could not be fetched: {exc}", field="media.url") from exc
        return b"".join(chunks), mime.split(";")[0].strip() if mime else None


async def _refuse_private(host: str, port: int) -> None:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidInput(f"media.url host {host!r} does not resolve.", field="media.url") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise InvalidInput("media.url points to a private or local address.", field="media.url")
