"""The classifier as deployed: a real uvicorn process on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from harness.processes import free_port
from tests.support.frames import encode, files, gray_frame, sequence
from tests.support.server import classifier_env, running_classifier
from tests.support.waiting import until_in_flight

pytestmark = pytest.mark.integration

URL = "/v1/models/brightness/classify"


def _start_and_fail(model_dir: Path) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "classifier"],
        env=classifier_env(model_dir, free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stderr


def test_a_missing_model_fails_start_up_with_one_line(tmp_path: Path) -> None:
    code, stderr = _start_and_fail(tmp_path / "nowhere")

    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("classifier: cannot serve the model: no model manifest at")


def test_a_mismatched_model_fails_start_up_with_one_line(model_dir: Path) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["labels"] = manifest["labels"][:3]
    (model_dir / "manifest.json").write_text(json.dumps(manifest))

    code, stderr = _start_and_fail(model_dir)

    assert code == 2
    assert stderr.strip().splitlines() == [
        "classifier: cannot serve the model: graph output 'logits' has 4 classes, "
        "manifest lists 3 labels"
    ]


async def test_serves_over_real_http_with_json_access_lines(model_dir: Path) -> None:
    # One worker, so the application events come in one process's order.
    with running_classifier(model_dir, env={"CLASSIFIER_WORKERS": "1"}) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post(
                URL, files=files("frames", sequence(255)), headers={"X-Request-ID": "real-1"}
            )
        server.process.send_signal(signal.SIGTERM)
        output = server.output()

    assert response.status_code == 200
    assert response.json()["label"] == "bright"
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [r for r in records if r["tag"] == "classifier.access" and r["path"] == URL]
    assert [(r["request_id"], r["status"], r["label"]) for r in access] == [
        ("real-1", 200, "bright")
    ]
    events = [r["event"] for r in records if r["tag"] == "classifier.app"]
    assert events[:2] == ["startup", "model_loaded"]
    assert events[-1] == "shutdown"


async def test_sigterm_drains_in_flight_requests_then_exits_0(model_dir: Path) -> None:
    frames = sequence(170)
    with running_classifier(model_dir) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

            async def slow_upload() -> httpx.Response:
                # Send the body slowly so the request is surely in flight at SIGTERM.
                body_files = files("frames", frames)
                request = client.build_request("POST", URL, files=body_files)
                body = request.read()

                async def trickle() -> AsyncIterator[bytes]:
                    step = len(body) // 10
                    for start in range(0, len(body), step):
                        yield body[start : start + step]
                        await asyncio.sleep(0.1)

                headers = dict(request.headers)
                headers.pop("content-length", None)
                return await client.post(URL, content=trickle(), headers=headers)

            in_flight = [asyncio.create_task(slow_upload()) for _ in range(3)]
            await until_in_flight(client, 3)  # every upload admitted, its body still trickling
            server.process.send_signal(signal.SIGTERM)
            responses = await asyncio.gather(*in_flight)
        code = server.process.wait(timeout=30)

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert {r.json()["label"] for r in responses} == {"mid"}
    assert code == 0


async def test_health_answers_promptly_while_large_uploads_decode(model_dir: Path) -> None:
    # Large frames take tens of ms each to decode and resize; the event loop must stay free.
    big = [encode(gray_frame(100, (1500, 1500)), "PNG") for _ in range(24)]
    roomy = {"CLASSIFIER_MAX_FRAME_BYTES": "8000000", "CLASSIFIER_MAX_REQUEST_BYTES": "200000000"}
    with running_classifier(model_dir, env=roomy) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            uploads = [
                asyncio.create_task(client.post(URL, files=files("frames", big))) for _ in range(4)
            ]
            await until_in_flight(client, 4)  # every upload admitted: receiving or decoding
            health_times = []
            for _ in range(5):
                started = time.perf_counter()
                health = await client.get("/health/live")
                health_times.append(time.perf_counter() - started)
                assert health.status_code == 200
                await asyncio.sleep(0.05)
            results = await asyncio.gather(*uploads)
            decode_ms = [r.json()["timings"]["decode_ms"] for r in results]

    assert all(r.status_code == 200 for r in results)
    # Each upload spends far longer decoding than any health check waits.
    assert max(health_times) * 1000 < min(decode_ms)


async def test_client_disconnect_mid_upload_leaves_the_service_healthy(model_dir: Path) -> None:
    with running_classifier(model_dir) as server:
        body_start = (
            b'--B\r\nContent-Disposition: form-data; name="frames"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
        ) + encode(gray_frame(1))
        async with httpx.AsyncClient(base_url=server.url) as client:
            for attempt in range(5):
                with socket.create_connection(("127.0.0.1", server.port)) as raw:
                    raw.sendall(
                        f"POST {URL} HTTP/1.1\r\nHost: x\r\nX-Request-ID: gone-{attempt}\r\n"
                        "Content-Type: multipart/form-data; boundary=B\r\n"
                        "Content-Length: 100000\r\n\r\n".encode()
                        + body_start
                    )
                    await until_in_flight(client, 1)  # the service is reading the body
                await until_in_flight(client, 0)  # and has noticed the client is gone
            after = await client.post(URL, files=files("frames", sequence(0)))
            ready = await client.get("/health/ready")
        server.process.send_signal(signal.SIGTERM)
        output = server.output()

    assert after.status_code == 200
    assert ready.status_code == 200
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    gone = [
        r
        for r in records
        if r["tag"] == "classifier.access" and str(r.get("request_id")).startswith("gone-")
    ]
    assert sorted(r["request_id"] for r in gone) == [f"gone-{i}" for i in range(5)]
    assert {r["status"] for r in gone} == {499}
    assert "Traceback" not in output


async def test_a_stalled_upload_times_out_with_408(model_dir: Path) -> None:
    with (
        running_classifier(model_dir, env={"CLASSIFIER_REQUEST_TIMEOUT": "0.5"}) as server,
        socket.create_connection(("127.0.0.1", server.port)) as raw,
    ):
        raw.sendall(
            f"POST {URL} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: multipart/form-data; boundary=B\r\n"
            "Content-Length: 100000\r\n\r\n--B\r\n".encode()
        )
        raw.settimeout(10)
        reply = ""
        while chunk := raw.recv(65536).decode("latin-1"):  # until the server closes
            reply += chunk

    assert reply.startswith("HTTP/1.1 408 ")
    assert "did not arrive within 0.5 s" in reply


async def test_metrics_add_up_across_worker_processes(model_dir: Path) -> None:
    with running_classifier(model_dir, env={"CLASSIFIER_WORKERS": "2"}) as server:
        within_capacity = asyncio.Semaphore(8)

        async def one_request() -> int:
            # A connection per request, so the kernel spreads them over both workers.
            async with within_capacity, httpx.AsyncClient(base_url=server.url) as client:
                response = await client.post(URL, files=files("frames", sequence(85)))
                return response.status_code

        statuses = await asyncio.gather(*(one_request() for _ in range(40)))
        async with httpx.AsyncClient(base_url=server.url) as client:
            scrapes = [(await client.get("/metrics")).text for _ in range(4)]

    assert statuses == [200] * 40
    route = "/v1/models/{name}/classify"
    line = f'classifier_requests_total{{method="POST",route="{route}",status="200"}} 40.0'
    # Whichever worker answers the scrape, it reports the whole server.
    assert all(line in text for text in scrapes)


def _exchange(sockets: list[socket.socket], request: bytes) -> list[tuple[int, bytes, bytes]]:
    """Send ``request`` on every socket at once, then read each reply to the end: (status,
    head, body). Raw sockets, because a Python client is too slow to put dozens of requests
    on the wire within the moment this is about."""
    for sock in sockets:
        sock.sendall(request)
    replies = []
    for sock in sockets:
        reply = b""
        while chunk := sock.recv(65536):  # "Connection: close": until the server closes
            reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        replies.append((int(head.split(b" ", 2)[1]), head, body))
    return replies


async def test_requests_queued_behind_a_busy_worker_are_shed(model_dir: Path) -> None:
    # One worker, told to decode even a huge upload on its event loop, is held for about a
    # second. Requests sent meanwhile on other connections are read together when it lets go,
    # then wait their turn on the loop behind each other: those that waited past the 20 ms
    # budget are shed when the worker reaches them, before any decoding; the others are served.
    flat = encode(Image.new("L", (3000, 3000), 100), "PNG")  # 15 KB, ~40 ms to decode and resize
    blocking = {
        "CLASSIFIER_WORKERS": "1",
        "CLASSIFIER_MAX_QUEUE_MS": "20",
        "CLASSIFIER_INLINE_DECODE_BYTES": "200000000",
        "CLASSIFIER_MAX_FRAME_BYTES": "8000000",
    }
    small = httpx.Request("POST", URL, files=files("frames", sequence(255)))
    payload = small.read()
    request = (
        f"POST {URL} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: {small.headers['content-type']}\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    with running_classifier(model_dir, env=blocking) as server:
        sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(64)]
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                held = asyncio.create_task(client.post(URL, files=files("frames", [flat] * 24)))
                # The upload is in and decoding. A pause, not a poll: the one worker's loop is
                # blocked from then on, so it cannot be asked; the premise is checked below.
                await asyncio.sleep(0.2)
                replies = await asyncio.to_thread(_exchange, sockets, request)
                blocker = await held
                after = await client.post(URL, files=files("frames", sequence(255)))
                metrics = (await client.get("/metrics")).text
        finally:
            for sock in sockets:
                sock.close()

    assert blocker.status_code == 200
    assert blocker.json()["timings"]["decode_ms"] > 200  # the premise: the loop was held
    statuses = [status for status, _, _ in replies]
    shed = [(head, json.loads(body)) for status, head, body in replies if status == 503]
    assert set(statuses) == {200, 503}, statuses  # some shed, the rest served; nothing else
    assert all(b"\r\nretry-after: 1\r\n" in head for head, _ in shed)
    assert all(problem["title"] == "Service overloaded" for _, problem in shed)
    served = [json.loads(body) for status, _, body in replies if status == 200]
    assert {answer["label"] for answer in served} == {"bright"}
    assert after.status_code == 200  # once the queue has drained, work is served as usual
    assert f'classifier_requests_shed_total{{reason="queue"}} {len(shed)}.0' in metrics
    assert f"classifier_request_queue_seconds_count {len(replies) + 2}.0" in metrics
