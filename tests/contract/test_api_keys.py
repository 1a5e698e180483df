"""ApiKeyRepository: found by hash only, listed per user, revocation kept."""

from __future__ import annotations

from tests.contract.builders import T0, at, seed
from tests.contract.conftest import Backend
from whatsgate.domain.auth import ApiKey, hash_api_key


async def test_keys_are_found_by_their_hash_and_listed_per_user(backend: Backend) -> None:
    world = await seed(backend.uow)
    first, plaintext = ApiKey.issue(organization_id=world.org_id, user_id=world.admin.id, at=T0)
    second, _ = ApiKey.issue(
        organization_id=world.org_id, user_id=world.admin.id, at=at(1), name="ci"
    )
    async with backend.uow() as uow:
        await uow.api_keys.add(first)
        await uow.api_keys.add(second)
        await uow.commit()
    async with backend.uow() as uow:
        found = await uow.api_keys.get_by_hash(hash_api_key(plaintext))
        assert await uow.api_keys.get_by_hash(hash_api_key("wg_other")) is None
        listed = await uow.api_keys.for_user(world.admin.id)
        assert await uow.api_keys.for_user("nobody") == []
    assert found is not None
    assert (found.id, found.user_id, found.prefix, found.created_at) == (
        first.id,
        world.admin.id,
        plaintext[:10],
        T0,
    )
    assert [k.name for k in listed] == ["default", "ci"]


async def test_a_revoked_key_stays_revoked_and_uncommitted_keys_vanish(backend: Backend) -> None:
    world = await seed(backend.uow)
    key, plaintext = ApiKey.issue(organization_id=world.org_id, user_id=world.admin.id, at=T0)
    async with backend.uow() as uow:
        await uow.api_keys.add(key)
        await uow.commit()
    key.revoked_at = at(5)
    async with backend.uow() as uow:
        await uow.api_keys.save(key)
        await uow.commit()
    lost, _ = ApiKey.issue(organization_id=world.org_id, user_id=world.admin.id, at=T0)
    async with backend.uow() as uow:
        await uow.api_keys.add(lost)  # no commit
    async with backend.uow() as uow:
        stored = await uow.api_keys.get_by_hash(hash_api_key(plaintext))
        keys = await uow.api_keys.for_user(world.admin.id)
    assert stored is not None and stored.revoked_at == at(5) and not stored.is_active
    assert [k.id for k in keys] == [key.id]
