from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class WebhookSender(Protocol):
    """POSTs one webhook delivery attempt."""

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body`` to ``url`` and return the answer's status code (any status, 2xx or
        not). Raises ``DeliveryError`` when no answer came (network error, timeout) and
        ``DestinationRefused`` when the URL leads to an address that is not allowed."""
        ...
