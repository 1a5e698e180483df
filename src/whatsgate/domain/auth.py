"""Who is calling: API keys (stored hashed) and the principal a request acts as."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from whatsgate.domain.ids import new_id
from whatsgate.domain.organization import Role
from whatsgate.domain.session import Session

API_KEY_PREFIX = "wg_"


def new_api_key() -> str:
    """A fresh API key (shown once to its owner; only its hash is stored)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """SHA-256 of the key. Keys carry 256 random bits, so a fast hash is safe here (a slow
    password hash would only slow every request down)."""
    return hashlib.sha256(key.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


@dataclass(eq=False, slots=True, kw_only=True)
class ApiKey:
    id: str = field(default_factory=new_id)
    organization_id: str
    user_id: str
    name: str = "default"
    key_hash: str
    #: The first characters of the key, to tell keys apart in a list.
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @classmethod
    def issue(
        cls, *, organization_id: str, user_id: str, at: datetime, name: str = "default"
    ) -> tuple[ApiKey, str]:
        """A new key record and the plaintext key (to show once)."""
        plaintext = new_api_key()
        record = cls(
            organization_id=organization_id,
            user_id=user_id,
            name=name,
            key_hash=hash_api_key(plaintext),
            prefix=plaintext[:10],
            created_at=at,
        )
        return record, plaintext

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The user a request or socket acts as, inside exactly one organization.

    ``operator`` marks the server operator's bootstrap key: it may create organizations.
    """

    user_id: str
    organization_id: str
    role: Role
    operator: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def can_see(self, session: Session) -> bool:
        """Admins see every session of their organization; agents those owned by or shared
        with them. Nothing is ever visible across organizations."""
        return session.organization_id == self.organization_id and session.visible_to(
            self.user_id, is_admin=self.is_admin
        )
