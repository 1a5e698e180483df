"""A running whatsgate: what the server's lifespan and the library facade both start and stop.

Start: migrate the database, open the resources (database, engine), wire the engine events to
the use cases, start socket.io, the webhook worker and the event dispatcher, bootstrap the
default organization and admin key, start the outbox worker, restore the sessions that were
running. Stop, in that order: the outbox worker (a send in progress finishes), the sessions
(suspended; their desired state is kept, so the next start restores them), the dispatcher
(drained, the shutdown's own events included), the webhook worker and socket.io, the
resources. Nothing stored is lost: what was not handed out yet is at the next start.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from whatsgate.adapters.sql.migrations import migrate
from whatsgate.entrypoints.container import (
    SERVICE_CONTAINERS,
    WIRING,
    Application,
    build_container,
    resolve,
)
from whatsgate.entrypoints.settings import Settings, write_private
from whatsgate.ports.engine import (
    ContactsBatch,
    HistoryBatch,
    IncomingMessage,
    Presence,
    Receipt,
)
from whatsgate.usecases.auth import BootstrapCommand, BootstrapResult

log = logging.getLogger("whatsgate")


async def migrate_if_needed(settings: Settings, container: Any) -> None:
    """Bring the SQL schema to the newest revision (nothing to do in memory)."""
    if settings.in_memory or container.storage.uow.overridden:
        return
    await migrate(settings.database)


def keep_admin_key(settings: Settings, key: str, announce: Callable[[str], None] | None) -> None:
    """A generated admin key: stored in the data directory (0600) and shown once."""
    where = "it lives only as long as this process (in-memory storage)"
    if not settings.in_memory:
        write_private(settings.admin_key_file, key + "\n")
        where = f"also stored in {settings.admin_key_file}"
    if announce is not None:
        announce(f"Admin API key (shown once; {where}): {key}")


@asynccontextmanager
async def storage_only(settings: Settings) -> AsyncIterator[Application]:
    """A container whose storage is open and migrated, without the engine (``users``)."""
    container: Any = build_container(settings)
    await migrate_if_needed(settings, container)
    await resolve(container.storage.database.init)
    try:
        yield container
    finally:
        shutdown = container.storage.database.shutdown()
        if shutdown is not None:
            await shutdown


class Runtime:
    """An open whatsgate: ``objects`` holds every use case and service by provider name."""

    def __init__(self, settings: Settings, container: Application) -> None:
        self.settings = settings
        self.container = container
        self.objects: dict[str, Any] = {}
        self.bootstrap: BootstrapResult | None = None
        self._started = False

    @classmethod
    async def start(
        cls,
        settings: Settings,
        container: Application | None = None,
        *,
        announce: Callable[[str], None] | None = None,
        serve: bool = True,
    ) -> Runtime:
        """Open whatsgate. ``serve=False`` (the CLI's ``pair``) neither restores the sessions
        nor runs the outbox: another process may be serving them."""
        runtime = cls(settings, container or build_container(settings))
        try:
            await runtime._start(announce, serve)
        except BaseException:
            await runtime.stop()
            raise
        return runtime

    async def _start(self, announce: Callable[[str], None] | None, serve: bool) -> None:
        settings = self.settings
        container: Any = self.container  # dependency-injector's stubs are loose here
        await migrate_if_needed(settings, container)
        self._started = True
        initialized = container.init_resources()
        if initialized is not None:
            await initialized
        for part in SERVICE_CONTAINERS:
            for name, provider in getattr(container, part).providers.items():
                if name not in WIRING:
                    self.objects[name] = await resolve(provider)
        for name in ("clock", "metrics", "commit_signal", "secret"):
            self.objects[name] = await resolve(getattr(container.core, name))
        self.objects["uow"] = await resolve(container.storage.uow)
        self.objects["media"] = await resolve(container.storage.media)
        self.objects["engine"] = await resolve(container.engines.engine)
        self.objects["connections"] = await resolve(container.engines.connections)
        router = self.objects["engine_router"]
        router.register(IncomingMessage, self.objects["ingest"].handle)
        router.register(Receipt, self.objects["process_receipt"].handle)
        router.register(Presence, self.objects["process_presence"].handle)
        router.register(HistoryBatch, self.objects["import_history"].handle)
        router.register(ContactsBatch, self.objects["sync_contacts"].handle)
        self.objects["connections"].bind(router)
        await self.objects["socketio_server"].start()
        self.objects["webhook_worker"].start()
        dispatcher = self.objects["event_dispatcher"]
        self.objects["commit_signal"].on_commit(dispatcher.wake)
        dispatcher.start()  # catches up with what the log holds, then follows each commit

        admin_key = settings.admin_api_key.get_secret_value() if settings.admin_api_key else None
        self.bootstrap = await self.objects["bootstrap"](BootstrapCommand(admin_api_key=admin_key))
        if self.bootstrap.new_api_key is not None:
            keep_admin_key(settings, self.bootstrap.new_api_key, announce)

        if not serve:
            return
        self.objects["outbox_worker"].start()
        restored = await self.objects["restore_sessions"]()
        log.info(
            "whatsgate started: %d session(s) restored, %d failed",
            len(restored.restored),
            len(restored.failed),
        )

    async def stop(self) -> None:
        """Stop everything, in the order of the module docstring; safe to call twice."""
        if not self._started:
            return
        self._started = False
        worker = self.objects.get("outbox_worker")
        if worker is not None:
            try:
                await worker.stop()  # the send in progress finishes; nothing is cut in half
            except Exception:
                log.exception("stopping the outbox worker failed")
        suspend = self.objects.get("suspend_sessions")
        if suspend is not None:
            try:
                await suspend()
            except Exception:
                log.exception("suspending the sessions failed")
        dispatcher = self.objects.get("event_dispatcher")
        if dispatcher is not None:
            try:
                await dispatcher.stop()  # hands out what is stored, the shutdown's included
            except Exception:
                log.exception("stopping the event dispatcher failed")
        for name, closing in (("webhook_worker", "close"), ("socketio_server", "close")):
            service = self.objects.get(name)
            if service is not None:
                try:
                    await getattr(service, closing)()
                except Exception:
                    log.exception("closing %s failed", name)
        container: Any = self.container
        shutdown = container.shutdown_resources()
        if shutdown is not None:
            await shutdown
        log.info("whatsgate stopped")
