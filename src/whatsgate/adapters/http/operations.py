"""``/health`` and ``/metrics``: for load balancers and Prometheus, no credentials needed."""

from __future__ import annotations

import logging

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from whatsgate.adapters.http.schemas import HealthOut
from whatsgate.adapters.metrics import Metrics
from whatsgate.usecases.health import ReadHealth

log = logging.getLogger("whatsgate.http")

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


@get(
    "/health",
    tags=["Operations"],
    summary="Health",
    description="No auth. Sessions by status; 503 `unavailable` when the database does not answer.",
    responses={503: ResponseSpec(data_container=HealthOut, description="The database is down")},
)
async def health(read_health: NamedDependency[ReadHealth]) -> Response[HealthOut]:
    try:
        report = await read_health()
    except Exception:
        log.exception("health check: the database did not answer")
        return Response(HealthOut(status="unavailable", sessions={}), status_code=503)
    return Response(HealthOut(status="ok", sessions=report.sessions))


@get(
    "/metrics",
    tags=["Operations"],
    summary="Prometheus metrics",
    description="No auth. Sessions by status, messages in and out, outbox depth, send "
    "latency, webhook failures.",
    responses={200: ResponseSpec(data_container=str, description="Prometheus text format")},
)
async def metrics(
    read_health: NamedDependency[ReadHealth], metrics: NamedDependency[Metrics]
) -> Response[str]:
    report = await read_health()
    text = metrics.render(sessions=report.sessions, outbox_depth=report.outbox_depth)
    return Response(text, media_type=PROMETHEUS)


operation_handlers = [health, metrics]
