"""The API on the in-memory stack and the FakeEngine, through Litestar's test client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import AsyncTestClient

from whatsgate.adapters.clock import SystemClock
from whatsgate.adapters.memory import MemoryStore
from whatsgate.entrypoints.app import RUNTIME, create_app
from whatsgate.entrypoints.container import build_container
from whatsgate.entrypoints.runtime import Runtime
from whatsgate.entrypoints.settings import MEMORY_DATABASE, Settings
from whatsgate.testing import FakeEngine, FakeWebhookSender

ADMIN_KEY = "wg_test-operator-key-0123456789"


@dataclass
class Api:
    """A running app, its client, and the fakes under it."""

    app: Litestar
    client: AsyncTestClient[Litestar]
    engine: FakeEngine
    store: MemoryStore

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state[RUNTIME]
        return runtime

    async def call(self, method: str, path: str, key: str | None = ADMIN_KEY, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers.setdefault("Authorization", f"Bearer {key}")
        return await self.client.request(method, path, headers=headers, **kwargs)


def make_app(
    tmp_path: Path,
    fake: FakeEngine,
    store: MemoryStore,
    announce: Callable[[str], None] | None = None,
    webhooks: FakeWebhookSender | None = None,
    **settings: Any,
) -> Litestar:
    values: dict[str, Any] = {
        "database_url": MEMORY_DATABASE,
        "data_dir": tmp_path,
        "admin_api_key": ADMIN_KEY,
        "qr_wait_seconds": 2,
        **settings,
    }
    config = Settings(**values)
    container = build_container(config)
    if config.engine != "sandbox":
        container.engines.engine.override(providers.Object(fake))
    container.storage.memory.override(providers.Object(store))
    container.realtime.http_webhook_sender.override(
        providers.Object(webhooks or FakeWebhookSender())
    )
    return create_app(config, container=container, announce=announce)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(SystemClock())


@pytest.fixture
async def api(tmp_path: Path, engine: FakeEngine, store: MemoryStore) -> AsyncIterator[Api]:
    app = make_app(tmp_path, engine, store)
    async with AsyncTestClient(app) as client:
        yield Api(app, client, engine, store)


@pytest.fixture
async def sandbox_api(tmp_path: Path, engine: FakeEngine, store: MemoryStore) -> AsyncIterator[Api]:
    """The API over the real SandboxEngine (``--engine sandbox``), storage in memory."""
    app = make_app(tmp_path, engine, store, engine="sandbox")
    async with AsyncTestClient(app) as client:
        yield Api(app, client, engine, store)


@dataclass
class Tenant:
    """An organization seen through its admin's key, with an agent."""

    organization_id: str
    admin_key: str
    agent_id: str
    agent_key: str


async def new_user(api: Api, admin_key: str, name: str, role: str = "agent") -> tuple[str, str]:
    r = await api.call("POST", "/api/v1/users", key=admin_key, json={"name": name, "role": role})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["api_key"]


async def new_tenant(api: Api, name: str) -> Tenant:
    r = await api.call("POST", "/api/v1/organizations", json={"name": name})
    assert r.status_code == 201, r.text
    body = r.json()
    agent_id, agent_key = await new_user(api, body["admin_api_key"], f"{name} agent")
    return Tenant(body["id"], body["admin_api_key"], agent_id, agent_key)


async def new_session(api: Api, key: str = ADMIN_KEY, name: str = "sales") -> dict[str, Any]:
    r = await api.call("POST", "/api/v1/sessions", key=key, json={"name": name})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body
