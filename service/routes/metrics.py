"""Prometheus metrics."""

from __future__ import annotations

from fastapi import Request, Response

from service.metrics import CONTENT_TYPE, Metrics
from service.routing import ApiRouter

router = ApiRouter(tags=["metrics"])


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    """Request counts and latencies by route, points per collection, collection open
    times and micro-batch sizes, in Prometheus's text format."""
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE)
