"""The Litestar app factory: routes, OpenAPI, errors, and a lifespan that runs whatsgate."""

from __future__ import annotations

import gc
import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from dependency_injector import providers
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag

import whatsgate
from whatsgate.adapters.http.api import route_handlers
from whatsgate.adapters.http.auth import AUTHENTICATOR
from whatsgate.adapters.http.errors import exception_handlers
from whatsgate.adapters.socketio import RealtimeServer
from whatsgate.domain.auth import Principal
from whatsgate.entrypoints.container import Application, build_container, service_names
from whatsgate.entrypoints.runtime import Runtime
from whatsgate.entrypoints.settings import Settings
from whatsgate.ports.repositories import UnitOfWork

RUNTIME = "whatsgate_runtime"

_TAGS = [
    Tag(name="Sessions", description="WhatsApp accounts: create, start, pair (QR or code), stop."),
    Tag(name="Messages", description="Send messages, read one and its media, check numbers."),
    Tag(name="Conversations", description="The inbox: conversations, contacts, history."),
    Tag(name="Events", description="The event log: what socket.io and webhooks carried."),
    Tag(name="Webhooks", description="Signed, retried HTTP deliveries of the events."),
    Tag(name="Users", description="Admins and agents of an organization, and their API keys."),
    Tag(name="Organizations", description="Tenants; only the operator creates them."),
    Tag(name="Auth", description="Short-lived bearer tokens."),
    Tag(name="Operations", description="Health and metrics."),
    Tag(name="Sandbox", description="Only with `--engine sandbox`: play the phone and contacts."),
]


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="whatsgate",
        version=whatsgate.__version__,
        description="A WhatsApp gateway for Python backends. Authenticate with "
        "`Authorization: Bearer <API key or token>` (or `X-Api-Key`). Errors are "
        '`{"error": {"code", "message", "details"}}`. Realtime events: socket.io at '
        "`/socket.io`, and webhooks.",
        path="/schema",
        tags=_TAGS,
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer"),
                "apiKey": SecurityScheme(
                    type="apiKey", name="X-Api-Key", security_scheme_in="header"
                ),
            }
        ),
        security=[{"bearer": []}, {"apiKey": []}],
    )


def create_app(
    settings: Settings | None = None,
    *,
    container: Application | None = None,
    announce: Callable[[str], None] | None = print,
) -> Litestar:
    """The whatsgate server. Its lifespan starts whatsgate (migrate, engine, restore, background
    work) and stops it cleanly; ``container`` lets tests override providers."""
    settings = settings or Settings()
    container = container or build_container(settings)
    names = [*service_names(container), "metrics"]
    extra: list[Any] = []
    if settings.engine == "sandbox":
        sandbox_http = importlib.import_module("whatsgate.adapters.http.sandbox")
        extra.append(sandbox_http.SandboxController)
        names.append("sandbox_engine")
    holder: dict[str, Runtime] = {}

    def provider_of(name: str) -> Callable[[], Any]:
        key = "engine" if name == "sandbox_engine" else name

        def provide() -> Any:
            return holder["runtime"].objects[key]

        return provide

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, container, announce=announce)
        holder["runtime"] = runtime
        app.state[RUNTIME] = runtime
        app.state[AUTHENTICATOR] = runtime.objects["authenticate"]
        # What start-up built (modules, the app, the container, SQLAlchemy's statements) lives
        # as long as the server: out of the collector's sight, a full collection only walks
        # what requests made since. Each walked ~180,000 objects for 70-115 ms with the
        # event loop stopped, ten times in a REST benchmark run: every request in flight
        # waited (GET p99 at 64 connections 129 → 63 ms, bench/rest.py). No collection
        # first: start-up's little garbage waits for the stop, and a collection of a large
        # host process (a test run starting many apps) cost ~0.2 s per start.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # collectable again (apps started and stopped in one process)
            await runtime.stop()

    return Litestar(
        route_handlers=route_handlers(extra),
        dependencies={name: Provide(provider_of(name), sync_to_thread=False) for name in names},
        exception_handlers=exception_handlers,
        cors_config=CORSConfig(
            allow_origins=settings.cors_origins,
            allow_headers=["Authorization", "X-Api-Key", "Content-Type"],
            expose_headers=["Content-Disposition"],
        ),
        openapi_config=openapi_config(),
        lifespan=[lifespan],
        # Logging is the host's: ``whatsgate serve`` sets WHATSGATE_LOG_LEVEL and its format;
        # Litestar's default would reset the root logger to INFO with a format of its own.
        logging_config=None,
        debug=False,
    )


def create_asgi_app(
    settings: Settings | None = None,
    *,
    container: Application | None = None,
    announce: Callable[[str], None] | None = print,
) -> Any:
    """What uvicorn serves: socket.io on ``/socket.io``, everything else (and the lifespan)
    to the Litestar app. The socket.io server is made here, before the app runs, so its
    callables reach the running app's use cases once the lifespan has started them."""
    settings = settings or Settings()
    container = container or build_container(settings)
    app = create_app(settings, container=container, announce=announce)

    async def authenticate(token: str) -> Principal:
        runtime: Runtime = app.state[RUNTIME]
        principal: Principal = await runtime.objects["authenticate"](token)
        return principal

    def uow() -> UnitOfWork:
        runtime: Runtime = app.state[RUNTIME]
        unit: UnitOfWork = runtime.objects["uow"]()
        return unit

    realtime = RealtimeServer(authenticate, uow, redis_url=settings.redis_url)
    realtime_container: Any = container.realtime
    realtime_container.socketio_server.override(providers.Object(realtime))
    return realtime.asgi_app(app)
