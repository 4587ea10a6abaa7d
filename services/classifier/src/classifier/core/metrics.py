"""Prometheus metrics, one registry per app so tests can build as many apps as they like."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

# Frame uploads take milliseconds; the tail buckets catch overload and slow clients.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INFERENCE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class _DroppedRecords(Collector):
    """Reads the log shipper's drop count at scrape time, so the shipper needs no metrics code."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "classifier_log_records_dropped",
            "Log records dropped because fluentd was down, stalled or too slow.",
        )
        family.add_metric([], self._read())
        yield family


class Metrics:
    """Every metric the service exposes on ``/metrics``."""

    def __init__(self) -> None:
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
        )
        self.queue_depth = Gauge(
            "classifier_inference_queue_depth",
            "Sequences waiting for the model.",
            registry=self.registry,
        )
        self.shed = Counter(
            "classifier_requests_shed",
            "Requests refused with 503 because the service was at capacity.",
            registry=self.registry,
        )

    def watch_dropped_log_records(self, read: Callable[[], int]) -> None:
        self.registry.register(_DroppedRecords(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
