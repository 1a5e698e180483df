"""``WebhookSender`` over httpx, with the destination checked where it matters: at connect.

The host name is resolved here, every address it resolves to is checked (unless private
addresses are allowed), and the request goes to the checked address with the original
``Host`` header and TLS server name, so a DNS answer that changes between the check and the
connection (DNS rebinding) cannot lead a delivery into the private network. Redirects are
not followed (a 3xx fails the delivery).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping

import httpx

from whatsgate.domain.webhook import DeliveryError, DestinationRefused, is_public_address
from whatsgate.ports.webhooks import WebhookSender

#: Host name and port to the addresses it resolves to.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (the system resolver)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class HttpxWebhookSender(WebhookSender):
    """POSTs deliveries with httpx: ``timeout`` per attempt (``connect_timeout`` to connect),
    no redirects, no proxy from the environment; unless ``allow_private``, only to public
    addresses, checked after resolution."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver = resolve,
    ) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,
            transport=transport,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _pin(self, url: httpx.URL) -> tuple[httpx.URL, dict[str, str]]:
        """The URL to connect to (its host replaced by a checked address) and the request
        extensions that keep TLS checking the original name."""
        host = url.host
        if is_public_address(host):
            return url, {}
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
            addresses = await self.resolver(host, port)
        except OSError as exc:
            raise DeliveryError(f"Cannot resolve {host}: {exc}.") from exc
        if not addresses:
            raise DeliveryError(f"Cannot resolve {host}.")
        refused = [a for a in addresses if not is_public_address(a)]
        if refused:
            raise DestinationRefused(
                f"{host} resolves to {refused[0]}, a loopback, private or reserved address.",
                host=host,
            )
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        return url.copy_with(host=addresses[0]), extensions

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        target = httpx.URL(url)
        request_headers = dict(headers)
        extensions: dict[str, str] = {}
        if not self.allow_private:
            pinned, extensions = await self._pin(target)
            if pinned != target:
                request_headers["Host"] = target.netloc.decode("ascii")
            target = pinned
        request = self.client.build_request(
            "POST", target, content=body, headers=request_headers, extensions=extensions
        )
        try:
            response = await self.client.send(request, stream=True)
            await response.aclose()
        except httpx.TransportError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)) from exc
        return response.status_code
