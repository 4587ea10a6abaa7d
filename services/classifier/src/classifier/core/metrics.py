"""Prometheus metrics, one registry per app so tests can build as many apps as they like.

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` is set (``python -m classifier``
does it) and every process writes its samples there; a scrape, whichever worker answers it,
then sums all of them, so ``/metrics`` describes the whole server, not one worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Frame uploads take milliseconds; the tail buckets catch overload and slow clients.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INFERENCE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
SHED_REASONS = ("concurrency", "queue", "uploads")
# Jobs take seconds (a short clip) to hours (a night of video).
JOB_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200)
#: Frames a second of one job: a slow disk or an overloaded host to the decode floor (~2,000).
JOB_FPS_BUCKETS = (25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0)
JOB_OUTCOMES = ("succeeded", "failed", "cancelled")
JOB_STATUSES = ("queued", "running", *JOB_OUTCOMES)

#: Reads how many jobs are in each status now, from the job store.
JobCounts = Callable[[], Mapping[str, int]]


class _JobStoreCollector(Collector):
    """Jobs by status, read from the store at scrape time: the store is shared by every
    process, so the numbers are the whole service's without summing anything."""

    def __init__(self, counts: JobCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self._counts()
        except Exception:  # a busy or broken store must not fail the whole scrape
            return
        family = GaugeMetricFamily(
            "classifier_jobs",
            "Jobs in the store now, by status (queued: waiting for a worker).",
            labels=["status"],
        )
        for status in JOB_STATUSES:
            family.add_metric([status], counts.get(status, 0))
        yield family


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
            "Requests refused with 503, by reason: concurrency (too many in flight), queue "
            "(waited too long for the worker to start them) or uploads (too many recording "
            "uploads at once).",
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

        self.jobs_finished = Counter(
            "classifier_jobs_finished",
            "Recording jobs that ended, by outcome.",
            ["status"],
            registry=self.registry,
        )
        for outcome in JOB_OUTCOMES:
            self.jobs_finished.labels(outcome)
        self.job_frames = Counter(
            "classifier_job_frames_analysed",
            "Frames of recordings analysed by jobs that succeeded.",
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "classifier_job_duration_seconds",
            "Time from a job's start (its last attempt) to its end, by outcome.",
            ["status"],
            buckets=JOB_DURATION_BUCKETS,
            registry=self.registry,
        )
        # One observation per job, no job label: a label per job id would grow without bound.
        self.job_frames_per_second = Histogram(
            "classifier_job_frames_per_second",
            "Frames analysed per second of a succeeded job, from its start to its end (decoding, "
            "the model and the result files).",
            buckets=JOB_FPS_BUCKETS,
            registry=self.registry,
        )
        self.uploads_in_flight = Gauge(
            "classifier_recording_uploads_in_flight",
            "Recording uploads being received now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        # Read at scrape time rather than counted: see _JobStoreCollector.
        self._store_registry = CollectorRegistry()

    def watch_job_store(self, counts: JobCounts) -> None:
        """Export ``classifier_jobs{status}`` from ``counts`` at every scrape."""
        self._store_registry.register(_JobStoreCollector(counts))

    def render(self) -> bytes:
        from_store = generate_latest(self._store_registry)
        if not self.multiprocess:
            return generate_latest(self.registry) + from_store
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # untyped upstream
        return generate_latest(merged) + from_store

    def close(self) -> None:
        """Retire this process's live gauges from the shared multiprocess samples."""
        if self.multiprocess:
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # untyped upstream
