"""Organizations, users, API keys and bearer tokens: who may call, and as whom."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from whatsgate.domain.auth import (
    BEARER_TOKEN_PREFIX,
    ApiKey,
    Principal,
    hash_api_key,
    read_token,
    sign_token,
)
from whatsgate.domain.errors import (
    AlreadyExists,
    InvalidInput,
    NotAuthenticated,
    OrganizationNotFound,
    PermissionDenied,
)
from whatsgate.domain.organization import Organization, Role, User
from whatsgate.ports.clock import Clock
from whatsgate.ports.repositories import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("whatsgate.auth")

#: The organization made on first start; its admins are the server's operators.
DEFAULT_ORGANIZATION = "default"

#: How long the server reuses a resolved principal (``Authenticate(cache_ttl=…)``): revoking
#: a key or removing a user takes effect within this time.
PRINCIPAL_CACHE_TTL = timedelta(seconds=5)


async def _default_organization(uow: UnitOfWork) -> Organization | None:
    return await uow.organizations.get_by_name(DEFAULT_ORGANIZATION)


async def _new_user(uow: UnitOfWork, user: User, at: datetime, key_name: str) -> str:
    """Store a user and a first API key; returns the plaintext key (shown once)."""
    await uow.users.add(user)
    record, plaintext = ApiKey.issue(
        organization_id=user.organization_id, user_id=user.id, at=at, name=key_name
    )
    await uow.api_keys.add(record)
    return plaintext


# -- bootstrap ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapCommand:
    #: The operator's chosen admin key (``WHATSGATE_ADMIN_API_KEY``); None lets us make one.
    admin_api_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapResult:
    organization: Organization
    admin: User
    #: A key made now (first start without a chosen key): show it once, store it safely.
    new_api_key: str | None = None


class Bootstrap:
    """First start: the ``default`` organization and its admin, the operator.

    - Idempotent: a second start finds them and changes nothing.
    - A chosen admin key is registered (hashed) for the default admin if not known yet.
    - Without a chosen key, the first start issues one and returns it; later starts don't.
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def __call__(self, command: BootstrapCommand) -> BootstrapResult:
        now = self.clock.now()
        new_key: str | None = None
        async with self.uow() as uow:
            organization = await _default_organization(uow)
            if organization is None:
                organization = Organization(name=DEFAULT_ORGANIZATION, created_at=now)
                await uow.organizations.add(organization)
                admin = User(
                    organization_id=organization.id, name="admin", role=Role.ADMIN, created_at=now
                )
                await uow.users.add(admin)
                if command.admin_api_key is None:
                    record, new_key = ApiKey.issue(
                        organization_id=organization.id, user_id=admin.id, at=now, name="bootstrap"
                    )
                    await uow.api_keys.add(record)
                log.info("bootstrap: created the default organization and its admin")
            else:
                admins = [u for u in await uow.users.in_organization(organization.id) if u.is_admin]
                admin = admins[0]
            if command.admin_api_key is not None:
                key = command.admin_api_key.strip()
                if len(key) < 16:
                    raise InvalidInput("The admin API key needs at least 16 characters.")
                digest = hash_api_key(key)
                known = await uow.api_keys.get_by_hash(digest)
                if known is None:
                    await uow.api_keys.add(
                        ApiKey(
                            organization_id=organization.id,
                            user_id=admin.id,
                            name="bootstrap",
                            key_hash=digest,
                            prefix=key[:10],
                            created_at=now,
                        )
                    )
            await uow.commit()
        return BootstrapResult(organization=organization, admin=admin, new_api_key=new_key)


# -- organizations and users ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateOrganizationCommand:
    name: str
    admin_name: str = "admin"
    admin_email: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewOrganization:
    organization: Organization
    admin: User
    admin_api_key: str


class CreateOrganization:
    """The operator opens a new tenant.

    - Names are unique (``already_exists``).
    - The organization gets its first admin and that admin's API key, shown once.
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def __call__(self, command: CreateOrganizationCommand) -> NewOrganization:
        now = self.clock.now()
        organization = Organization(name=command.name, created_at=now)
        admin = User(
            organization_id=organization.id,
            name=command.admin_name,
            email=command.admin_email,
            role=Role.ADMIN,
            created_at=now,
        )
        async with self.uow() as uow:
            if await uow.organizations.get_by_name(organization.name) is not None:
                raise AlreadyExists(
                    f"An organization named {organization.name!r} already exists.", field="name"
                )
            await uow.organizations.add(organization)
            key = await _new_user(uow, admin, now, "default")
            await uow.commit()
        log.info("organization %s: created (%s)", organization.id, organization.name)
        return NewOrganization(organization=organization, admin=admin, admin_api_key=key)


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateUserCommand:
    organization_id: str
    name: str
    email: str | None = None
    role: Role = Role.AGENT


@dataclass(frozen=True, slots=True, kw_only=True)
class NewUser:
    user: User
    api_key: str


class CreateUser:
    """Add an admin or an agent to an organization, with a first API key shown once.

    - The email, when given, is unique within the organization (``already_exists``).
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def __call__(self, command: CreateUserCommand) -> NewUser:
        now = self.clock.now()
        user = User(
            organization_id=command.organization_id,
            name=command.name,
            email=command.email,
            role=command.role,
            created_at=now,
        )
        async with self.uow() as uow:
            if await uow.organizations.get(command.organization_id) is None:
                raise OrganizationNotFound(organization_id=command.organization_id)
            if user.email is not None:
                others = await uow.users.in_organization(command.organization_id)
                if any((u.email or "").casefold() == user.email.casefold() for u in others):
                    raise AlreadyExists(
                        f"A user with email {user.email!r} already exists.", field="email"
                    )
            key = await _new_user(uow, user, now, "default")
            await uow.commit()
        log.info("user %s: created in %s as %s", user.id, user.organization_id, user.role)
        return NewUser(user=user, api_key=key)


class ListUsers:
    """The users of one organization, oldest first."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def __call__(self, organization_id: str) -> list[User]:
        async with self.uow() as uow:
            return await uow.users.in_organization(organization_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class IssueApiKeyCommand:
    organization_id: str
    user_id: str
    name: str = "default"


class IssueApiKey:
    """Another API key for a user of the organization (the plaintext is returned once)."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def __call__(self, command: IssueApiKeyCommand) -> str:
        async with self.uow() as uow:
            user = await uow.users.get(command.user_id)
            if user is None or user.organization_id != command.organization_id:
                raise PermissionDenied("No such user in this organization.")
            record, plaintext = ApiKey.issue(
                organization_id=user.organization_id,
                user_id=user.id,
                at=self.clock.now(),
                name=command.name,
            )
            await uow.api_keys.add(record)
            await uow.commit()
        return plaintext


# -- authentication -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BearerToken:
    token: str
    expires_at: datetime


class IssueToken:
    """A short-lived bearer token for the caller (browsers, socket.io clients).

    - It acts as the same user; its lifetime is ``ttl`` (one hour by default).
    """

    def __init__(self, secret: bytes, clock: Clock, ttl: timedelta = timedelta(hours=1)) -> None:
        self.secret = secret
        self.clock = clock
        self.ttl = ttl

    async def __call__(self, principal: Principal) -> BearerToken:
        expires_at = self.clock.now() + self.ttl
        token = sign_token(
            self.secret,
            user_id=principal.user_id,
            organization_id=principal.organization_id,
            expires_at=expires_at,
        )
        return BearerToken(token=token, expires_at=expires_at)


class Authenticate:
    """Who presents this credential: an API key or a bearer token, or ``NotAuthenticated``.

    - API keys are looked up by their hash; a revoked key is refused.
    - Tokens must carry this server's signature and not be expired.
    - The user must still exist: their current role is what counts.
    - Admins of the ``default`` organization are the operator: they may create organizations.
    - With a ``cache_ttl``, a principal once resolved is reused for that long without reading
      the database again (per API key hash, or per user of a token; at most ``cache_size``
      of them). Revoking a key, removing a user or changing their role then takes effect
      within ``cache_ttl``, not at once. A token's signature and expiry are checked on every
      call, and refusals are never cached.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        secret: bytes,
        *,
        cache_ttl: timedelta = timedelta(0),
        cache_size: int = 10_000,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.secret = secret
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        #: key hash or ``token:<user>:<org>`` → (valid until, principal)
        self._cache: dict[str, tuple[datetime, Principal]] = {}

    async def __call__(self, credential: str | None) -> Principal:
        credential = (credential or "").strip()
        if not credential:
            raise NotAuthenticated("Send an API key: Authorization: Bearer <key> or X-Api-Key.")
        now = self.clock.now()
        key_hash: str | None = None
        if credential.startswith(BEARER_TOKEN_PREFIX):
            claims = read_token(self.secret, credential, now)
            user_id, organization_id = claims.user_id, claims.organization_id
            cache_key = f"token:{user_id}:{organization_id}"
        else:
            key_hash = cache_key = hash_api_key(credential)
        cached = self._cache.get(cache_key)
        if cached is not None:
            if cached[0] > now:
                return cached[1]
            del self._cache[cache_key]
        async with self.uow() as uow:
            if key_hash is not None:
                key = await uow.api_keys.get_by_hash(key_hash)
                if key is None or not key.is_active:
                    raise NotAuthenticated("The API key is not valid.")
                user_id, organization_id = key.user_id, key.organization_id
            user = await uow.users.get(user_id)
            if user is None or user.organization_id != organization_id:
                raise NotAuthenticated("The user of this credential no longer exists.")
            default = await _default_organization(uow)
        operator = user.is_admin and default is not None and default.id == organization_id
        principal = Principal(
            user_id=user.id, organization_id=organization_id, role=user.role, operator=operator
        )
        if self.cache_ttl > timedelta(0):
            self._remember(cache_key, principal, now)
        return principal

    def _remember(self, cache_key: str, principal: Principal, now: datetime) -> None:
        if len(self._cache) >= self.cache_size:
            for stale in [k for k, (until, _) in self._cache.items() if until <= now]:
                del self._cache[stale]
            while len(self._cache) >= self.cache_size:  # still full: drop the oldest
                del self._cache[next(iter(self._cache))]
        self._cache[cache_key] = (now + self.cache_ttl, principal)
