from __future__ import annotations

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

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.requests.append(SentRequest(url, body, dict(headers)))
        answer = self.answers.pop(0) if self.answers else self.default
        if isinstance(answer, DeliveryError):
            raise answer
        return answer
