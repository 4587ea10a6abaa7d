"""API keys in a real server (``python -m classifier``, uvicorn on loopback): a huge upload
without a key is refused at its headers, a revoked key stops in every worker without a restart,
and a broken keys file stops start-up with one line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.processes import LOOPBACK, free_port
from tests.support.api_keys import IssuedKeys
from tests.support.server import classifier_env, running_classifier

pytestmark = pytest.mark.integration

# Guards against a hang, not a speed check: a refusal comes in milliseconds, a server reading
# the declared gigabyte would never answer at all.
SOCKET_TIMEOUT_S = 10
REVOCATION_DEADLINE_S = 20


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    """One GET on a fresh connection (so requests spread over the server's workers)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=SOCKET_TIMEOUT_S) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def read_response(conn: socket.socket) -> tuple[str, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed before the response headers: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    while len(body) < int(headers.get("content-length", "0")):
        chunk = conn.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return status_line, headers, body


def access_records(output: str) -> dict[str, dict[str, object]]:
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {str(r["request_id"]): r for r in records if r.get("tag") == "classifier.access"}


def test_an_unauthenticated_gigabyte_upload_is_refused_at_its_headers(
    model_dir: Path, issued: IssuedKeys
) -> None:
    env = {"CLASSIFIER_API_KEYS_FILE": str(issued.path), "CLASSIFIER_WORKERS": "1"}
    with running_classifier(model_dir, env) as server:
        with socket.create_connection((LOOPBACK, server.port), timeout=SOCKET_TIMEOUT_S) as c:
            c.sendall(
                b"POST /v1/models/brightness/classify HTTP/1.1\r\n"
                b"Host: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=B\r\n"
                b"Content-Length: 1000000000\r\n"
                b"X-Request-ID: huge-upload\r\n"
                b"\r\n"
                b"--B\r\nContent-Disposition: form-data; "
            )
            status_line, headers, body = read_response(c)
        # The server is unharmed: health and a keyed request still answer.
        assert status_of(f"{server.url}/health/ready") == 200
        assert status_of(f"{server.url}/v1/models", issued.bearer("lab")) == 200
        server.stop()
        output = server.output()

    assert status_line == "HTTP/1.1 401 Unauthorized"
    assert headers["www-authenticate"] == 'Bearer realm="image-sequence-classifier"'
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["request_id"] == "huge-upload"
    record = access_records(output)["huge-upload"]
    assert (record["status"], record["bytes_in"], record["refused"]) == (401, 0, "missing")
    for key in issued.keys.values():
        assert key.split("_", 2)[2] not in output


def test_a_revoked_key_stops_in_every_worker_without_a_restart(
    model_dir: Path, issued: IssuedKeys
) -> None:
    env = {"CLASSIFIER_API_KEYS_FILE": str(issued.path), "CLASSIFIER_WORKERS": "2"}
    with running_classifier(model_dir, env) as server:
        models = f"{server.url}/v1/models"
        assert [status_of(models, issued.bearer("lab")) for _ in range(10)] == [200] * 10
        pid = server.process.pid

        issued.revoke("lab")
        # Each worker looks at the file at most once a second; wait until a run of requests on
        # fresh connections (spread over both workers) is refused throughout.
        deadline = time.monotonic() + REVOCATION_DEADLINE_S
        statuses: list[int] = []
        while time.monotonic() < deadline:
            statuses = [status_of(models, issued.bearer("lab")) for _ in range(20)]
            if statuses == [401] * 20:
                break
            time.sleep(0.2)

        assert statuses == [401] * 20
        assert [status_of(models, issued.bearer("boss")) for _ in range(10)] == [200] * 10
        assert server.process.pid == pid
        assert server.process.poll() is None  # the same server, never restarted


def test_a_broken_keys_file_stops_start_up_with_one_line(model_dir: Path, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.jsonl"
    keys_file.write_text('{"name": "lab", "sha256": "nope"}\n')

    result = subprocess.run(
        [sys.executable, "-m", "classifier"],
        env=classifier_env(model_dir, free_port(), CLASSIFIER_API_KEYS_FILE=str(keys_file)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"classifier: cannot use the API keys: {keys_file} line 1: id: Field required"
    ]
