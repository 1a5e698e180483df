"""Settings, from ``WHATSGATE_*`` environment variables (or arguments)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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
