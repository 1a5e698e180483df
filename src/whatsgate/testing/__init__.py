"""Fakes for testing code that uses whatsgate: in-memory storage, a scriptable engine, a
clock that moves only when told, and a publisher that records what it is given.

    from whatsgate.testing import FakeClock, FakeEngine, MemoryStore, MemoryUnitOfWork
"""

from whatsgate.adapters.memory import MemoryMediaStore, MemoryStore, MemoryUnitOfWork
from whatsgate.testing.clock import FakeClock, settle
from whatsgate.testing.engine import FakeConnection, FakeEngine, Sent
from whatsgate.testing.publisher import RecordingPublisher
from whatsgate.testing.webhooks import FakeWebhookSender, SentRequest

__all__ = [
    "FakeClock",
    "FakeConnection",
    "FakeEngine",
    "FakeWebhookSender",
    "MemoryMediaStore",
    "MemoryStore",
    "MemoryUnitOfWork",
    "RecordingPublisher",
    "Sent",
    "SentRequest",
    "settle",
]
