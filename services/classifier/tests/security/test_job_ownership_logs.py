"""Keys never reach a log record on the jobs routes either: submitting, following, another key's
404 and the quota 429s ship access records that name the key (``api_key``) and the limit
(``refused``), app events that name no key at all, and never the key itself."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from classifier.core.config import Settings
from classifier.main import create_app
from harness.forward_receiver import ForwardReceiver
from tests.support.api_keys import IssuedKeys
from tests.support.app_client import lifespan_client
from tests.support.recording_files import frame_parts, png_sequence, wait_for_status

SUBMIT = "/v1/models/brightness/recordings"


async def test_keys_are_absent_from_every_record_of_the_jobs_routes(
    model_dir: Path,
    issued: IssuedKeys,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    issued.add("rig", max_running_jobs=1)
    issued.add("tiny", recording_bytes_per_day=1000)
    async with ForwardReceiver() as receiver:
        settings = Settings(
            model_dir=model_dir,
            api_keys_file=issued.path,
            fluentd_host=receiver.host,
            fluentd_port=receiver.port,
            access_log_stdout=True,
            log_level="debug",
            job_poll_seconds=0.1,
        )
        app = create_app(settings)
        async with lifespan_client(app) as http:

            async def call(request_id: str, method: str, path: str, key: str) -> httpx.Response:
                headers = {"X-Request-ID": request_id, **issued.bearer(key)}
                if method == "POST":
                    return await http.post(
                        path,
                        files=frame_parts(png_sequence([200] * 24)),
                        data={"fps": "30"},
                        headers=headers,
                    )
                return await http.request(method, path, headers=headers)

            submitted = await call("submit", "POST", SUBMIT, "rig")
            job_id = submitted.json()["id"]
            statuses = {
                "submit": submitted.status_code,
                "over-running": (await call("over-running", "POST", SUBMIT, "rig")).status_code,
                "over-bytes": (await call("over-bytes", "POST", SUBMIT, "tiny")).status_code,
            }
            http.headers.update(issued.bearer("rig"))
            await wait_for_status(http, job_id, ["succeeded"])
            for request_id, method, path, key in (
                ("own", "GET", f"/v1/jobs/{job_id}", "rig"),
                ("others", "GET", f"/v1/jobs/{job_id}", "lab"),
                ("admin", "GET", f"/v1/jobs/{job_id}/frames.csv", "boss"),
                ("list", "GET", "/v1/jobs", "lab"),
                ("delete", "DELETE", f"/v1/jobs/{job_id}", "rig"),
            ):
                statuses[request_id] = (await call(request_id, method, path, key)).status_code
        await receiver.wait_for(lambda r: r.record.get("event") == "shutdown")

    assert statuses == {
        "submit": 202,
        "over-running": 429,
        "over-bytes": 429,
        "own": 200,
        "others": 404,
        "admin": 200,
        "list": 200,
        "delete": 204,
    }
    shipped = json.dumps([received.record for received in receiver.records])
    stdout = capsys.readouterr().out
    logged = caplog.text + "\n".join(str(record.__dict__) for record in caplog.records)
    for key in issued.keys.values():
        secret = key.split("_", 2)[2]
        for where, text in (("fluentd", shipped), ("stdout", stdout), ("logging", logged)):
            assert secret not in text, f"a key's secret reached {where}"

    access = {
        received.record["request_id"]: received.record
        for received in receiver.by_tag("classifier.access")
    }
    summary = {
        rid: (access[rid]["status"], access[rid]["api_key"], access[rid].get("refused"))
        for rid in statuses
    }
    assert summary == {
        "submit": (202, "rig", None),
        "over-running": (429, "rig", "max_running_jobs"),
        "over-bytes": (429, "tiny", "recording_bytes_per_day"),
        "own": (200, "rig", None),
        "others": (404, "lab", None),
        "admin": (200, "boss", None),
        "list": (200, "lab", None),
        "delete": (204, "rig", None),
    }
    assert access["submit"]["job_id"] == job_id
    events = {r.record["event"]: r.record for r in receiver.by_tag("classifier.app")}
    assert events["job_queued"]["job_id"] == job_id
    assert events["job_deleted"]["job_id"] == job_id
