"""What reached the logs: one access record for every request the run sent, with its id.

These tests run after all others (marker ``after_all``) and need ``E2E_LOG_DIR``, where the
records arrive as JSON lines: fluentd's volume in compose, the forward receiver's folder natively.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.access_log import (
    ACCESS_FIELDS,
    ALWAYS_LOGGED,
    APP_TAG,
    WRITER_FIELDS,
    read_logs,
    wait_for_access_records,
)
from tests.request_ledger import ECHOED_REQUEST_ID, RequestLedger, new_request_id
from tests.served_model import ServedModel
from tests.uploads import ClipUploads

pytestmark = pytest.mark.after_all

ARRIVAL_TIMEOUT = 5.0  # fluentd writes its buffer out about once a second


@pytest.fixture
def records_dir(log_dir: Path | None) -> Path:
    if log_dir is None:
        pytest.skip("E2E_LOG_DIR is not set: no log records to check")
    assert log_dir.is_dir(), f"E2E_LOG_DIR {log_dir} is not a folder"
    return log_dir


async def test_every_answer_carried_the_request_id_it_was_sent(ledger: RequestLedger) -> None:
    answered = [entry for entry in ledger.requests if entry.answered_id is not None]
    not_echoed = [
        entry
        for entry in answered
        if entry.sent_id
        and ECHOED_REQUEST_ID.fullmatch(entry.sent_id)
        and entry.answered_id != entry.sent_id
    ]
    assert not_echoed == []


async def test_a_classification_is_logged_with_its_outcome(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads, records_dir: Path
) -> None:
    request_id = new_request_id()
    response = await client.post(
        model.classify_url,
        files=clips.multipart("frames", "walk", 0),
        headers={"X-Request-ID": request_id},
    )
    assert response.status_code == 200
    answer = response.json()

    contents = await wait_for_access_records(records_dir, {request_id}, ARRIVAL_TIMEOUT)

    records = contents.access_records(request_id)
    assert len(records) == 1, f"{len(records)} access records for {request_id}"
    record = records[0]
    assert record["method"] == "POST"
    assert record["path"] == model.classify_url
    assert record["route"] == "/v1/models/{name}/classify"
    assert record["status"] == 200
    assert record["duration_ms"] > 0
    assert record["bytes_in"] == int(response.request.headers["content-length"])
    assert record["model"] == model.name
    assert record["model_version"] == model.version
    assert record["label"] == answer["label"] == "walk"
    assert abs(record["confidence"] - answer["confidence"]) < 1e-5
    assert record["frames"] == model.frames


async def test_the_model_load_was_logged_with_its_sha256(
    model: ServedModel, records_dir: Path
) -> None:
    events = [record.fields for record in read_logs(records_dir).tagged(APP_TAG)]

    loaded = [event for event in events if event.get("event") == "model_loaded"]
    assert any(
        event.get("model") == model.name and event.get("sha256") == model.sha256 for event in loaded
    ), f"no model_loaded event for {model.name} with sha256 {model.sha256}: {loaded}"


async def test_every_request_of_the_run_has_its_access_record(
    ledger: RequestLedger, records_dir: Path
) -> None:
    """Successes, refusals and abandoned uploads alike: each one record, with its status."""
    sent = [entry for entry in ledger.requests if entry.request_id is not None]
    ids = {entry.request_id for entry in sent if entry.request_id}

    contents = await wait_for_access_records(records_dir, ids, ARRIVAL_TIMEOUT)

    assert contents.unreadable == []
    missing, duplicated, wrong, misshapen = [], [], [], []
    for entry in sent:
        assert entry.request_id is not None
        records = contents.access_records(entry.request_id)
        if not records:
            missing.append(f"{entry.method} {entry.path} -> {entry.status} ({entry.request_id})")
        elif len(records) > 1:
            duplicated.append(entry.request_id)
        elif (records[0]["method"], records[0]["path"], records[0]["status"]) != (
            entry.method,
            entry.path,
            entry.status,
        ):
            wrong.append(f"sent {entry}, logged {records[0]}")
        else:
            keys = set(records[0])
            if not set(ALWAYS_LOGGED) <= keys <= {*ACCESS_FIELDS, *WRITER_FIELDS}:
                misshapen.append(f"{entry.request_id}: {sorted(keys)}")
    assert missing == [], f"{len(missing)} of {len(sent)} requests have no access record"
    assert duplicated == []
    assert wrong == []
    assert misshapen == [], f"records whose fields are not the access record's: {misshapen}"
