"""`make bench`: run every scenario and yardstick in alternation, report medians, check targets.

    python -m bench.run [--rounds 3] [--seconds 8] [--overload-seconds 60] [--report PATH]

Starts the classifier as deployed (``python -m classifier``, production settings) and the
seed-style Flask baseline under gunicorn, drives both with wrk (closed loop, loopback), runs the
in-process yardsticks between them, and drives an overload with hey (per-request CSV, so the
latency of accepted requests is known exactly). Results go to docs/benchmarks.md between the
results markers; the rest of that page is prose kept by hand. This module is the plan; the
servers and load tools are bench/harness.py's job, the text bench/report.py's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.harness import (
    DEFAULT_MODEL,
    ROOT,
    Run,
    bench_environment,
    overload,
    process,
    service_environment,
    wait_ready,
    wrk,
)
from bench.report import render, write_report
from bench.workload import frame_uploads, oip_binary_uploads, write_wrk_bodies
from bench.yardsticks import inference_ceiling, naive_reference
from harness.processes import free_port

SCENARIOS = {
    # name: (path, field or None for OIP, format)
    "v1 classify, 24 PNG": ("/v1/models/{model}/classify", "frames", "png"),
    "predict (seed API), 24 PNG": ("/predict", "images", "png"),
    "v1 classify, 24 JPEG": ("/v1/models/{model}/classify", "frames", "jpeg"),
    "OIP infer, binary UINT8 tensor": ("/v2/models/{model}/infer", None, "binary"),
}


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
        ) as seed_server,
    ):
        wait_ready(f"{server_url}/health/ready", "the classifier", server, status=200)
        # The seed app has no health route: a GET on its POST-only route answers 405 once up.
        wait_ready(f"{seed_url}/predict", "the seed baseline", seed_server, status=405)
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


if __name__ == "__main__":
    sys.exit(main())
