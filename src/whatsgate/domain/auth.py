"""Who is calling: API keys (stored hashed) and the principal a request acts as."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from whatsgate.domain.errors import NotAuthenticated
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


# -- short-lived bearer tokens ---------------------------------------------------------------

BEARER_TOKEN_PREFIX = "wgt_"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(secret: bytes, *, user_id: str, organization_id: str, expires_at: datetime) -> str:
    """A bearer token for a user: its claims and their HMAC-SHA256 under the server secret.

    Stateless, so it cannot be revoked: keep it short-lived. The user is looked up again on
    use (``Authenticate`` reuses the answer for a few seconds), so a deleted user's tokens
    stop working within that time.
    """
    claims = {"u": user_id, "o": organization_id, "exp": int(expires_at.timestamp())}
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    mac = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    return f"{BEARER_TOKEN_PREFIX}{body}.{mac}"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    organization_id: str
    expires_at: datetime


def read_token(secret: bytes, token: str, now: datetime) -> TokenClaims:
    """The claims of a token this server signed and that has not expired, or
    ``NotAuthenticated``."""
    if not token.startswith(BEARER_TOKEN_PREFIX):
        raise NotAuthenticated("Not a bearer token.")
    body, _, mac = token.removeprefix(BEARER_TOKEN_PREFIX).partition(".")
    expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not mac or not hmac.compare_digest(mac, expected):
        raise NotAuthenticated("The token is not valid.")
    try:
        claims = json.loads(_unb64(body))
        expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
        parsed = TokenClaims(str(claims["u"]), str(claims["o"]), expires_at)
    except (ValueError, KeyError, TypeError) as exc:
        raise NotAuthenticated("The token is not valid.") from exc
    if parsed.expires_at <= now:
        raise NotAuthenticated("The token has expired; ask for a new one.")
    return parsed
