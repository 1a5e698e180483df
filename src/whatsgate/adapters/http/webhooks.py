"""``/api/v1/webhooks``: signed HTTP deliveries of the events, and their delivery log."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from whatsgate.adapters.http.auth import admin_only
from whatsgate.adapters.http.errors import error_responses
from whatsgate.adapters.http.schemas import (
    CreateWebhookIn,
    DeliveryList,
    DeliveryOut,
    RotateSecretIn,
    WebhookList,
    WebhookOut,
)
from whatsgate.domain.auth import Principal
from whatsgate.domain.webhook import DeliveryStatus
from whatsgate.usecases.webhooks import (
    CreateWebhook,
    CreateWebhookCommand,
    DeleteWebhook,
    GetWebhook,
    ListDeliveries,
    ListDeliveriesQuery,
    ListWebhooks,
    ListWebhooksQuery,
    ReplayDelivery,
    ReplayDeliveryCommand,
    RotateSecretCommand,
    RotateWebhookSecret,
    WebhookCommand,
)


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["Webhooks"]
    guards = [admin_only]

    @post(
        "/",
        summary="Subscribe a URL to events",
        description="Admins only. Deliveries are POSTed at least once with "
        "`X-Whatsgate-Event`, `X-Whatsgate-Delivery` and, with a secret, "
        "`X-Whatsgate-Signature`. Private and loopback URLs are refused unless "
        "`WHATSGATE_WEBHOOKS_ALLOW_PRIVATE` is on.",
        responses=error_responses(403, 404),
    )
    async def create(
        self,
        data: JSONBody[CreateWebhookIn],
        principal: NamedDependency[Principal],
        create_webhook: NamedDependency[CreateWebhook],
    ) -> WebhookOut:
        webhook = await create_webhook(
            CreateWebhookCommand(
                actor=principal,
                url=data.url,
                events=tuple(data.events),
                session_id=data.session_id,
                secret=data.secret,
            )
        )
        return WebhookOut.of(webhook)

    @get("/", summary="List webhooks", responses=error_responses(403))
    async def list_webhooks(
        self, principal: NamedDependency[Principal], list_webhooks: NamedDependency[ListWebhooks]
    ) -> WebhookList:
        webhooks = await list_webhooks(ListWebhooksQuery(actor=principal))
        return WebhookList(items=[WebhookOut.of(w) for w in webhooks])

    @get("/{webhook_id:str}", summary="One webhook", responses=error_responses(403, 404))
    async def get_webhook(
        self,
        webhook_id: FromPath[str],
        principal: NamedDependency[Principal],
        get_webhook: NamedDependency[GetWebhook],
    ) -> WebhookOut:
        return WebhookOut.of(
            await get_webhook(WebhookCommand(actor=principal, webhook_id=webhook_id))
        )

    @delete(
        "/{webhook_id:str}",
        summary="Remove a webhook",
        description="With its deliveries and their log; nothing more is delivered to it.",
        status_code=HTTP_204_NO_CONTENT,
        responses=error_responses(403, 404),
    )
    async def remove(
        self,
        webhook_id: FromPath[str],
        principal: NamedDependency[Principal],
        delete_webhook: NamedDependency[DeleteWebhook],
    ) -> None:
        await delete_webhook(WebhookCommand(actor=principal, webhook_id=webhook_id))

    @post(
        "/{webhook_id:str}/secret",
        summary="Rotate the secret",
        description="With `keep_previous`, deliveries carry both signatures until the next "
        "rotation.",
        responses=error_responses(403, 404),
    )
    async def rotate_secret(
        self,
        webhook_id: FromPath[str],
        data: JSONBody[RotateSecretIn],
        principal: NamedDependency[Principal],
        rotate_webhook_secret: NamedDependency[RotateWebhookSecret],
    ) -> WebhookOut:
        webhook = await rotate_webhook_secret(
            RotateSecretCommand(
                actor=principal,
                webhook_id=webhook_id,
                secret=data.secret,
                keep_previous=data.keep_previous,
            )
        )
        return WebhookOut.of(webhook)

    @get(
        "/{webhook_id:str}/deliveries",
        summary="The delivery log",
        description="Newest first: each delivery with its status and every attempt (time, "
        "status code or error, latency).",
        responses=error_responses(403, 404),
    )
    async def deliveries(
        self,
        webhook_id: FromPath[str],
        principal: NamedDependency[Principal],
        list_deliveries: NamedDependency[ListDeliveries],
        status: Annotated[
            Literal["pending", "delivered", "failed", "dead"] | None, QueryParameter()
        ] = None,
        cursor: Annotated[str | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> DeliveryList:
        page = await list_deliveries(
            ListDeliveriesQuery(
                actor=principal,
                webhook_id=webhook_id,
                status=DeliveryStatus(status) if status else None,
                cursor=cursor,
                limit=limit,
            )
        )
        return DeliveryList(
            items=[DeliveryOut.of(r) for r in page.items], next_cursor=page.next_cursor
        )

    @post(
        "/{webhook_id:str}/deliveries/{delivery_id:str}/replay",
        summary="Replay a dead or failed delivery",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(403, 404, 409),
    )
    async def replay(
        self,
        webhook_id: FromPath[str],
        delivery_id: FromPath[str],
        principal: NamedDependency[Principal],
        replay_delivery: NamedDependency[ReplayDelivery],
    ) -> None:
        await replay_delivery(
            ReplayDeliveryCommand(actor=principal, webhook_id=webhook_id, delivery_id=delivery_id)
        )
