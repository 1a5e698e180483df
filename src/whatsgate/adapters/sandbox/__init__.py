"""The sandbox engine: a simulated WhatsApp for demos, development and CI (no network)."""

from whatsgate.adapters.sandbox.credentials import Credentials, CredentialStore
from whatsgate.adapters.sandbox.engine import (
    INBOUND_TYPES,
    ConnectionState,
    InboundSpec,
    Outbound,
    SandboxConnection,
    SandboxEngine,
    SandboxSettings,
)

__all__ = [
    "INBOUND_TYPES",
    "ConnectionState",
    "CredentialStore",
    "Credentials",
    "InboundSpec",
    "Outbound",
    "SandboxConnection",
    "SandboxEngine",
    "SandboxSettings",
]
