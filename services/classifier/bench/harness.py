"""The benchmark's harness: start the servers under test, drive them with wrk and hey, read
their memory and latency histograms. Results are plain records; report.py turns them into text.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.processes import NotReadyError, http_status, stop, wait_for, wait_http_ok

ROOT = Path(__file__).resolve().parents[3]
CLASSIFIER = ROOT / "services" / "classifier"
DEFAULT_MODEL = CLASSIFIER / "models" / "rodent-behaviour"
LUA = Path(__file__).with_name("requests.lua")
READY_TIMEOUT = 60.0
STOP_GRACE = 30.0


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server in a session of its own, its output in ``log``; stopped with all its workers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            stop(proc, STOP_GRACE, group=True)


def wait_ready(
    url: str, what: str, proc: subprocess.Popen[bytes], *, status: int | None = None
) -> None:
    """Until ``GET url`` answers ``status`` (any 2xx by default); the benchmark ends with one
    line if it never does."""
    try:
        if status is None:
            wait_http_ok(url, what=what, timeout=READY_TIMEOUT, process=proc)
        else:
            wait_for(
                lambda: http_status(url) == status, what=what, timeout=READY_TIMEOUT, process=proc
            )
    except NotReadyError as exc:
        raise SystemExit(f"bench: {exc}") from None


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, in KiB."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, AttributeError):
            continue
    return total


def bench_environment() -> dict[str, str]:
    """The caller's environment without CLASSIFIER_ settings, importing bench and the service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSIFIER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(CLASSIFIER / "src"), str(CLASSIFIER)])
    return env


def service_environment(port: int, model_dir: Path) -> dict[str, str]:
    """The service as deployed: production settings as in the image (the settings' own defaults,
    with the operator's CLASSIFIER_ overrides such as CLASSIFIER_WORKERS), the access log off
    stdout (nobody reads it here) and no fluentd (its cost is the collector's)."""
    return {
        **bench_environment(),
        **{k: v for k, v in os.environ.items() if k.startswith("CLASSIFIER_")},
        "CLASSIFIER_PORT": str(port),
        "CLASSIFIER_MODEL_DIR": str(model_dir),
        "CLASSIFIER_ACCESS_LOG_STDOUT": "false",
        "CLASSIFIER_LOG_LEVEL": "warning",
    }


@dataclass
class Run:
    rps: float
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0


def wrk(url: str, bodies: Path, concurrency: int, seconds: float) -> Run:
    env = {**os.environ, "BENCH_BODIES": str(bodies.parent)}
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{concurrency}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(data[k] for k in data if k.startswith("errors_") and k != "errors_status")
    return Run(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        statuses={str(k): v for k, v in data["statuses"].items()},
        errors=errors,
    )


def server_latency_buckets(base_url: str, route: str) -> dict[float, float]:
    """The service's own latency histogram for one route: cumulative count per bucket bound."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    pattern = re.compile(
        r'^classifier_request_duration_seconds_bucket\{le="([^"]+)",route="([^"]+)"\} (\S+)$'
    )
    for line in text.splitlines():
        match = pattern.match(line)
        if match and match.group(2) == route:
            buckets[float(match.group(1))] = float(match.group(3))
    return buckets


def bucket_percentile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Upper bound of the bucket holding the q-th percentile of what happened in between."""
    deltas = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = deltas[-1][1] if deltas else 0.0
    for bound, count in deltas:
        if total and count >= total * q / 100:
            return bound * 1000
    return float("nan")


@dataclass
class Overload:
    accepted: int
    shed: int
    other: int
    accepted_p50_ms: float
    accepted_p99_ms: float
    shed_p50_ms: float
    shed_p99_ms: float
    rss_start_kib: int
    rss_end_kib: int
    seconds: float
    server_p99_at_most_ms: float


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def overload(
    url: str, body: Path, content_type: str, concurrency: int, seconds: float, server_pid: int
) -> Overload:
    rss_start = tree_rss_kib(server_pid)
    route = "/v1/models/{name}/classify"
    base_url = url.split("/v1/")[0]
    before = server_latency_buckets(base_url, route)
    result = subprocess.run(
        [
            "hey",
            "-z",
            f"{seconds:g}s",
            "-c",
            str(concurrency),
            "-m",
            "POST",
            "-T",
            content_type,
            "-D",
            str(body),
            "-t",
            "20",
            "-o",
            "csv",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rss_end = tree_rss_kib(server_pid)
    server_p99 = bucket_percentile(before, server_latency_buckets(base_url, route), 99)
    accepted, shed, other = [], [], 0
    for row in csv.DictReader(io.StringIO(result.stdout)):
        latency_ms = float(row["response-time"]) * 1000
        if row["status-code"] == "200":
            accepted.append(latency_ms)
        elif row["status-code"] == "503":
            shed.append(latency_ms)
        else:
            other += 1
    return Overload(
        accepted=len(accepted),
        shed=len(shed),
        other=other,
        accepted_p50_ms=percentile(accepted, 50),
        accepted_p99_ms=percentile(accepted, 99),
        shed_p50_ms=percentile(shed, 50),
        shed_p99_ms=percentile(shed, 99),
        rss_start_kib=rss_start,
        rss_end_kib=rss_end,
        seconds=seconds,
        server_p99_at_most_ms=server_p99,
    )
