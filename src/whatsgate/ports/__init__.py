"""Ports: the interfaces the use cases need, as ``typing.Protocol`` classes."""

from whatsgate.ports.clock import Clock
from whatsgate.ports.engine import EngineConnection, EngineListener, WhatsAppEngine
from whatsgate.ports.media import MediaStore
from whatsgate.ports.publisher import EventPublisher
from whatsgate.ports.repositories import Page, UnitOfWork, UnitOfWorkFactory

__all__ = [
    "Clock",
    "EngineConnection",
    "EngineListener",
    "EventPublisher",
    "MediaStore",
    "Page",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "WhatsAppEngine",
]
