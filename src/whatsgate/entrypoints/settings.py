"""Settings, from ``WHATSGATE_*`` environment variables (or arguments)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: ``database_url`` for an in-memory store: nothing survives the process (tests, demos).
MEMORY_DATABASE = "memory://"


class Settings(BaseSettings):
    """Everything an operator can set. Every field reads ``WHATSGATE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="WHATSGATE_", extra="ignore")

    engine: Literal["neonize", "sandbox"] = "neonize"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("./whatsgate-data")
    #: SQLAlchemy URL; default SQLite in the data directory; ``memory://`` keeps nothing.
    database_url: str | None = None
    #: The operator's admin key; when unset, the first start makes one and stores it.
    admin_api_key: SecretStr | None = None
    redis_url: str | None = None
    #: The neonize engine connects to WhatsApp through this proxy (``socks5://host:port`` or
    #: ``http://host:port``); whatsmeow ignores HTTPS_PROXY and friends.
    neonize_proxy: str | None = None
    #: Webhook URLs on loopback or private networks are refused unless this is on.
    webhooks_allow_private: bool = False
    #: Lifetime of the bearer tokens of ``POST /api/v1/auth/token``.
    token_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    #: How long a start (and the QR endpoint) waits for the first QR.
    qr_wait_seconds: float = Field(default=20.0, ge=0, le=120)
    #: No scan within this time after the first QR stops the session.
    qr_timeout_seconds: float = Field(default=180.0, gt=0)
    log_level: str = "info"
    #: Origins browsers may call the API from (CORS); ``*`` for any.
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    #: Waits of the outbox between attempts of a failed send (the last one repeats), and
    #: the attempts in all before the message is ``failed``. JSON list in the environment.
    outbox_retry_seconds: list[float] = Field(
        default_factory=lambda: [10.0, 30.0, 60.0, 120.0, 300.0], min_length=1
    )
    outbox_max_attempts: int = Field(default=5, ge=1)

    # -- the sandbox engine only (seconds; shorten them for tests and demos) ----------------
    #: Validity of the first QR code, then of each next one (WhatsApp: 60 s, then 20 s).
    sandbox_qr_first: float = Field(default=60.0, gt=0)
    sandbox_qr_next: float = Field(default=20.0, gt=0)
    #: After a send: the "delivered" receipt, and the "read" receipt (both from the send).
    sandbox_delivered_after: float = Field(default=1.0, ge=0)
    sandbox_read_after: float = Field(default=3.0, ge=0)
    #: Messages of history pushed on pairing (0: none), spread over ``sandbox_history_days``.
    sandbox_history_messages: int = Field(default=0, ge=0, le=100_000)
    sandbox_history_days: int = Field(default=40, ge=1)
    #: The phone number that pairs when a scan names none.
    sandbox_phone: str = "5511999990001"

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if any(step < 0 for step in self.outbox_retry_seconds):
            raise ValueError("outbox_retry_seconds cannot hold a negative wait")
        if self.sandbox_read_after < self.sandbox_delivered_after:
            raise ValueError("sandbox_read_after cannot come before sandbox_delivered_after")
        return self

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.expanduser().resolve() / 'whatsgate.db'}"

    @property
    def in_memory(self) -> bool:
        return self.database == MEMORY_DATABASE

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin-api-key"

    @property
    def secret_file(self) -> Path:
        return self.data_dir / "token-secret"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def token_secret(settings: Settings) -> bytes:
    """The HMAC secret of bearer tokens: kept in the data directory so tokens survive a
    restart; in memory (a fresh one per process) when nothing is stored."""
    if settings.in_memory:
        return secrets.token_bytes(32)
    path = settings.secret_file
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    secret = secrets.token_bytes(32)
    write_private(path, secret.hex())
    return secret
