"""Prometheus metrics, one registry per app so tests can build as many apps as they like.

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` is set (``python -m classifier``
does it) and every process writes its samples there; a scrape, whichever worker answers it,
then sums all of them, so ``/metrics`` describes the whole server, not one worker.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Frame uploads take milliseconds; the tail buckets catch overload and slow clients.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INFERENCE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
SHED_REASONS = ("concurrency", "queue")


class Metrics:
    """Every metric the service exposes on ``/metrics``."""

    def __init__(self) -> None:
        self.multiprocess = MULTIPROCESS_ENV in os.environ
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "classifier_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "classifier_request_duration_seconds",
            "Time from the first byte of a request to the end of its response.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "classifier_request_queue_seconds",
            "Time a request waited for its worker's event loop before the service began it.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "classifier_inference_seconds",
            "Time the model spends on one batch.",
            buckets=INFERENCE_BUCKETS,
            registry=self.registry,
        )
        self.decode = Histogram(
            "classifier_decode_seconds",
            "Time spent decoding the frames of one request into a tensor.",
            buckets=INFERENCE_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "classifier_batch_size",
            "Sequences per model call.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "classifier_requests_in_flight",
            "Requests being processed now (admitted, not yet answered).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.queue_depth = Gauge(
            "classifier_inference_queue_depth",
            "Sequences waiting for the model.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.shed = Counter(
            "classifier_requests_shed",
            "Requests refused with 503, by reason: concurrency (too many in flight) or queue "
            "(waited too long for the worker to start them).",
            ["reason"],
            registry=self.registry,
        )
        for reason in SHED_REASONS:  # exported at 0 from the start, so rates have a baseline
            self.shed.labels(reason)

        self.dropped_log_records = Counter(
            "classifier_log_records_dropped",
            "Log records dropped because fluentd was down, stalled or too slow.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # untyped upstream
        return generate_latest(merged)

    def close(self) -> None:
        """Retire this process's live gauges from the shared multiprocess samples."""
        if self.multiprocess:
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # untyped upstream
