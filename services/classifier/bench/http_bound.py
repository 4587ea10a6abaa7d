"""How close any Python HTTP front end could get to the inference ceiling on this machine.

    python -m bench.http_bound [--rounds 3] [--seconds 8]     (or: make bench-bound)

A benchmark fixture, not product code. ``bare_app`` is the least an OIP binary-tensor endpoint
can do: read the body, parse the JSON header, turn the UINT8 bytes into the model's float input,
run the model, answer JSON. No FastAPI, no middleware, no validation, metrics or logs. Run under
uvicorn (httptools, one worker per core) and driven by the same wrk load as ``make bench``, it
bounds what the service's OIP route could reach; with ``BENCH_BARE_MODEL=0`` it answers without
running the model, which measures the HTTP round trip alone. The rounds alternate with the
inference ceiling, as ``make bench`` does; docs/benchmarks.md discusses the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import (
    DEFAULT_MODEL,
    bench_environment,
    process,
    service_environment,
    wait_ready,
    wrk,
)
from bench.workload import oip_binary_uploads, write_wrk_bodies
from bench.yardsticks import inference_ceiling, open_session
from classifier.model.manifest import load_manifest
from harness.processes import free_port

HEADER_LENGTH = b"inference-header-content-length"
# A server to measure: its command line and environment, given its port.
Server = Callable[[int], tuple[list[str], dict[str, str]]]


def bare_app() -> Any:
    """The bare ASGI app (an ASGI callable; uvicorn loads it with ``--factory``)."""
    model_dir = Path(os.environ["BENCH_MODEL_DIR"])
    run_model = os.environ.get("BENCH_BARE_MODEL", "1") != "0"
    session, input_name, output_name = open_session(model_dir)
    labels = len(load_manifest(model_dir).labels)
    scale = np.float32(1 / 255)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()  # startup
            await send({"type": "lifespan.startup.complete"})
            await receive()  # shutdown
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] == "GET":  # up yet?
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        header_length = next(int(v) for k, v in scope["headers"] if k == HEADER_LENGTH)
        shape = json.loads(body[:header_length])["inputs"][0]["shape"]
        pixels = np.frombuffer(body, dtype=np.uint8, offset=header_length).reshape(shape)
        tensor = pixels.astype(np.float32)
        tensor *= scale
        if run_model:
            scores = session.run([output_name], {input_name: tensor})[0]
        else:
            scores = np.zeros((len(tensor), labels), dtype=np.float32)
        answer = json.dumps(
            {
                "outputs": [
                    {
                        "name": "probabilities",
                        "datatype": "FP32",
                        "shape": list(scores.shape),
                        "data": scores.ravel().tolist(),
                    }
                ]
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    manifest = load_manifest(args.model_dir)
    work = Path(tempfile.mkdtemp(prefix="bench-bound-"))
    bodies = write_wrk_bodies(oip_binary_uploads(manifest.input.name), work / "oip")

    def bare(run_model: bool) -> Server:
        def command(port: int) -> tuple[list[str], dict[str, str]]:
            argv = [
                *(sys.executable, "-m", "uvicorn", "bench.http_bound:bare_app", "--factory"),
                *("--workers", str(cores), "--http", "httptools", "--log-level", "warning"),
                *("--no-access-log", "--port", str(port)),
            ]
            env = {
                **bench_environment(),
                "BENCH_MODEL_DIR": str(args.model_dir),
                "BENCH_BARE_MODEL": "1" if run_model else "0",
            }
            return argv, env

        return command

    def service(port: int) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, "-m", "classifier"], service_environment(port, args.model_dir)

    servers: dict[str, Server] = {
        "bare app, no model (the HTTP round trip alone)": bare(run_model=False),
        "bare app, with the model": bare(run_model=True),
        "this service (python -m classifier)": service,  # as make bench runs it
    }
    ceiling: list[float] = []
    results: dict[str, list[float]] = {name: [] for name in servers}
    for round_number in range(1, args.rounds + 1):
        ceiling.append(inference_ceiling(args.model_dir, cores, args.seconds))
        for index, (name, server) in enumerate(servers.items()):
            port = free_port()
            argv, env = server(port)
            url = f"http://127.0.0.1:{port}"
            with process(argv, env, work / f"server-{index}-{round_number}.log") as proc:
                wait_ready(f"{url}/health/ready", name, proc)  # 200, or the bare app's 204
                run = wrk(
                    f"{url}/v2/models/{manifest.name}/infer", bodies, args.concurrency, args.seconds
                )
            if run.errors or set(run.statuses) != {"200"}:
                raise SystemExit(f"bench: {name}: {run.statuses}, {run.errors} failed")
            results[name].append(run.rps)
        measured = ", ".join(f"{values[-1]:.0f}" for values in results.values())
        print(
            f"round {round_number}: ceiling {ceiling[-1]:.0f}/s; servers {measured}/s", flush=True
        )
    # Each ratio is taken within its round, where server and ceiling shared the machine's mood.
    load = f"OIP binary, {args.concurrency} connections, {args.rounds} rounds"
    print(f"\n| {load} | requests/s | of ceiling |")
    print("|---|---|---:|")
    rounds = ", ".join(f"{value:.0f}" for value in ceiling)
    print(f"| inference ceiling (model alone, batch 1, {cores} processes) | {rounds} | |")
    for name, values in results.items():
        ratio = statistics.median(rps / limit for rps, limit in zip(values, ceiling, strict=True))
        rounds = ", ".join(f"{value:.0f}" for value in values)
        print(f"| {name} | {rounds} | {ratio * 100:.0f}% |")


if __name__ == "__main__":
    main()
