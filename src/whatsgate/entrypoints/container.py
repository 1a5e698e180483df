"""The dependency-injector container: what is built from what, split by concern.

    Application
    ├── core       settings, clock, metrics, the token secret, session settings
    ├── storage    the database (a Resource), the unit-of-work factory, the media store
    ├── engines    the WhatsApp engine (a Resource), metered; the live session connections
    ├── usecases   one provider per use case, named as the HTTP handlers' arguments
    └── realtime   socket.io, webhooks (publishers, delivery worker, management), and the
                   event dispatcher that hands them the event log

Resources (database, engine) are opened by ``Runtime.start`` and closed by ``Runtime.stop``.
Tests override providers (``container.engines.engine.override(...)``). Use cases never import
dependency_injector; Litestar gets them through its own ``Provide``.
"""

from __future__ import annotations

import asyncio
import importlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncEngine

from whatsgate.adapters.clock import SystemClock
from whatsgate.adapters.http.fetch import MediaFetcher
from whatsgate.adapters.media.filesystem import FilesystemMediaStore
from whatsgate.adapters.memory import MemoryMediaStore, MemoryStore, MemoryUnitOfWork
from whatsgate.adapters.metrics import MeteredEngine, MeteredWebhookSender, Metrics
from whatsgate.adapters.socketio import RealtimeServer, SocketIOPublisher
from whatsgate.adapters.sql.database import create_engine_for
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.adapters.webhooks import HttpxWebhookSender
from whatsgate.domain.errors import FeatureUnavailable
from whatsgate.domain.events import StoredEvent
from whatsgate.domain.outbox import RetryPolicy
from whatsgate.domain.pacing import PacingPolicy, SendPacer
from whatsgate.entrypoints.settings import Settings, token_secret
from whatsgate.ports.clock import Clock
from whatsgate.ports.engine import WhatsAppEngine
from whatsgate.ports.media import MediaStore
from whatsgate.ports.repositories import CommitListener, UnitOfWork, UnitOfWorkFactory
from whatsgate.usecases.access import Access
from whatsgate.usecases.auth import (
    PRINCIPAL_CACHE_TTL,
    Authenticate,
    Bootstrap,
    CreateOrganization,
    CreateUser,
    IssueApiKey,
    IssueToken,
    ListUsers,
)
from whatsgate.usecases.connections import SessionConnections
from whatsgate.usecases.contacts import ListContacts
from whatsgate.usecases.dispatch import EventDispatcher
from whatsgate.usecases.engine_events import EngineEventRouter
from whatsgate.usecases.events import ReadEvents
from whatsgate.usecases.health import ReadHealth
from whatsgate.usecases.history import ImportHistory, RequestHistorySync, SyncContacts
from whatsgate.usecases.inbox import (
    GetMessages,
    ListConversations,
    MarkConversationRead,
    ProcessPresence,
    ProcessReceipt,
    SendTyping,
    UpdateContact,
    UpdateConversation,
)
from whatsgate.usecases.ingest import ProcessIncomingMessage
from whatsgate.usecases.media import GetMessageMedia
from whatsgate.usecases.outbox import DeliverOutbox, OutboxSettings, OutboxWorker
from whatsgate.usecases.pairing import GetQrCode, OwnDefaultSession
from whatsgate.usecases.send import CheckNumbers, CheckNumbersSettings, SendMessage
from whatsgate.usecases.session_admin import SuspendSessions, UpdateSession
from whatsgate.usecases.sessions import (
    CreateSession,
    DeleteSession,
    HandleDisconnect,
    InitializeWhatsAppClient,
    LogoutSession,
    RequestPairingCode,
    RestoreSessions,
    SessionSettings,
    StopSession,
    UpdateUserWhatsAppSession,
)
from whatsgate.usecases.webhooks import (
    CreateWebhook,
    DeleteWebhook,
    GetWebhook,
    ListDeliveries,
    ListWebhooks,
    ReplayDelivery,
    RotateWebhookSecret,
    WebhookDeliveryWorker,
    WebhookPublisher,
    WebhookSettings,
)


class CommitSignal:
    """Called by every commit that stored events; wakes each subscriber (the event
    dispatcher, the facade's event streams), each through its own ``asyncio.Event``."""

    def __init__(self) -> None:
        self._listeners: set[asyncio.Event] = set()
        self._callbacks: list[CommitListener] = []

    def on_commit(self, callback: CommitListener) -> None:
        """Also call ``callback`` (the event dispatcher's ``wake``) on every such commit, with
        the events it stored."""
        self._callbacks.append(callback)

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._listeners.add(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._listeners.discard(event)

    def __call__(self, events: Sequence[StoredEvent]) -> None:
        for event in self._listeners:
            event.set()
        for callback in self._callbacks:
            callback(events)


def token_ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.token_ttl_seconds)


def outbox_settings(settings: Settings) -> OutboxSettings:
    retry = RetryPolicy(
        ladder=tuple(settings.outbox_retry_seconds), max_attempts=settings.outbox_max_attempts
    )
    return OutboxSettings(retry=retry)


def session_settings(settings: Settings) -> SessionSettings:
    return SessionSettings(
        qr_timeout=settings.qr_timeout_seconds, ready_timeout=settings.qr_wait_seconds
    )


# -- storage --------------------------------------------------------------------------------


async def open_database(settings: Settings) -> AsyncIterator[AsyncEngine | None]:
    """The SQL engine (None for the in-memory store), disposed of at shutdown."""
    if settings.in_memory:
        yield None
        return
    engine = create_engine_for(settings.database)
    try:
        yield engine
    finally:
        await engine.dispose()


def unit_of_work_factory(
    settings: Settings, database: AsyncEngine | None, store: MemoryStore, signal: CommitSignal
) -> UnitOfWorkFactory:
    if database is None:

        def memory() -> UnitOfWork:
            return MemoryUnitOfWork(store, on_commit=signal)

        return memory
    return SqlUnitOfWorkFactory(database, on_commit=signal)


def media_store(settings: Settings) -> MediaStore:
    if settings.in_memory:
        return MemoryMediaStore()
    return FilesystemMediaStore(settings.data_dir / "media")


# -- engines --------------------------------------------------------------------------------


async def open_engine(settings: Settings, clock: Clock) -> AsyncIterator[WhatsAppEngine]:
    """The chosen engine, imported only when chosen (neonize is heavy), closed at shutdown."""
    engine: WhatsAppEngine
    if settings.engine == "sandbox":
        sandbox = importlib.import_module("whatsgate.adapters.sandbox")
        engine = sandbox.SandboxEngine(
            clock=clock,
            data_dir=settings.data_dir,
            settings=sandbox.SandboxSettings(
                qr_first=settings.sandbox_qr_first,
                qr_next=settings.sandbox_qr_next,
                delivered_after=settings.sandbox_delivered_after,
                read_after=settings.sandbox_read_after,
                history_messages=settings.sandbox_history_messages,
                history_days=settings.sandbox_history_days,
                default_phone=settings.sandbox_phone,
            ),
        )
    else:
        # Importing neonize starts a Go runtime: only when chosen.
        try:
            neonize = importlib.import_module("whatsgate.adapters.neonize.engine")
        except ImportError as exc:
            raise FeatureUnavailable(
                f"The neonize engine cannot be loaded ({exc}); try --engine sandbox."
            ) from exc
        database_url = None if settings.in_memory else settings.database
        engine = neonize.NeonizeEngine(
            settings.data_dir, database_url=database_url, proxy=settings.neonize_proxy
        )
    try:
        yield engine
    finally:
        await engine.close()


# -- containers -----------------------------------------------------------------------------


class Core(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)
    metrics = providers.Singleton(Metrics)
    secret = providers.Singleton(token_secret, settings)
    session_settings = providers.Singleton(session_settings, settings)
    commit_signal = providers.Singleton(CommitSignal)
    token_ttl = providers.Callable(token_ttl, settings)
    rng = providers.Singleton(random.Random)
    #: Set when a message is queued: the outbox worker wakes at once.
    outbox_wake = providers.Singleton(asyncio.Event)
    pacer = providers.Singleton(SendPacer, providers.Factory(PacingPolicy), rng)
    outbox_settings = providers.Singleton(outbox_settings, settings)
    check_numbers_settings = providers.Singleton(CheckNumbersSettings)


class Storage(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    database = providers.Resource(open_database, core.settings)
    memory = providers.Singleton(MemoryStore)
    uow = providers.Singleton(
        unit_of_work_factory, core.settings, database, memory, core.commit_signal
    )
    media = providers.Singleton(media_store, core.settings)


class Engines(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    #: The engine itself (the sandbox's control methods live on it).
    engine = providers.Resource(open_engine, core.settings, core.clock)
    metered = providers.Singleton(MeteredEngine, engine, core.metrics)
    connections = providers.Singleton(SessionConnections, metered, core.clock)


class UseCases(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    storage = providers.DependenciesContainer()
    engines = providers.DependenciesContainer()

    # sessions
    create_session = providers.Singleton(CreateSession, storage.uow, core.clock)
    initialize_client = providers.Singleton(
        InitializeWhatsAppClient,
        storage.uow,
        engines.connections,
        core.clock,
        core.session_settings,
    )
    update_whatsapp_session = providers.Singleton(
        UpdateUserWhatsAppSession,
        storage.uow,
        engines.connections,
        core.clock,
        core.session_settings,
        core.outbox_wake,
    )
    handle_disconnect = providers.Singleton(
        HandleDisconnect, storage.uow, engines.connections, core.clock, core.session_settings
    )
    stop_session = providers.Singleton(StopSession, storage.uow, engines.connections, core.clock)
    logout_session = providers.Singleton(
        LogoutSession, storage.uow, engines.connections, core.clock
    )
    delete_session = providers.Singleton(
        DeleteSession, storage.uow, engines.connections, storage.media
    )
    restore_sessions = providers.Singleton(
        RestoreSessions, storage.uow, initialize_client, core.session_settings
    )
    request_pairing_code = providers.Singleton(
        RequestPairingCode, storage.uow, engines.connections, initialize_client, core.clock
    )
    suspend_sessions = providers.Singleton(
        SuspendSessions, storage.uow, engines.connections, core.clock
    )
    update_session = providers.Singleton(UpdateSession, storage.uow)
    own_default_session = providers.Singleton(OwnDefaultSession, storage.uow, create_session)
    get_qr_code = providers.Singleton(
        GetQrCode, storage.uow, engines.connections, initialize_client, core.session_settings
    )
    engine_router = providers.Singleton(
        EngineEventRouter, update_whatsapp_session, handle_disconnect
    )

    # auth and tenancy
    access = providers.Singleton(Access, storage.uow)
    bootstrap = providers.Singleton(Bootstrap, storage.uow, core.clock)
    authenticate = providers.Singleton(
        Authenticate, storage.uow, core.clock, core.secret, cache_ttl=PRINCIPAL_CACHE_TTL
    )
    issue_token = providers.Singleton(IssueToken, core.secret, core.clock, core.token_ttl)
    create_organization = providers.Singleton(CreateOrganization, storage.uow, core.clock)
    create_user = providers.Singleton(CreateUser, storage.uow, core.clock)
    list_users = providers.Singleton(ListUsers, storage.uow)
    issue_api_key = providers.Singleton(IssueApiKey, storage.uow, core.clock)

    # messages
    send_message = providers.Singleton(
        SendMessage, storage.uow, core.clock, storage.media, core.pacer, core.outbox_wake
    )
    check_numbers = providers.Singleton(
        CheckNumbers,
        storage.uow,
        engines.connections,
        core.clock,
        core.check_numbers_settings,
        core.rng,
    )
    deliver_outbox = providers.Singleton(
        DeliverOutbox,
        storage.uow,
        engines.connections,
        core.clock,
        storage.media,
        core.pacer,
        core.outbox_settings,
        core.rng,
    )
    outbox_worker = providers.Singleton(OutboxWorker, deliver_outbox, core.clock, core.outbox_wake)
    get_message_media = providers.Singleton(
        GetMessageMedia, storage.uow, engines.connections, storage.media
    )
    #: Media sends by URL (an HTTP adapter, here so handlers get it like a use case).
    media_fetcher = providers.Singleton(
        MediaFetcher,
        max_bytes=64 * 1024 * 1024,
        allow_private=core.settings.provided.webhooks_allow_private,
    )

    # inbox: what WhatsApp reports, and what attendants do
    ingest = providers.Singleton(ProcessIncomingMessage, storage.uow, core.clock)
    process_receipt = providers.Singleton(ProcessReceipt, storage.uow, core.clock)
    process_presence = providers.Singleton(ProcessPresence, storage.uow, core.clock)
    import_history = providers.Singleton(ImportHistory, storage.uow, core.clock)
    sync_contacts = providers.Singleton(SyncContacts, storage.uow, engines.connections, core.clock)
    request_history_sync = providers.Singleton(RequestHistorySync, storage.uow, engines.connections)
    list_conversations = providers.Singleton(ListConversations, storage.uow)
    get_messages = providers.Singleton(GetMessages, storage.uow)
    update_conversation = providers.Singleton(UpdateConversation, storage.uow, core.clock)
    mark_conversation_read = providers.Singleton(
        MarkConversationRead, storage.uow, engines.connections, core.clock
    )
    send_typing = providers.Singleton(SendTyping, storage.uow, engines.connections)
    list_contacts = providers.Singleton(ListContacts, storage.uow)
    update_contact = providers.Singleton(UpdateContact, storage.uow, core.clock)

    # the event log, handed to the publishers (socket.io, webhooks)
    publishers = providers.Dict()
    event_dispatcher = providers.Singleton(EventDispatcher, storage.uow, publishers, core.clock)

    # events and operations
    read_events = providers.Singleton(ReadEvents, storage.uow)
    read_health = providers.Singleton(ReadHealth, storage.uow)


class Realtime(containers.DeclarativeContainer):
    """socket.io, webhooks, and the dispatcher that hands them the event log."""

    core = providers.DependenciesContainer()
    storage = providers.DependenciesContainer()
    usecases = providers.DependenciesContainer()

    #: The app factory replaces it with one whose callables reach the running app.
    socketio_server = providers.Singleton(
        RealtimeServer,
        usecases.authenticate,
        storage.uow,
        redis_url=core.settings.provided.redis_url,
    )
    webhook_settings = providers.Singleton(
        WebhookSettings, allow_private=core.settings.provided.webhooks_allow_private
    )
    http_webhook_sender = providers.Singleton(
        HttpxWebhookSender, allow_private=core.settings.provided.webhooks_allow_private
    )
    webhook_sender = providers.Singleton(MeteredWebhookSender, http_webhook_sender, core.metrics)
    webhook_worker = providers.Singleton(
        WebhookDeliveryWorker, storage.uow, webhook_sender, core.clock, webhook_settings
    )
    webhook_publisher = providers.Singleton(
        WebhookPublisher, storage.uow, core.clock, webhook_worker.provided.wake
    )
    publishers = providers.Dict(
        socketio=providers.Singleton(SocketIOPublisher, socketio_server.provided.sio),
        webhooks=webhook_publisher,
    )
    event_dispatcher = providers.Singleton(EventDispatcher, storage.uow, publishers, core.clock)

    # webhook management
    # (each tells the publisher which organization's webhooks it changed)
    create_webhook = providers.Singleton(
        CreateWebhook, storage.uow, core.clock, webhook_settings, webhook_publisher.provided.forget
    )
    list_webhooks = providers.Singleton(ListWebhooks, storage.uow)
    get_webhook = providers.Singleton(GetWebhook, storage.uow)
    delete_webhook = providers.Singleton(
        DeleteWebhook, storage.uow, webhook_publisher.provided.forget
    )
    rotate_webhook_secret = providers.Singleton(
        RotateWebhookSecret, storage.uow, webhook_publisher.provided.forget
    )
    list_deliveries = providers.Singleton(ListDeliveries, storage.uow)
    replay_delivery = providers.Singleton(
        ReplayDelivery, storage.uow, core.clock, webhook_worker.provided.wake
    )


class Application(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    core = providers.Container(Core, settings=settings)
    storage = providers.Container(Storage, core=core)
    engines = providers.Container(Engines, core=core)
    usecases = providers.Container(UseCases, core=core, storage=storage, engines=engines)
    realtime = providers.Container(Realtime, core=core, storage=storage, usecases=usecases)


#: The containers whose providers the runtime resolves and the HTTP handlers can ask for.
SERVICE_CONTAINERS = ("usecases", "realtime")
WIRING = frozenset({"core", "storage", "engines", "usecases"})


def service_names(container: Application) -> list[str]:
    """The names of every use case and service, as handlers ask for them."""
    names: list[str] = []
    for part in SERVICE_CONTAINERS:
        sub: Any = getattr(container, part)
        names += [n for n in sub.providers if n not in WIRING]
    return names


def build_container(settings: Settings) -> Application:
    return Application(settings=settings)


async def resolve(provider: Callable[[], Any]) -> Any:
    """A provider's object, awaited when it depends on an async resource."""
    value = provider()
    if asyncio.isfuture(value) or asyncio.iscoroutine(value):
        value = await value
    return value
