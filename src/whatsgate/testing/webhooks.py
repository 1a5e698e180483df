from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from whatsgate.domain.webhook import DeliveryError
from whatsgate.ports.webhooks import WebhookSender


@dataclass(frozen=True, slots=True)
class SentRequest:
    url: str
    body: bytes
    headers: dict[str, str]


class FakeWebhookSender(WebhookSender):
    """Records every POST and answers from a script: each entry of ``answers`` is a status
    code or an exception to raise, used in turn; when they run out, ``default`` answers."""

    def __init__(self, *answers: int | DeliveryError, default: int = 200) -> None:
        self.answers: list[int | DeliveryError] = list(answers)
        self.default = default
        self.requests: list[SentRequest] = []
        self._arrived = asyncio.Condition()

    async def wait_for(self, count: int = 1) -> list[SentRequest]:
        """Wait until ``count`` requests were made (for tests running the worker loop; bound
        it with ``asyncio.timeout``)."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.requests.append(SentRequest(url, body, dict(headers)))
        async with self._arrived:
            self._arrived.notify_all()
        answer = self.answers.pop(0) if self.answers else self.default
        if isinstance(answer, DeliveryError):
            raise answer
        return answer
