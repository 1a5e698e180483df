"""The servers the REST benchmark loads, each run as its own process under uvicorn.

``python -m bench._rest_server bare --port P --size N``: a bare ASGI app (no framework) that
answers GET with N bytes of JSON and POST with a small 202 JSON: the reference.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def json_of_size(size: int) -> bytes:
    """A JSON document of ``size`` bytes (give or take a few), shaped like a page of items."""
    item = {"id": "0" * 26, "chat": "5511900000000@s.whatsapp.net", "name": "Contact", "n": 0}
    one = len(json.dumps(item)) + 1
    items = [dict(item, n=i) for i in range(max(1, size // one))]
    body = json.dumps({"items": items, "next_cursor": None}).encode()
    return body + b" " * max(0, size - len(body))


def bare_app(get_body: bytes) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    post_body = json.dumps({"id": "0" * 26, "status": "queued"}).encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the request body (POST), as a real app has to
            message = await receive()
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            status, body = 202, post_body
        else:
            status, body = 200, get_body
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["bare"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args()
    app = bare_app(json_of_size(args.size))
    print("READY {}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    _main()
