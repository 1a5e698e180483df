"""ContactRepository: lookup by phone JID or LID, merge-and-save, search with pagination."""

from __future__ import annotations

from tests.contract.builders import add_session, at, contact, phone, seed
from tests.contract.conftest import Backend
from whatsgate.domain.jid import Jid


async def test_save_many_and_merge_update(backend: Backend) -> None:
    world = await seed(backend.uow)
    lid = Jid("271600000009", "lid")
    only_lid = contact(world, lid, push_name="Zé")
    others = [contact(world, phone(n)) for n in range(3)]
    async with backend.uow() as uow:
        await uow.contacts.save_many([only_lid, *others])
        await uow.commit()
    async with backend.uow() as uow:
        found = await uow.contacts.get_by_jid(world.session_id, lid)
        assert found is not None
        assert found.merge(at(5), phone_jid=phone(9), name="José")
        await uow.contacts.save(found)
        await uow.commit()
    async with backend.uow() as uow:
        by_phone = await uow.contacts.get_by_jid(world.session_id, phone(9))
        by_lid = await uow.contacts.get_by_jid(world.session_id, lid)
        page = await uow.contacts.search(world.session_id, limit=10)
    assert by_phone is not None and by_lid is not None
    assert by_phone.id == by_lid.id == only_lid.id
    assert (by_phone.jid, by_phone.lid, by_phone.name, by_phone.push_name) == (
        phone(9),
        lid,
        "José",
        "Zé",
    )
    assert by_phone.updated_at == at(5)
    assert len(page.items) == 4  # merged, never duplicated


async def test_lookup_is_per_session(backend: Backend) -> None:
    world = await seed(backend.uow)
    other = await add_session(backend.uow, world, "Other")
    async with backend.uow() as uow:
        await uow.contacts.save(contact(world, phone(1)))
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.contacts.get_by_jid(world.session_id, phone(1)) is not None
        assert await uow.contacts.get_by_jid(other.id, phone(1)) is None
        assert (await uow.contacts.search(other.id)).items == []


async def test_search_text_case_and_accents_and_pages(backend: Backend) -> None:
    world = await seed(backend.uow)
    people = [
        contact(world, phone(1), name="JOÃO Silva"),
        contact(world, phone(2), push_name="joão_p"),
        contact(world, phone(3), business_name="Padaria do João"),
        contact(world, phone(4), name="Maria"),
        contact(world, phone(5), name="100% Maria"),
    ]
    async with backend.uow() as uow:
        await uow.contacts.save_many(people)
        await uow.commit()
    async with backend.uow() as uow:
        joao = await uow.contacts.search(world.session_id, text="joão")
        by_number = await uow.contacts.search(world.session_id, text=phone(4).user[-6:])
        percent = await uow.contacts.search(world.session_id, text="100%")
        underscore = await uow.contacts.search(world.session_id, text="o_p")
        first = await uow.contacts.search(world.session_id, limit=2)
        assert first.next_cursor is not None
        second = await uow.contacts.search(world.session_id, cursor=first.next_cursor, limit=2)
        assert second.next_cursor is not None
        third = await uow.contacts.search(world.session_id, cursor=second.next_cursor, limit=2)
    assert {c.id for c in joao.items} == {people[0].id, people[1].id, people[2].id}
    assert [c.id for c in by_number.items] == [people[3].id]
    assert [c.id for c in percent.items] == [people[4].id]  # % is a character, not a wildcard
    assert [c.id for c in underscore.items] == [people[1].id]
    ids = [c.id for c in first.items + second.items + third.items]
    assert ids == sorted(c.id for c in people)
    assert third.next_cursor is None


async def test_get_many_finds_by_phone_or_lid_once_each_in_id_order(backend: Backend) -> None:
    world = await seed(backend.uow)
    other = await add_session(backend.uow, world, "Other")
    lid = Jid("271600000007", "lid")
    both = contact(world, phone(1), lid=lid)
    by_phone = contact(world, phone(2))
    elsewhere = contact(world, phone(3))
    elsewhere.session_id = other.id
    async with backend.uow() as uow:
        await uow.contacts.save_many([both, by_phone, contact(world, phone(4)), elsewhere])
        await uow.commit()
    async with backend.uow() as uow:
        # Asked by both its addresses, twice: still one contact.
        found = await uow.contacts.get_many(
            world.session_id, [lid, phone(1), phone(2), phone(2), phone(3), phone(5)]
        )
        assert await uow.contacts.get_many(world.session_id, []) == []
    assert [c.id for c in found] == sorted([both.id, by_phone.id])
    assert next(c for c in found if c.id == both.id).lid == lid


async def test_get_many_answers_copies_and_sees_the_units_own_writes(backend: Backend) -> None:
    world = await seed(backend.uow)
    async with backend.uow() as uow:
        await uow.contacts.save(contact(world, phone(1), name="Ana"))
        await uow.commit()
    async with backend.uow() as uow:
        [ana] = await uow.contacts.get_many(world.session_id, [phone(1)])
        ana.name = "changed, not saved"
        await uow.contacts.save(contact(world, phone(2)))
        again = await uow.contacts.get_many(world.session_id, [phone(1), phone(2)])
    assert [c.name for c in again if c.jid == phone(1)] == ["Ana"]
    assert {c.jid for c in again} == {phone(1), phone(2)}


async def test_get_many_takes_more_jids_than_one_statement_may_bind(backend: Backend) -> None:
    world = await seed(backend.uow)
    phones = [Jid(f"55669{n:08d}", Jid.USER_SERVER) for n in range(9000)]
    lids = [Jid(f"2716{n:08d}", Jid.LID_SERVER) for n in range(9000)]
    stored = [contact(world, p, lid=lid) for p, lid in list(zip(phones, lids, strict=True))[::90]]
    async with backend.uow() as uow:
        await uow.contacts.save_many(stored)
        await uow.commit()
    # 18,000 JIDs, bound twice (jid IN, lid IN): 36,000 values, past PostgreSQL's 32,767
    # arguments per query (asyncpg) and SQLite's usual 32,766 variables.
    async with backend.uow() as uow:
        found = await uow.contacts.get_many(world.session_id, phones + lids)
    assert [c.id for c in found] == sorted(c.id for c in stored)
