"""Prometheus metrics of one server: requests, latency, batch sizes and how many tasks each forward pass mixed.

Each server owns a :class:`prometheus_client.CollectorRegistry`, so several apps in one process (the tests) never
share counters.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter("adalink_requests", "HTTP requests answered", ["endpoint", "status"], registry=registry)
        self.latency = Histogram(
            "adalink_request_latency_seconds",
            "Time from a request's arrival to its answer",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "adalink_batch_size",
            "Examples per batch (classification runs a batch as one forward per length group)",
            buckets=_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_tasks = Histogram(
            "adalink_batch_tasks", "Distinct tasks per batch", buckets=_SIZE_BUCKETS, registry=registry
        )
        self.forward_seconds = Histogram(
            "adalink_forward_seconds",
            "Time to answer one batch (all its forward passes)",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.examples = Counter("adalink_examples", "Examples run, by task", ["task"], registry=registry)
        self.queue_depth = Gauge("adalink_queue_depth", "Examples waiting for a forward pass", registry=registry)
        self.tasks = Gauge("adalink_tasks", "Tasks served", registry=registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
