"""The MediaStore contract, run on the filesystem store and the in-memory one, plus what
only a filesystem can get wrong (paths, atomic writes)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from whatsgate.adapters.media import FilesystemMediaStore
from whatsgate.domain.errors import InvalidInput
from whatsgate.ports.media import MediaStore
from whatsgate.testing import MemoryMediaStore


@pytest.fixture(params=["filesystem", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MediaStore]:
    if request.param == "filesystem":
        yield FilesystemMediaStore(tmp_path / "media")
    else:
        yield MemoryMediaStore()


async def test_put_then_get_returns_the_bytes(store: MediaStore) -> None:
    await store.put("s1/m1", b"\x00bytes\xff")
    assert await store.get("s1/m1") == b"\x00bytes\xff"
    assert await store.get("s1/m2") is None


async def test_put_replaces_what_was_there(store: MediaStore) -> None:
    await store.put("s1/m1", b"old and longer")
    await store.put("s1/m1", b"new")
    assert await store.get("s1/m1") == b"new"


async def test_delete_prefix_removes_a_sessions_media_only(store: MediaStore) -> None:
    await store.put("s1/m1", b"a")
    await store.put("s1/m2", b"b")
    await store.put("s10/m1", b"c")
    await store.put("s2/m1", b"d")
    await store.delete_prefix("s1/")
    assert [await store.get(k) for k in ("s1/m1", "s1/m2", "s10/m1", "s2/m1")] == [
        None,
        None,
        b"c",
        b"d",
    ]


@pytest.mark.parametrize(
    "key",
    ["../escape", "/etc/passwd", "s1/../../x", "s1/.hidden", "", "s1//m1", "s1/m1/", "a\\b", "é"],
)
async def test_keys_cannot_leave_the_root(tmp_path: Path, key: str) -> None:
    store = FilesystemMediaStore(tmp_path / "media")
    with pytest.raises(InvalidInput):
        await store.put(key, b"x")
    with pytest.raises(InvalidInput):
        await store.get(key)
    assert not (tmp_path / "escape").exists()


async def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "media"
    root.mkdir()
    os.symlink(outside, root / "s1")
    store = FilesystemMediaStore(root)
    with pytest.raises(InvalidInput):
        await store.put("s1/m1", b"x")
    assert list(outside.iterdir()) == []


async def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path) -> None:
    root = tmp_path / "media"
    store = FilesystemMediaStore(root)
    await store.put("s1/m1", b"a" * 100_000)
    await store.put("s1/m1", b"b" * 10)
    assert sorted(p.name for p in (root / "s1").iterdir()) == ["m1"]
    assert (root / "s1" / "m1").read_bytes() == b"b" * 10


async def test_a_failed_write_keeps_the_old_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "media"
    store = FilesystemMediaStore(root)
    await store.put("s1/m1", b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        await store.put("s1/m1", b"new")
    monkeypatch.undo()
    assert await store.get("s1/m1") == b"old"
    assert sorted(p.name for p in (root / "s1").iterdir()) == ["m1"]


async def test_delete_prefix_removes_emptied_folders_and_refuses_bad_prefixes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "media"
    store = FilesystemMediaStore(root)
    await store.put("s1/m1", b"a")
    await store.put("s2/m1", b"b")
    await store.delete_prefix("s1/")
    assert sorted(p.name for p in root.iterdir()) == ["s2"]
    await store.delete_prefix("nothing-here/")
    with pytest.raises(InvalidInput):
        await store.delete_prefix("../")
    assert await store.get("s2/m1") == b"b"
