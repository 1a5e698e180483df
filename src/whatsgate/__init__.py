"""whatsgate: a WhatsApp gateway for Python backends.

    from whatsgate import Settings, WhatsGate

    async with WhatsGate.open(Settings(engine="sandbox")) as gate:
        session = await gate.create_session("sales", start=True)

The names below load on first use, so importing a part of whatsgate (its domain, its fakes
in ``whatsgate.testing``) does not load the server's dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from whatsgate.domain.errors import WhatsgateError
    from whatsgate.entrypoints.facade import WhatsGate
    from whatsgate.entrypoints.settings import Settings

__all__ = ["Settings", "WhatsGate", "WhatsgateError"]

_LAZY = {
    "Settings": "whatsgate.entrypoints.settings",
    "WhatsGate": "whatsgate.entrypoints.facade",
    "WhatsgateError": "whatsgate.domain.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'whatsgate' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
