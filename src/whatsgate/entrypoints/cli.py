"""The ``whatsgate`` command: one function per subcommand.

    whatsgate serve [--engine neonize|sandbox] [--host H] [--port P] [--data-dir D]
                    [--database-url URL]
    whatsgate migrate [--database-url URL] [--data-dir D]
    whatsgate pair NAME [--engine …] [--data-dir D] [--database-url URL]
    whatsgate users list|create|key …

Every option falls back to its ``WHATSGATE_*`` environment variable, then to the default
(engine neonize, 127.0.0.1:8000, data in ``./whatsgate-data``, SQLite there).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

import whatsgate
from whatsgate.domain.errors import WhatsgateError
from whatsgate.entrypoints.settings import Settings

Command = Callable[[argparse.Namespace], int]

_STORAGE_OPTIONS = ("data_dir", "database_url")
_SERVER_OPTIONS = ("engine", "host", "port")


def settings_from(args: argparse.Namespace) -> Settings:
    """Flags given on the command line win over the environment."""
    given = {
        name: getattr(args, name)
        for name in (*_STORAGE_OPTIONS, *_SERVER_OPTIONS)
        if getattr(args, name, None) is not None
    }
    return Settings(**given)


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", help="where whatsgate keeps its files; env WHATSGATE_DATA_DIR"
    )
    parser.add_argument(
        "--database-url",
        help="sqlite:///… or postgresql://… (default SQLite in the data dir; memory:// keeps "
        "nothing); env WHATSGATE_DATABASE_URL",
    )


def _add_engine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=["neonize", "sandbox"],
        help="neonize (real WhatsApp) or sandbox (simulated); env WHATSGATE_ENGINE",
    )


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


# -- serve ----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """The API, socket.io and the outbox worker in one process (uvicorn, uvloop, httptools)."""
    import uvicorn

    from whatsgate.entrypoints.app import create_asgi_app

    settings = settings_from(args)
    _configure_logging(settings.log_level)
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"whatsgate {whatsgate.__version__} ({settings.engine} engine) on {base}\n"
        f"  API docs:   {base}/schema\n"
        f"  socket.io:  {base}/socket.io\n"
        f"  admin key:  WHATSGATE_ADMIN_API_KEY, else {settings.admin_key_file}",
        flush=True,
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again for the
    # handler it found: a quiet one lets the process end normally (exit 0, logs flushed).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _quiet)
    uvicorn.run(
        create_asgi_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level=settings.log_level.lower(),
    )
    return 0


def _quiet(signum: int, frame: object) -> None:
    """A signal that arrives once uvicorn has stopped: nothing left to do."""


# -- migrate --------------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database schema to the newest revision."""
    from whatsgate.entrypoints.runtime import migrate_if_needed

    settings = settings_from(args)
    if settings.in_memory:
        print("An in-memory database needs no migration.")
        return 0
    from whatsgate.entrypoints.container import build_container

    asyncio.run(migrate_if_needed(settings, build_container(settings)))
    print(f"Database is up to date: {_safe(settings.database)}")
    return 0


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- pair -----------------------------------------------------------------------------------


def cmd_pair(args: argparse.Namespace) -> int:
    """Pair a session from the terminal: the QR is drawn here; exits once connected."""
    settings = settings_from(args)
    _configure_logging("warning")
    return asyncio.run(_pair(settings, args.name, args.timeout))


async def _pair(settings: Settings, name: str, wait_for: float) -> int:
    from whatsgate.adapters.http.qr import qr_text
    from whatsgate.entrypoints.runtime import Runtime
    from whatsgate.usecases.sessions import CreateSessionCommand, InitializeCommand

    runtime = await Runtime.start(settings, announce=print, serve=False)
    try:
        assert runtime.bootstrap is not None
        admin = runtime.bootstrap.admin
        async with runtime.objects["uow"]() as uow:
            existing = await uow.sessions.all(admin.organization_id)
        session = next((s for s in existing if s.name == name), None)
        if session is None:
            session = await runtime.objects["create_session"](
                CreateSessionCommand(
                    organization_id=admin.organization_id, owner_id=admin.id, name=name
                )
            )
        if session.is_paired:
            print(f"Session {name!r} is already paired with {session.jid}.")
            return 0
        await runtime.objects["initialize_client"](InitializeCommand(session_id=session.id))
        shown: str | None = None
        said: tuple[str, str | None] | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_for
        while loop.time() < deadline:
            async with runtime.objects["uow"]() as uow:
                current = await uow.sessions.get(session.id)
            if current is None:
                print("The session was deleted.", file=sys.stderr)
                return 1
            if current.is_connected:
                print(f"Paired: session {name!r} is connected as {current.jid}.")
                return 0
            if not current.is_running:
                reason = current.status_reason or current.status
                print(f"Pairing stopped: {current.status} ({reason}).", file=sys.stderr)
                return 1
            if current.qr and current.qr != shown:
                shown = current.qr
                print(qr_text(current.qr))
                print(f"Scan with WhatsApp → Linked devices ({name!r}, {current.status}).")
            elif not current.qr and (current.status, current.status_reason) != said:
                # No QR to show (e.g. no network: reconnecting): say why we are waiting.
                said = (current.status, current.status_reason)
                print(f"Waiting: {current.status} ({current.status_reason or '-'}).")
            await asyncio.sleep(0.5)
        print("Gave up waiting for the scan.", file=sys.stderr)
        return 1
    finally:
        await runtime.stop()


# -- users ----------------------------------------------------------------------------------


def cmd_users(args: argparse.Namespace) -> int:
    """Create and list users and their API keys from the terminal."""
    settings = settings_from(args)
    _configure_logging("warning")
    return asyncio.run(_users(settings, args))


async def _users(settings: Settings, args: argparse.Namespace) -> int:
    from whatsgate.domain.organization import Role
    from whatsgate.entrypoints.container import resolve
    from whatsgate.entrypoints.runtime import keep_admin_key, storage_only
    from whatsgate.usecases.auth import (
        BootstrapCommand,
        CreateUserCommand,
        IssueApiKeyCommand,
    )

    async with storage_only(settings) as container:
        usecases: Any = container.usecases
        admin_key = settings.admin_api_key.get_secret_value() if settings.admin_api_key else None
        boot = await (await resolve(usecases.bootstrap))(BootstrapCommand(admin_api_key=admin_key))
        if boot.new_api_key:
            keep_admin_key(settings, boot.new_api_key, print)
        uow = await resolve(container.storage.uow)
        async with uow() as unit:
            organization = await unit.organizations.get_by_name(args.organization)
        if organization is None:
            print(f"No organization named {args.organization!r}.", file=sys.stderr)
            return 1
        if args.action == "list":
            users = await (await resolve(usecases.list_users))(organization.id)
            for user in users:
                print(f"{user.id}  {user.role:<5}  {user.name}  {user.email or ''}".rstrip())
            return 0
        if args.action == "create":
            created = await (await resolve(usecases.create_user))(
                CreateUserCommand(
                    organization_id=organization.id,
                    name=args.name,
                    email=args.email,
                    role=Role(args.role),
                )
            )
            print(f"user:    {created.user.id} ({created.user.role})")
            print(f"api key: {created.api_key}   (shown once)")
            return 0
        key = await (await resolve(usecases.issue_api_key))(
            IssueApiKeyCommand(organization_id=organization.id, user_id=args.user_id)
        )
        print(f"api key: {key}   (shown once)")
        return 0


# -- the parser -----------------------------------------------------------------------------

SERVE_ENVIRONMENT = """\
settings from the environment only (defaults in brackets):
  WHATSGATE_ADMIN_API_KEY           the operator's key [made on first start, kept in the data dir]
  WHATSGATE_REDIS_URL               socket.io fan-out across nodes [none]
  WHATSGATE_WEBHOOKS_ALLOW_PRIVATE  webhooks to loopback/private addresses [false]
  WHATSGATE_NEONIZE_PROXY           reach WhatsApp through socks5://… or http://… [none]
  WHATSGATE_CORS_ORIGINS            JSON list of browser origins [["*"]]
  WHATSGATE_LOG_LEVEL               [info]
  WHATSGATE_TOKEN_TTL_SECONDS       lifetime of bearer tokens [3600]
  WHATSGATE_QR_WAIT_SECONDS         how long a start waits for the first QR [20]
  WHATSGATE_QR_TIMEOUT_SECONDS      no scan within this time stops the session [180]
  WHATSGATE_OUTBOX_RETRY_SECONDS    JSON list of waits between send attempts
                                    [[10, 30, 60, 120, 300]]
  WHATSGATE_OUTBOX_MAX_ATTEMPTS     attempts before a send fails [5]
sandbox engine only (seconds):
  WHATSGATE_SANDBOX_QR_FIRST        validity of the first QR [60]
  WHATSGATE_SANDBOX_QR_NEXT         validity of each next QR [20]
  WHATSGATE_SANDBOX_DELIVERED_AFTER "delivered" receipt after a send [1]
  WHATSGATE_SANDBOX_READ_AFTER      "read" receipt after a send [3]
  WHATSGATE_SANDBOX_HISTORY_MESSAGES history pushed on pairing [0]
  WHATSGATE_SANDBOX_HISTORY_DAYS    days that history spreads over [40]
  WHATSGATE_SANDBOX_PHONE           the number that pairs when a scan names none
                                    [5511999990001]
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whatsgate", description="A WhatsApp gateway for Python backends."
    )
    parser.add_argument("--version", action="version", version=whatsgate.__version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the server (API, socket.io, outbox)",
        epilog=SERVE_ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_engine_option(serve)
    serve.add_argument("--host", help="address to listen on; env WHATSGATE_HOST (127.0.0.1)")
    serve.add_argument("--port", type=int, help="port; env WHATSGATE_PORT (8000)")
    _add_storage_options(serve)
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    _add_storage_options(migrate)
    migrate.set_defaults(handler=cmd_migrate)

    pair = commands.add_parser(
        "pair", help="pair a session from the terminal (stop the server first)"
    )
    pair.add_argument("name", help="the session's name (created in the default organization)")
    pair.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (300)")
    _add_engine_option(pair)
    _add_storage_options(pair)
    pair.set_defaults(handler=cmd_pair)

    users = commands.add_parser("users", help="create and list users and API keys")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the users of an organization")
    create = actions.add_parser("create", help="a new user and their first API key")
    create.add_argument("name")
    create.add_argument("--email")
    create.add_argument("--role", choices=["admin", "agent"], default="agent")
    key = actions.add_parser("key", help="another API key for a user")
    key.add_argument("user_id")
    for sub in (listing, create, key):
        sub.add_argument(
            "--organization", default="default", help="the organization's name (default)"
        )
        _add_storage_options(sub)
    users.set_defaults(handler=cmd_users)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except WhatsgateError as exc:
        print(f"error: {exc.message} ({exc.code})", file=sys.stderr)
        return 1
    except ValidationError as exc:  # a flag or WHATSGATE_* variable that makes no sense
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            name = f"WHATSGATE_{where.upper()}" if where else "settings"
            print(f"error: {name}: {error['msg']}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
