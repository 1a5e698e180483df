"""The ``whatsgate`` command: one function per subcommand.

    whatsgate migrate [--database-url URL] [--data-dir DIR]

Settings come from the flags, else the environment (``WHATSGATE_DATABASE_URL``,
``WHATSGATE_DATA_DIR``), else the defaults (SQLite in ``./whatsgate-data``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence

from sqlalchemy.engine import make_url

from whatsgate.adapters.sql.database import sqlite_url
from whatsgate.adapters.sql.migrations import migrate

DEFAULT_DATA_DIR = "./whatsgate-data"

Command = Callable[[argparse.Namespace], int]


def database_url(args: argparse.Namespace) -> str:
    """The database to use: the flag, ``WHATSGATE_DATABASE_URL``, else SQLite in the data dir."""
    url: str | None = args.database_url or os.environ.get("WHATSGATE_DATABASE_URL")
    if url:
        return url
    data_dir: str = args.data_dir or os.environ.get("WHATSGATE_DATA_DIR") or DEFAULT_DATA_DIR
    return sqlite_url(data_dir)


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (sqlite:///... or postgresql://...); env WHATSGATE_DATABASE_URL",
    )
    parser.add_argument(
        "--data-dir",
        help=f"where whatsgate keeps its files; env WHATSGATE_DATA_DIR ({DEFAULT_DATA_DIR})",
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database schema to the newest revision."""
    url = database_url(args)
    asyncio.run(migrate(url))
    print(f"Database is up to date: {_safe(url)}")
    return 0


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whatsgate", description="A WhatsApp gateway for Python backends."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate_parser = commands.add_parser("migrate", help="apply the database migrations")
    _add_storage_options(migrate_parser)
    migrate_parser.set_defaults(handler=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
