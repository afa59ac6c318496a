"""What an operator watches: Prometheus metrics at ``/metrics``, ``/livez`` and ``/readyz``,
a request id on every answer, and one structured access-log line per request.

The middleware is plain ASGI (no per-request task or body copy): it counts
bytes as they pass, labels requests by their route *template*
(``/api/v1/repos/{repo}``) so that paths never become label values, and logs
through a queue so that no request waits for a log write. Gauges of the
database (commits, jobs and datums by state, queue depth, spouts) are read
when Prometheus scrapes, not on the request path.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import queue
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from datumflow.storage_service.core import stats
from datumflow.storage_service.store.store import Store
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["JsonFormatter", "Metrics", "install", "request_id"]

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("datumflow_request_id", default="-")
access_log = logging.getLogger("datumflow.access")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_DATUM_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_UNPROBED = {"/metrics", "/livez", "/readyz", "/healthz"}


class Metrics:
    """The service's metrics, in a registry of its own (several apps may live in one process)."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("datumflow_http_requests", "HTTP requests answered, by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("datumflow_http_request_duration_seconds", "time to answer, by route",
                                 ["method", "route"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.bytes_in = Counter("datumflow_http_received_bytes", "request body bytes", ["route"],
                                registry=self.registry)
        self.bytes_out = Counter("datumflow_http_sent_bytes", "response body bytes", ["route"],
                                 registry=self.registry)
        self.commits = Counter("datumflow_commits_finished", "commits finished by this process",
                               ["origin"], registry=self.registry)
        self.gc_reclaimed = Counter("datumflow_gc_reclaimed_bytes", "bytes garbage collection freed",
                                    registry=self.registry)
        self.datum_seconds = Histogram("datumflow_datum_duration_seconds", "run time of datums that ran",
                                       buckets=_DATUM_BUCKETS, registry=self.registry)
        self.registry.register(_StoreCollector(store, self))
        store.on_commit_finished.append(lambda commit: self.commits.labels(str(commit.origin.kind)).inc()
                                        if hasattr(commit.origin, "kind") else self.commits.labels("-").inc())

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


class _StoreCollector:
    """Gauges read from the database at scrape time; datum run times fed to the histogram."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self.mark = time.time()

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        engine = self.store.engine
        for what in ("commits", "jobs", "datums"):
            family = GaugeMetricFamily(f"datumflow_{what}", f"{what} in the store, by state", labels=["state"])
            for state, n in sorted(stats.by_state(engine, what).items()):
                family.add_metric([state], n)
            yield family
        yield GaugeMetricFamily("datumflow_jobs_waiting", "jobs not finished (queue depth)",
                                value=stats.waiting_jobs(engine))
        durations, self.mark = stats.datum_durations_since(engine, self.mark)
        for seconds in durations:
            self.metrics.datum_seconds.observe(seconds)
        yield from _spout_families(engine)


def _spout_families(engine: Any) -> Iterator[Metric]:
    from datumflow.storage_service.spouts.registry import list_spouts

    messages = GaugeMetricFamily("datumflow_spout_messages", "messages a spout run has committed", labels=["spout"])
    age = GaugeMetricFamily("datumflow_spout_heartbeat_age_seconds", "seconds since a spout's last heartbeat",
                            labels=["spout", "state"])
    now = time.time()
    for spout in list_spouts(engine):
        messages.add_metric([spout.name], spout.messages)
        age.add_metric([spout.name, str(spout.state)], max(0.0, now - spout.heartbeat))
    yield messages
    yield age


class _Observe:
    """ASGI middleware: request id, metrics and the access-log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or uuid.uuid4().hex[:16]
        token = request_id.set(rid)
        started = time.perf_counter()
        sizes = [0, 0]
        status = [500]

        async def counted_receive() -> Message:
            message = await receive()
            sizes[0] += len(message.get("body", b""))
            return message

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            elif message["type"] == "http.response.body":
                sizes[1] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counted_receive, tagged_send)
        finally:
            self._record(scope, status[0], time.perf_counter() - started, sizes, rid)
            request_id.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float, sizes: list[int], rid: str) -> None:
        route, method = _route_of(scope), scope["method"]
        m = self.metrics
        m.requests.labels(method, route, str(status)).inc()
        m.latency.labels(method, route).observe(seconds)
        m.bytes_in.labels(route).inc(sizes[0])
        m.bytes_out.labels(route).inc(sizes[1])
        if route not in _UNPROBED:
            access_log.info("request", extra={"http": {
                "method": method, "path": scope["path"], "route": route, "status": status,
                "ms": round(seconds * 1000, 2), "in": sizes[0], "out": sizes[1], "id": rid}})


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")[:64]
            return text if text.replace("-", "").replace("_", "").isalnum() else None
    return None


def _route_of(scope: Scope) -> str:
    """The route template, never the raw path (unbounded label values would grow without end)."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if template:
        return str(template)
    path = str(scope.get("path", ""))
    if path in _UNPROBED:
        return path
    for prefix in ("/s3", "/console", "/api/v1"):
        if path == prefix or path.startswith(prefix + "/"):
            return prefix + "/*"
    return "other"


def install(app: FastAPI, store: Store) -> Metrics:
    """Add ``/metrics``, ``/livez``, ``/readyz`` and the middleware to ``app``."""
    metrics = Metrics(store)

    @app.get("/metrics", tags=["service"], include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/livez", tags=["service"])
    def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"])
    async def readyz() -> JSONResponse:
        checks = await run_in_threadpool(_readiness, store)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                            status_code=200 if ready else 503)

    app.add_middleware(_Observe, metrics=metrics)
    app.state.metrics = metrics
    return metrics


def _readiness(store: Store) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        from sqlalchemy import text

        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready; the message says which
        checks["database"] = f"error: {type(exc).__name__}: {exc}"[:300]
    try:
        store.objects.probe()
        checks["objects"] = "ok"
    except Exception as exc:  # the object store is unreachable or refuses us
        checks["objects"] = f"error: {type(exc).__name__}: {exc}"[:300]
    return checks


# -- logs ----------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and any ``http`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        http = getattr(record, "http", None)
        if http:
            entry["http"] = http
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        http = getattr(record, "http", None)
        if http:
            return (f"{http['method']} {http['path']} {http['status']} {http['ms']}ms "
                    f"in={http['in']} out={http['out']} id={http['id']}")
        return super().format(record)


def configure_logging(fmt: str = "json", level: str = "info") -> logging.handlers.QueueListener:
    """Route datumflow's and uvicorn's logs through a queue to stderr, formatted as ``fmt``.

    Returns the listener (a thread writing the records); stop it at shutdown.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else _TextFormatter("%(levelname)s %(name)s: %(message)s"))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, handler, respect_handler_level=False)
    queued = _ContextQueueHandler(records)
    for name in ("datumflow", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [queued]
        logger.setLevel(level.upper())
        logger.propagate = False
    listener.start()
    return listener


class _ContextQueueHandler(logging.handlers.QueueHandler):
    """Keeps the request id of the emitting task (the writer thread has none)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.request_id = request_id.get()
        prepared: logging.LogRecord = super().prepare(record)
        return prepared
