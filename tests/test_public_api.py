"""The names ``whatsgate`` exports: sorted, and each importable."""

from __future__ import annotations

import pytest

import whatsgate


def test_all_is_sorted_and_every_name_imports() -> None:
    assert whatsgate.__all__ == sorted(whatsgate.__all__)
    for name in whatsgate.__all__:
        assert getattr(whatsgate, name) is not None, name
        namespace: dict[str, object] = {}
        exec(f"from whatsgate import {name}", namespace)
        assert namespace[name] is getattr(whatsgate, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        getattr(whatsgate, "NoSuchThing")  # noqa: B009
