"""Webhook delivery over HTTP."""

from whatsgate.adapters.webhooks.sender import HttpxWebhookSender

__all__ = ["HttpxWebhookSender"]
