"""Prometheus metrics, in a registry of each app's own (no process-wide globals).

- ``vecserve_requests_total`` and ``vecserve_request_duration_seconds``: by method, route
  template (``/collections/{name}/search``, never the raw path, so the number of series
  stays bounded) and status. Requests that match no route count as route ``unmatched``.
- ``vecserve_collection_points``: points per collection, read when scraped.
- ``vecserve_collection_gpu_memory_bytes``: GPU memory each collection's index holds (an
  estimate made when it was placed and as it grew; 0 for an index on the CPU).
- ``vecserve_collection_open_seconds``: opening a collection at start-up, which loads its
  index and catches it up with the store, or rebuilds it.
- ``vecserve_index_build_seconds``: by index family, every index built from a whole
  store (training, adding, calibrating): on open, and the rebuilds that maintenance runs
  in the background as a collection grows or gathers tombstones.
- ``vecserve_search_batch_size``: queries searched together by the micro-batcher, which
  observes into :attr:`Metrics.batch_size`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import Scope

from indexer import Engine, IndexBuild
from indexer.errors import NotFound
from service.routing import RouteTable

CONTENT_TYPE = CONTENT_TYPE_LATEST
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_OPEN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The service's metrics; ``render()`` is the body of ``GET /metrics``.

    ``collection_sizes`` and ``gpu_bytes`` are called at each scrape and return points
    and GPU bytes per collection.
    """

    def __init__(
        self,
        collection_sizes: Callable[[], Mapping[str, int]],
        gpu_bytes: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")

        def histogram(
            name: str, documentation: str, buckets: tuple[float, ...], *labelnames: str
        ) -> Histogram:
            return Histogram(
                name, documentation, labelnames, buckets=buckets, registry=self.registry
            )

        self.requests = Counter(
            "vecserve_requests", "HTTP requests answered", labels, registry=self.registry
        )
        self.request_seconds = histogram(
            "vecserve_request_duration_seconds",
            "Time from a request's arrival to the end of its response",
            _LATENCY_BUCKETS,
            *labels,
        )
        self.collection_open_seconds = histogram(
            "vecserve_collection_open_seconds",
            "Time to open a collection at start-up: load (or rebuild) and catch up its index",
            _OPEN_BUCKETS,
        )
        self.index_build_seconds = histogram(
            "vecserve_index_build_seconds",
            "Time to build an index from a collection's whole store, by index family",
            _OPEN_BUCKETS,
            "family",
        )
        self.batch_size = histogram(
            "vecserve_search_batch_size",
            "Queries searched as one batch by the micro-batcher",
            _BATCH_BUCKETS,
        )
        self.registry.register(
            _CollectionGauge(
                "vecserve_collection_points", "Points in each collection", collection_sizes
            )
        )
        self.registry.register(
            _CollectionGauge(
                "vecserve_collection_gpu_memory_bytes",
                "GPU memory held by each collection's index (estimated; 0 on the CPU)",
                gpu_bytes,
            )
        )

    def observe_index_build(self, build: IndexBuild) -> None:
        self.index_build_seconds.labels(build.family).observe(build.seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CollectionGauge(Collector):
    """One gauge per collection, read when scraped."""

    def __init__(
        self, name: str, documentation: str, read: Callable[[], Mapping[str, int]]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.sizes = read

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.documentation, labels=["collection"])

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for name, count in sorted(self.sizes().items()):
            family.add_metric([name], count)
        return [family]


def collection_sizes(engine: Engine) -> dict[str, int]:
    """Points per collection, skipping any dropped while they are counted."""
    sizes = {}
    for name in engine.list_collections():
        try:
            sizes[name] = engine.get_collection(name).count()
        except NotFound:
            continue
    return sizes


def collection_gpu_bytes(engine: Engine) -> dict[str, int]:
    """GPU bytes per collection, skipping any dropped while they are read."""
    held = {}
    for name in engine.list_collections():
        try:
            held[name] = int(engine.get_collection(name).index_info["gpu_bytes"])
        except NotFound:
            continue
    return held


class RequestMetrics:
    """Counts and times HTTP requests, including those refused before routing (for
    :class:`~service.gateway.Gateway`)."""

    def __init__(self, metrics: Metrics, routes: RouteTable) -> None:
        self.metrics = metrics
        self.routes = routes
        # Each label set's counter and histogram, looked up once: prometheus_client's
        # labels() validates and locks on every call. Label sets are few (methods, route
        # templates and statuses are bounded).
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        """One request to ``scope``'s route, answered ``status`` in ``seconds``."""
        route = self.routes.template(scope) or "unmatched"
        method = scope["method"] if scope["method"] in _METHODS else "other"
        labels = (method, route, status)
        series = self._series.get(labels)
        if series is None:
            names = (method, route, str(status))
            series = self._series[labels] = (
                self.metrics.requests.labels(*names),
                self.metrics.request_seconds.labels(*names),
            )
        series[0].inc()
        series[1].observe(seconds)
