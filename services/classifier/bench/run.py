"""`make bench`: run every scenario and yardstick in alternation, report medians, check targets.

    python -m bench.run [--rounds 3] [--seconds 8] [--overload-seconds 60] [--report PATH]

Starts the classifier as deployed (``python -m classifier``, production settings) and the
seed-style Flask baseline under gunicorn, drives both with wrk (closed loop, loopback), runs the
in-process yardsticks between them, and drives an overload with hey (per-request CSV, so the
latency of accepted requests is known exactly). Results go to docs/benchmarks.md between the
results markers; the rest of that page is prose kept by hand.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bench.workload import frame_uploads, oip_binary_uploads, write_wrk_bodies
from bench.yardsticks import inference_ceiling, naive_reference

ROOT = Path(__file__).resolve().parents[3]
CLASSIFIER = ROOT / "services" / "classifier"
DEFAULT_MODEL = CLASSIFIER / "models" / "rodent-behaviour"
LUA = Path(__file__).with_name("requests.lua")
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"bench: {what} did not come up within {timeout:g} s")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


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


SCENARIOS = {
    # name: (path, field or None for OIP, format)
    "v1 classify, 24 PNG": ("/v1/models/{model}/classify", "frames", "png"),
    "predict (seed API), 24 PNG": ("/predict", "images", "png"),
    "v1 classify, 24 JPEG": ("/v1/models/{model}/classify", "frames", "jpeg"),
    "OIP infer, binary UINT8 tensor": ("/v2/models/{model}/infer", None, "binary"),
}


def versions() -> str:
    names = [
        "fastapi",
        "starlette",
        "uvicorn",
        "onnxruntime",
        "pillow",
        "numpy",
        "flask",
        "gunicorn",
    ]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def tool_version(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True)
    return (result.stdout + result.stderr).strip().splitlines()[0]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--overload-concurrency", type=int, default=256)
    parser.add_argument("--overload-seconds", type=float, default=60.0)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args(argv)
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is not installed (Debian: apt-get install wrk hey)")

    cores = os.cpu_count() or 1
    from classifier.model.manifest import load_manifest

    manifest = load_manifest(args.model_dir)
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    uploads = {
        "png": frame_uploads("frames", "png"),
        "png-seed": frame_uploads("images", "png"),
        "jpeg": frame_uploads("frames", "jpeg"),
        "binary": oip_binary_uploads(manifest.input.name),
    }
    bodies = {key: write_wrk_bodies(value, work / key) for key, value in uploads.items()}
    sequences = [[part for part in _frames_of(u.body)] for u in uploads["png"]]

    server_port, seed_port = free_port(), free_port()
    server_env = service_environment(server_port, args.model_dir)
    seed_env = {**bench_environment(), "BENCH_MODEL_DIR": str(args.model_dir)}
    results: dict[str, list[Run]] = {name: [] for name in SCENARIOS}
    results["seed-style baseline (Flask + gunicorn)"] = []
    ceiling: list[float] = []
    naive: list[float] = []
    model = manifest.name
    server_url = f"http://127.0.0.1:{server_port}"
    seed_url = f"http://127.0.0.1:{seed_port}"

    with (
        process([sys.executable, "-m", "classifier"], server_env, work / "server.log") as server,
        process(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(cores),
                "-b",
                f"127.0.0.1:{seed_port}",
                "--log-level",
                "warning",
                "bench.seed_app:create_app()",
            ],
            seed_env,
            work / "seed.log",
        ),
    ):
        wait_until(lambda: http_status(f"{server_url}/health/ready") == 200, "the classifier")
        wait_until(lambda: http_status(f"{seed_url}/predict") == 405, "the seed baseline")
        print(f"bench: {cores} cores; classifier {server_url}, seed {seed_url}; work in {work}")
        for round_number in range(1, args.rounds + 1):
            ceiling.append(inference_ceiling(args.model_dir, cores, args.seconds))
            print(f"round {round_number}: inference ceiling {ceiling[-1]:.0f}/s", flush=True)
            naive.append(naive_reference(args.model_dir, sequences, cores, args.seconds))
            print(f"round {round_number}: naive in-process {naive[-1]:.0f}/s", flush=True)
            seed = wrk(f"{seed_url}/predict", bodies["png-seed"], args.concurrency, args.seconds)
            results["seed-style baseline (Flask + gunicorn)"].append(seed)
            print(f"round {round_number}: seed baseline {seed.rps:.0f}/s", flush=True)
            for name, (path, fieldname, fmt) in SCENARIOS.items():
                key = "png-seed" if fieldname == "images" else fmt
                run = wrk(
                    server_url + path.format(model=model),
                    bodies[key],
                    args.concurrency,
                    args.seconds,
                )
                results[name].append(run)
                print(
                    f"round {round_number}: {name} {run.rps:.0f}/s p50 {run.p50_ms:.1f} ms "
                    f"p99 {run.p99_ms:.1f} ms {run.statuses}",
                    flush=True,
                )
        first_png = work / "png" / "body_0.bin"
        load = overload(
            server_url + f"/v1/models/{model}/classify",
            first_png,
            uploads["png"][0].headers["Content-Type"],
            args.overload_concurrency,
            args.overload_seconds,
            server.pid,
        )
        print(f"overload: {load}", flush=True)

    report = render(
        results, statistics.median(ceiling), statistics.median(naive), load, args, cores
    )
    print(report)
    if not args.no_report:
        write_report(args.report, report)
    return 0 if "FAIL" not in report else 1


def _frames_of(body: bytes) -> list[bytes]:
    from classifier.pipeline.upload import UploadLimits, split_frames

    boundary = body[2 : body.index(b"\r\n")]
    limits = UploadLimits(max_request_bytes=len(body), max_frame_bytes=len(body), max_parts=1000)
    return [f.data for f in split_frames(body, boundary, fields=("frames",), limits=limits)]


def _median_run(runs: list[Run]) -> Run:
    return Run(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p90_ms=statistics.median(r.p90_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        statuses={
            k: sum(r.statuses.get(k, 0) for r in runs)
            for k in {k for r in runs for k in r.statuses}
        },
        errors=sum(r.errors for r in runs),
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render(
    results: dict[str, list[Run]],
    ceiling: float,
    naive: float,
    load: Overload,
    args: argparse.Namespace,
    cores: int,
) -> str:
    seed = _median_run(results["seed-style baseline (Flask + gunicorn)"])
    v1 = _median_run(results["v1 classify, 24 PNG"])
    oip = _median_run(results["OIP infer, binary UINT8 tensor"])
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {cores} cores "
        f"({cpu_model()}), Python {platform.python_version()}; {versions()}; "
        f"{tool_version(['wrk', '-v'])}; hey. Each figure is the median of {args.rounds} rounds "
        f"of {args.seconds:g} s; the yardsticks and the HTTP scenarios alternate within each "
        f"round. HTTP scenarios: wrk, 2 threads, {args.concurrency} connections, closed loop, "
        "loopback, 8 clips (one per class) in rotation.",
        "",
        "| scenario | sequences/s | p50 ms | p90 ms | p99 ms | non-200 |",
        "|---|---:|---:|---:|---:|---:|",
        f"| inference ceiling (model alone, batch 1, {cores} processes) | {ceiling:.0f} | | | | |",
        f"| naive in-process reference (Pillow + model, {cores} processes) | {naive:.0f} | | | | |",
    ]
    for name, runs in results.items():
        run = _median_run(runs)
        non_200 = sum(v for k, v in run.statuses.items() if k != "200") + run.errors
        lines.append(
            f"| {name} | {run.rps:.0f} | {run.p50_ms:.1f} | {run.p90_ms:.1f} | "
            f"{run.p99_ms:.1f} | {non_200} |"
        )
    growth = (load.rss_end_kib - load.rss_start_kib) / max(load.rss_start_kib, 1) * 100
    total = load.accepted + load.shed + load.other
    lines += [
        "",
        f"Overload: hey, {args.overload_concurrency} connections, {load.seconds:g} s, one PNG "
        f"upload: {total} requests, {load.accepted} accepted (200), {load.shed} shed (503), "
        f"{load.other} other; accepted p50 {load.accepted_p50_ms:.1f} ms, p99 "
        f"{load.accepted_p99_ms:.1f} ms; "
        + (
            f"shed p50 {load.shed_p50_ms:.1f} ms, p99 {load.shed_p99_ms:.1f} ms; "
            if load.shed
            else ""
        )
        + f"the service's own p99 (its latency histogram, first byte to last) at most "
        f"{load.server_p99_at_most_ms:.0f} ms; resident memory "
        f"{load.rss_start_kib / 1024:.0f} -> {load.rss_end_kib / 1024:.0f} MiB ({growth:+.1f}%).",
        "",
        "| target | measured | verdict |",
        "|---|---:|---|",
        f"| /v1 PNG >= 1.7x seed-style baseline | {v1.rps / seed.rps:.2f}x | "
        f"{_verdict(v1.rps >= 1.7 * seed.rps)} |",
        f"| /v1 PNG >= 1.0x naive in-process reference | {v1.rps / naive:.2f}x | "
        f"{_verdict(v1.rps >= naive)} |",
        f"| /v1 PNG p99 <= 4x p50 | {v1.p99_ms / v1.p50_ms:.2f}x | "
        f"{_verdict(v1.p99_ms <= 4 * v1.p50_ms)} |",
        # Retired (docs/benchmarks.md): out of reach for any Python front end here; still shown.
        f"| OIP binary share of the inference ceiling (70% target retired) | "
        f"{oip.rps / ceiling * 100:.0f}% | reported, not a target |",
        f"| overload: accepted p99 < 250 ms | {load.accepted_p99_ms:.0f} ms | "
        f"{_verdict(load.accepted_p99_ms < 250)} |",
        # "Fast" 503s: answered within the bound accepted requests must meet. A shed request
        # has waited up to CLASSIFIER_MAX_QUEUE_MS (100 ms) before the worker reached it.
        f"| overload: excess shed with 503s answered within 250 ms (p99), nothing else | "
        f"{load.other} other, "
        + (
            f"{load.shed / max(total, 1):.0%} shed, p99 {load.shed_p99_ms:.0f} ms"
            if load.shed
            else "nothing shed"
        )
        + f" | {_verdict(load.other == 0 and load.shed > 0 and load.shed_p99_ms < 250)} |",
        f"| overload: memory growth <= 10% | {growth:+.1f}% | {_verdict(growth <= 10)} |",
    ]
    return "\n".join(lines)


def write_report(path: Path, report: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else f"{MARK_START}\n{MARK_END}\n"
    start, end = text.index(MARK_START) + len(MARK_START), text.index(MARK_END)
    path.write_text(text[:start] + "\n" + report + "\n" + text[end:], encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
