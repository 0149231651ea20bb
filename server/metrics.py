"""Prometheus metrics of one server process, served on their own HTTP port.

Counters and histograms are updated where things happen (the call guard, the bus, the
scheduler loop, the claim path); gauges of state owned elsewhere (the event feed, the
database pool, health) are read when Prometheus scrapes. Names and labels are listed, with
example queries, in docs/operators.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.messaging.events import Event

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Gauges:
    """Where the scraped gauges come from; each reader returns the current value."""

    feed_position: Callable[[], float] = lambda: 0.0
    subscribers: Callable[[], float] = lambda: 0.0
    subscriber_lag_max: Callable[[], float] = lambda: 0.0
    pool_in_use: Callable[[], float] = lambda: 0.0
    pool_size: Callable[[], float] = lambda: 0.0
    serving: Callable[[], float] = lambda: 1.0
    leading: Callable[[], float] = lambda: 0.0
    extra: list[tuple[str, str, Callable[[], float]]] = field(default_factory=list)


class _Scraped(Collector):
    def __init__(self, gauges: Gauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = self._gauges
        for name, documentation, read in (
            ("jobtask_event_feed_position", "Last event sequence this process has read", g.feed_position),
            ("jobtask_event_streams", "Open event streams (Subscribe calls)", g.subscribers),
            (
                "jobtask_event_stream_lag_max_events",
                "Events buffered for the slowest open stream",
                g.subscriber_lag_max,
            ),
            ("jobtask_db_pool_connections_in_use", "Database connections checked out", g.pool_in_use),
            ("jobtask_db_pool_connections", "Database connections the pool keeps", g.pool_size),
            ("jobtask_health_serving", "1 while health reports SERVING", g.serving),
            ("jobtask_scheduler_leader", "1 while this process leads the scheduler", g.leading),
            *g.extra,
        ):
            try:
                value = float(read())
            except Exception:  # a gauge that cannot be read is left out of this scrape
                log.debug("metric %s could not be read", name, exc_info=True)
                continue
            yield GaugeMetricFamily(name, documentation, value=value)


class Metrics:
    """The metric families of one process, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.rpcs = Counter(
            "jobtask_rpc_requests",
            "RPCs answered, by service, method and status code",
            ("service", "method", "code"),
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "jobtask_rpc_duration_seconds",
            "Time to answer an RPC (a stream: its whole life), by service and method",
            ("service", "method"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "jobtask_events_appended",
            "Events this process committed to the log, by type",
            ("type",),
            registry=self.registry,
        )
        self.scheduler_steps = Counter(
            "jobtask_scheduler_steps", "Scheduler steps run while leading", registry=self.registry
        )
        self.scheduler_moved = Counter(
            "jobtask_scheduler_jobs",
            "Jobs the scheduler moved: promoted when due, or reaped when their lease lapsed",
            ("action",),
            registry=self.registry,
        )
        self.scheduler_lateness = Histogram(
            "jobtask_scheduler_lateness_seconds",
            "How late a due job was promoted (now minus next_run_at)",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=self.registry,
        )
        self.claimed = Counter(
            "jobtask_jobs_claimed", "Jobs handed to workers by ClaimJobs", registry=self.registry
        )
        self.lease_expiries = Counter(
            "jobtask_lease_expiries", "Runs whose lease lapsed and were reaped", registry=self.registry
        )
        self.pruned = Counter(
            "jobtask_pruned",
            "Rows deleted by retention: events of the log, finished runs of jobs",
            ("what",),
            registry=self.registry,
        )
        self.gauges = Gauges()
        self.registry.register(_Scraped(self.gauges))

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """One answered call of ``/package.Service/Method``."""
        service, _, name = method.lstrip("/").rpartition("/")
        self.rpcs.labels(service, name, code).inc()
        self.rpc_seconds.labels(service, name).observe(seconds)

    def on_event(self, event: Event) -> None:
        """Count a committed event (a bus handler)."""
        self.events.labels(event.type).inc()
        if event.type == "job.lease_expired":
            self.lease_expiries.inc()

    def serve(self, listen: str) -> Any:
        """Serve /metrics on ``host:port`` from a thread; the HTTP server."""
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(
            int(port), addr=host.strip("[]") or "0.0.0.0", registry=self.registry
        )
        return server


NO_METRICS = Metrics()
