"""Who is calling: the guards of every ``/api/v1`` route and the ``principal`` dependency.

The credential is ``Authorization: Bearer <API key or token>`` or ``X-Api-Key: <key>``. The
``authenticated`` guard resolves it to a Principal (401 otherwise) and keeps it on the
request's state; handlers receive it as their ``principal`` argument.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from whatsgate.domain.auth import Principal
from whatsgate.domain.errors import PermissionDenied

#: Set by the app factory: ``app.state[AUTHENTICATOR]`` resolves a credential to a Principal.
AUTHENTICATOR = "whatsgate_authenticate"
_PRINCIPAL = "whatsgate_principal"

Authenticator = Callable[[str | None], Awaitable[Principal]]


def credential_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = connection.headers.get("x-api-key")
    return key.strip() if key else None


async def authenticated(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: a valid credential, or 401."""
    authenticate: Authenticator = connection.app.state[AUTHENTICATOR]
    principal = await authenticate(credential_of(connection))
    connection.state[_PRINCIPAL] = principal


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal: Principal = connection.state[_PRINCIPAL]
    return principal


async def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: an admin of the organization."""
    if not principal_of(connection).is_admin:
        raise PermissionDenied("Only an admin of the organization may do that.")


async def operator_only(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: the server's operator (an admin of the ``default`` organization)."""
    if not principal_of(connection).operator:
        raise PermissionDenied("Only the server's operator may do that.")


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The ``principal`` dependency of every authenticated handler."""
    return principal_of(request)
