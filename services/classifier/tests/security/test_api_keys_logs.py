"""Keys never reach a log record: not the access records, not the app events, not Python's
logging; the access record names the key (``api_key``) and why a request was refused."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from classifier.core.config import Settings
from classifier.main import create_app
from harness.forward_receiver import ForwardReceiver
from tests.support.api_keys import IssuedKeys, ManualClock, next_reload, use_clock
from tests.support.app_client import lifespan_client
from tests.support.frames import files, sequence

CLASSIFY = "/v1/models/brightness/classify"


async def test_keys_are_absent_from_every_record_the_app_ships(
    model_dir: Path,
    issued: IssuedKeys,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    lab, slow = issued.keys["lab"], issued.keys["slow"]
    forged = lab[:-1] + ("A" if lab[-1] != "A" else "B")
    async with ForwardReceiver() as receiver:
        settings = Settings(
            model_dir=model_dir,
            api_keys_file=issued.path,
            fluentd_host=receiver.host,
            fluentd_port=receiver.port,
            access_log_stdout=True,
            log_level="debug",
        )
        app = create_app(settings)
        clock = ManualClock()
        use_clock(app, clock)
        async with lifespan_client(app) as http:

            async def call(request_id: str, path: str, headers: dict[str, str]) -> int:
                upload = files("images" if path == "/predict" else "frames", sequence(255))
                response = await http.post(
                    path, files=upload, headers={"X-Request-ID": request_id, **headers}
                )
                return response.status_code

            statuses = {
                "bearer": await call("bearer", CLASSIFY, {"Authorization": f"Bearer {lab}"}),
                "header": await call("header", "/predict", {"X-API-Key": lab}),
                "forged": await call("forged", CLASSIFY, {"Authorization": f"Bearer {forged}"}),
                "missing": await call("missing", CLASSIFY, {}),
                "slow-1": await call("slow-1", CLASSIFY, {"X-API-Key": slow}),
                "slow-2": await call("slow-2", CLASSIFY, {"X-API-Key": slow}),
                "slow-3": await call("slow-3", "/predict", {"X-API-Key": slow}),
            }
            issued.revoke("lab")
            next_reload(clock)
            statuses["revoked"] = await call("revoked", CLASSIFY, {"X-API-Key": lab})
        await receiver.wait_for(lambda r: r.tag == "classifier.access", count=len(statuses))
        await receiver.wait_for(lambda r: r.record.get("event") == "shutdown")

    assert statuses == {
        "bearer": 200,
        "header": 200,
        "forged": 401,
        "missing": 401,
        "slow-1": 200,
        "slow-2": 200,
        "slow-3": 429,
        "revoked": 401,
    }
    shipped = json.dumps([received.record for received in receiver.records])
    stdout = capsys.readouterr().out
    logged = caplog.text + "\n".join(str(record.__dict__) for record in caplog.records)
    for key in (*issued.keys.values(), forged):
        secret = key.split("_", 2)[2]
        for where, text in (("fluentd", shipped), ("stdout", stdout), ("logging", logged)):
            assert secret not in text, f"a key's secret reached {where}"

    access = {
        received.record["request_id"]: received.record
        for received in receiver.by_tag("classifier.access")
    }
    fields = ("status", "api_key", "refused", "label")
    summary = {rid: tuple(record.get(f) for f in fields) for rid, record in access.items()}
    assert summary == {
        "bearer": (200, "lab", None, "bright"),
        "header": (200, "lab", None, "bright"),
        "forged": (401, None, "invalid", None),
        "missing": (401, None, "missing", None),
        "slow-1": (200, "slow", None, "bright"),
        "slow-2": (200, "slow", None, "bright"),
        "slow-3": (429, "slow", "rps", None),
        "revoked": (401, None, "revoked", None),
    }
    for refused in ("forged", "missing", "slow-3", "revoked"):
        assert access[refused]["bytes_in"] == 0, refused
    events = [r.record["event"] for r in receiver.by_tag("classifier.app")]
    assert events.index("api_keys_loaded") < events.index("api_keys_reloaded")
