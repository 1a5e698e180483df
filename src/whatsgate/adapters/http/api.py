"""The API's routes, in one place: what the app factory mounts."""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from whatsgate.adapters.http.auth import authenticated, provide_principal
from whatsgate.adapters.http.conversations import ConversationController, SessionInboxController
from whatsgate.adapters.http.events import EventController
from whatsgate.adapters.http.messages import MessageController, SessionMessageController
from whatsgate.adapters.http.operations import operation_handlers
from whatsgate.adapters.http.sessions import SessionController, WhatsAppController
from whatsgate.adapters.http.users import OrganizationController, TokenController, UserController
from whatsgate.adapters.http.webhooks import WebhookController

API_PREFIX = "/api/v1"
#: Bodies of ordinary requests; media sends have their own, larger limit.
DEFAULT_BODY_LIMIT = 1024 * 1024


def api_router(extra: list[ControllerRouterHandler] | None = None) -> Router:
    """``/api/v1``: every route behind the ``authenticated`` guard."""
    return Router(
        path=API_PREFIX,
        route_handlers=[
            SessionController,
            WhatsAppController,
            SessionMessageController,
            SessionInboxController,
            ConversationController,
            MessageController,
            EventController,
            WebhookController,
            UserController,
            OrganizationController,
            TokenController,
            *(extra or []),
        ],
        guards=[authenticated],
        dependencies={"principal": Provide(provide_principal)},
        request_max_body_size=DEFAULT_BODY_LIMIT,
    )


def route_handlers(
    extra: list[ControllerRouterHandler] | None = None,
) -> list[ControllerRouterHandler]:
    return [api_router(extra), *operation_handlers]
