"""Process metrics in the Prometheus text format.

Written by hand rather than with ``prometheus_client``: a handful of counters and one
histogram do not need a dependency, and a per-app registry (not a process-global one) lets
several apps (tests, the library facade) live in one process without clashing.

Messages in and out and the send latency are measured at the engine boundary
(``MeteredEngine``), so every engine gets them without knowing about metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Media
from whatsgate.ports.engine import (
    ContactInfo,
    EngineConnection,
    EngineEvent,
    EngineListener,
    IncomingMessage,
    NumberCheck,
    OutgoingMessage,
    SendResult,
    SessionRef,
    TypingState,
    WhatsAppEngine,
)
from whatsgate.ports.webhooks import WebhookSender

#: Send latency buckets, in seconds.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    def __init__(self, buckets: Iterable[float]) -> None:
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * len(self.buckets)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1


class Metrics:
    """The counters of one app."""

    def __init__(self) -> None:
        self.messages_in = 0
        self.messages_out = 0
        self.send_failures = 0
        self.webhook_failures = 0
        self.send_latency = Histogram(LATENCY_BUCKETS)

    def webhook_failed(self) -> None:
        self.webhook_failures += 1

    def render(self, *, sessions: Mapping[str, int], outbox_depth: int) -> str:
        """The exposition text, with the gauges read now (``sessions``, ``outbox_depth``)."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        metric("whatsgate_sessions", "gauge", "Sessions by status.")
        for status, count in sorted(sessions.items()):
            lines.append(f'whatsgate_sessions{{status="{_label(status)}"}} {count}')
        metric("whatsgate_messages_total", "counter", "Messages received and sent.")
        lines.append(f'whatsgate_messages_total{{direction="in"}} {self.messages_in}')
        lines.append(f'whatsgate_messages_total{{direction="out"}} {self.messages_out}')
        metric("whatsgate_send_failures_total", "counter", "Send attempts WhatsApp refused.")
        lines.append(f"whatsgate_send_failures_total {self.send_failures}")
        metric("whatsgate_outbox_depth", "gauge", "Messages waiting in the outbox.")
        lines.append(f"whatsgate_outbox_depth {outbox_depth}")
        metric("whatsgate_send_latency_seconds", "histogram", "Time WhatsApp took per send.")
        h = self.send_latency
        for bound, count in zip(h.buckets, h.counts, strict=True):
            lines.append(f'whatsgate_send_latency_seconds_bucket{{le="{bound}"}} {count}')
        lines.append(f'whatsgate_send_latency_seconds_bucket{{le="+Inf"}} {h.count}')
        lines.append(f"whatsgate_send_latency_seconds_sum {h.total}")
        lines.append(f"whatsgate_send_latency_seconds_count {h.count}")
        metric("whatsgate_webhook_failures_total", "counter", "Webhook delivery attempts failed.")
        lines.append(f"whatsgate_webhook_failures_total {self.webhook_failures}")
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MeteredEngine(WhatsAppEngine):
    """Wraps an engine: counts inbound messages and successful sends, times every send."""

    def __init__(self, inner: WhatsAppEngine, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def open(self, ref: SessionRef, listener: EngineListener) -> EngineConnection:
        metrics = self.metrics

        async def counting(event: EngineEvent) -> None:
            await listener(event)
            if isinstance(event, IncomingMessage) and not event.from_me:
                metrics.messages_in += 1

        return MeteredConnection(await self.inner.open(ref, counting), metrics)

    async def forget(self, ref: SessionRef) -> None:
        await self.inner.forget(ref)

    async def close(self) -> None:
        await self.inner.close()


class MeteredConnection(EngineConnection):
    def __init__(self, inner: EngineConnection, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def send(self, message: OutgoingMessage) -> SendResult:
        started = time.perf_counter()
        try:
            result = await self.inner.send(message)
        except Exception:
            self.metrics.send_failures += 1
            raise
        finally:
            self.metrics.send_latency.observe(time.perf_counter() - started)
        self.metrics.messages_out += 1
        return result

    async def mark_read(self, chat: Jid, sender: Jid | None, wa_ids: list[str]) -> None:
        await self.inner.mark_read(chat, sender, wa_ids)

    async def send_typing(self, chat: Jid, state: TypingState) -> None:
        await self.inner.send_typing(chat, state)

    async def check_numbers(self, numbers: list[str]) -> list[NumberCheck]:
        return await self.inner.check_numbers(numbers)

    async def request_history(self, chat: Jid | None, count: int) -> None:
        await self.inner.request_history(chat, count)

    async def download_media(self, media: Media) -> bytes:
        return await self.inner.download_media(media)

    async def pair_phone(self, phone: str) -> str:
        return await self.inner.pair_phone(phone)

    async def contacts(self) -> list[ContactInfo]:
        return await self.inner.contacts()

    async def logout(self) -> None:
        await self.inner.logout()

    async def disconnect(self) -> None:
        await self.inner.disconnect()


class MeteredWebhookSender(WebhookSender):
    """Wraps a webhook sender: every attempt that does not get a 2xx counts as a failure."""

    def __init__(self, inner: WebhookSender, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            status = await self.inner.send(url, body, headers)
        except Exception:
            self.metrics.webhook_failed()
            raise
        if not 200 <= status < 300:
            self.metrics.webhook_failed()
        return status
