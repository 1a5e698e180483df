"""Auth use cases on the in-memory fakes: bootstrap, keys, tokens, who a credential is."""

from __future__ import annotations

from datetime import timedelta

import pytest

from whatsgate.domain.auth import hash_api_key
from whatsgate.domain.errors import AlreadyExists, InvalidInput, NotAuthenticated
from whatsgate.domain.organization import Role
from whatsgate.testing import FakeClock, MemoryStore, MemoryUnitOfWork
from whatsgate.usecases.auth import (
    Authenticate,
    Bootstrap,
    BootstrapCommand,
    CreateOrganization,
    CreateOrganizationCommand,
    CreateUser,
    CreateUserCommand,
    IssueToken,
)

SECRET = b"s" * 32


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def uow_of(store: MemoryStore) -> MemoryUnitOfWork:
    return MemoryUnitOfWork(store)


async def test_bootstrap_is_idempotent_and_registers_a_chosen_key_hashed(
    store: MemoryStore, clock: FakeClock
) -> None:
    bootstrap = Bootstrap(lambda: uow_of(store), clock)
    first = await bootstrap(BootstrapCommand())
    assert first.new_api_key is not None and first.admin.role is Role.ADMIN
    again = await bootstrap(BootstrapCommand())
    assert again.new_api_key is None and again.organization.id == first.organization.id
    chosen = "wg_chosen-by-the-operator-123"
    await bootstrap(BootstrapCommand(admin_api_key=chosen))
    await bootstrap(BootstrapCommand(admin_api_key=chosen))
    hashes = [k.key_hash for k in store.api_keys.values()]
    assert sorted(hashes) == sorted([hash_api_key(first.new_api_key), hash_api_key(chosen)])
    assert len(store.organizations) == 1 and len(store.users) == 1
    with pytest.raises(InvalidInput):
        await bootstrap(BootstrapCommand(admin_api_key="short"))


async def test_the_operator_is_an_admin_of_the_default_organization_only(
    store: MemoryStore, clock: FakeClock
) -> None:
    def uow() -> MemoryUnitOfWork:
        return uow_of(store)

    boot = await Bootstrap(uow, clock)(BootstrapCommand())
    authenticate = Authenticate(uow, clock, SECRET)
    operator = await authenticate(boot.new_api_key)
    assert operator.operator and operator.is_admin
    globex = await CreateOrganization(uow, clock)(CreateOrganizationCommand(name="Globex"))
    other_admin = await authenticate(globex.admin_api_key)
    assert other_admin.is_admin and not other_admin.operator
    assert other_admin.organization_id == globex.organization.id
    agent = await CreateUser(uow, clock)(
        CreateUserCommand(organization_id=boot.organization.id, name="Bea")
    )
    as_agent = await authenticate(agent.api_key)
    assert (as_agent.role, as_agent.operator) == (Role.AGENT, False)
    with pytest.raises(AlreadyExists):
        await CreateOrganization(uow, clock)(CreateOrganizationCommand(name="Globex"))


async def test_tokens_expire_and_only_this_servers_tokens_count(
    store: MemoryStore, clock: FakeClock
) -> None:
    def uow() -> MemoryUnitOfWork:
        return uow_of(store)

    boot = await Bootstrap(uow, clock)(BootstrapCommand())
    authenticate = Authenticate(uow, clock, SECRET)
    principal = await authenticate(boot.new_api_key)
    issued = await IssueToken(SECRET, clock, timedelta(minutes=10))(principal)
    assert issued.expires_at == clock.now() + timedelta(minutes=10)
    assert await authenticate(issued.token) == principal
    elsewhere = Authenticate(uow, clock, b"x" * 32)
    with pytest.raises(NotAuthenticated):
        await elsewhere(issued.token)
    await clock.advance(600)
    with pytest.raises(NotAuthenticated, match="expired"):
        await authenticate(issued.token)


async def test_revoked_keys_and_removed_users_no_longer_authenticate(
    store: MemoryStore, clock: FakeClock
) -> None:
    def uow() -> MemoryUnitOfWork:
        return uow_of(store)

    boot = await Bootstrap(uow, clock)(BootstrapCommand())
    agent = await CreateUser(uow, clock)(
        CreateUserCommand(organization_id=boot.organization.id, name="Bea")
    )
    authenticate = Authenticate(uow, clock, SECRET)
    token = (await IssueToken(SECRET, clock)(await authenticate(agent.api_key))).token
    key = next(k for k in store.api_keys.values() if k.user_id == agent.user.id)
    key.revoked_at = clock.now()
    with pytest.raises(NotAuthenticated):
        await authenticate(agent.api_key)
    del store.users[agent.user.id]
    with pytest.raises(NotAuthenticated):
        await authenticate(token)
    for nothing in (None, "", "   "):
        with pytest.raises(NotAuthenticated):
            await authenticate(nothing)


async def test_a_cached_principal_lasts_the_ttl_then_revocation_and_removal_count(
    store: MemoryStore, clock: FakeClock
) -> None:
    reads = 0

    def uow() -> MemoryUnitOfWork:
        nonlocal reads
        reads += 1
        return uow_of(store)

    boot = await Bootstrap(uow, clock)(BootstrapCommand())
    agent = await CreateUser(uow, clock)(
        CreateUserCommand(organization_id=boot.organization.id, name="Bea")
    )
    authenticate = Authenticate(uow, clock, SECRET, cache_ttl=timedelta(seconds=5))
    principal = await authenticate(agent.api_key)
    token = (await IssueToken(SECRET, clock)(principal)).token
    assert await authenticate(token) == principal
    reads = 0
    assert await authenticate(agent.api_key) == principal
    assert await authenticate(f"  {token} ") == principal
    assert reads == 0  # both served from the cache
    # A revoked key and a removed user still pass until the TTL runs out, not after.
    key = next(k for k in store.api_keys.values() if k.user_id == agent.user.id)
    key.revoked_at = clock.now()
    del store.users[agent.user.id]
    await clock.advance(4.9)
    assert await authenticate(agent.api_key) == principal
    assert await authenticate(token) == principal
    await clock.advance(0.1)
    with pytest.raises(NotAuthenticated, match="API key is not valid"):
        await authenticate(agent.api_key)
    with pytest.raises(NotAuthenticated, match="no longer exists"):
        await authenticate(token)
    # Refusals are not cached, and a bad signature is refused even with the user cached.
    with pytest.raises(NotAuthenticated):
        await authenticate(token[:-2] + "xx")
    with pytest.raises(NotAuthenticated):
        await authenticate("wg_unknown-key")


async def test_the_principal_cache_is_bounded_and_keeps_the_newest(
    store: MemoryStore, clock: FakeClock
) -> None:
    reads = 0

    def uow() -> MemoryUnitOfWork:
        nonlocal reads
        reads += 1
        return uow_of(store)

    boot = await Bootstrap(uow, clock)(BootstrapCommand())
    keys = [boot.new_api_key]
    for name in ("Bea", "Cid"):
        made = await CreateUser(uow, clock)(
            CreateUserCommand(organization_id=boot.organization.id, name=name)
        )
        keys.append(made.api_key)
    authenticate = Authenticate(uow, clock, SECRET, cache_ttl=timedelta(seconds=5), cache_size=2)
    for key in keys:
        await authenticate(key)
    reads = 0
    await authenticate(keys[2])
    await authenticate(keys[1])
    assert reads == 0
    await authenticate(keys[0])  # dropped to make room: read again
    assert reads == 1


async def test_without_a_ttl_nothing_is_cached(store: MemoryStore, clock: FakeClock) -> None:
    def uow() -> MemoryUnitOfWork:
        return uow_of(store)

    boot = await Bootstrap(uow, clock)(BootstrapCommand())
    authenticate = Authenticate(uow, clock, SECRET)
    assert boot.new_api_key is not None
    await authenticate(boot.new_api_key)
    next(iter(store.api_keys.values())).revoked_at = clock.now()
    with pytest.raises(NotAuthenticated):
        await authenticate(boot.new_api_key)
