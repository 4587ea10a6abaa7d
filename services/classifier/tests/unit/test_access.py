"""The access record has one definition: the dataclass, which the docs and the e2e suite match."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from classifier.api.access import ACCESS_FIELDS, ALWAYS_LOGGED, AccessRecord
from tests.support.app_client import app_client
from tests.support.frames import files, sequence

ROOT = Path(__file__).resolve().parents[4]
E2E_ACCESS_LOG = ROOT / "services" / "e2e" / "tests" / "access_log.py"
STDOUT_FIELDS = {"time", "tag"}  # what the stdout writer adds to a record


def _e2e_access_log() -> ModuleType:
    """The e2e suite's log reader, loaded from its file (its package is also named ``tests``)."""
    name = "e2e_access_log"
    spec = importlib.util.spec_from_file_location(name, E2E_ACCESS_LOG)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _documented_fields() -> dict[str, str]:
    """Field -> when it is present, from the table under docs/architecture.md's access record."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("### The access record", 1)[1].split("\n#", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", section, flags=re.MULTILINE))


def test_the_e2e_suite_checks_records_against_the_dataclass_fields() -> None:
    e2e = _e2e_access_log()
    assert tuple(e2e.ACCESS_FIELDS) == ACCESS_FIELDS
    assert tuple(e2e.ALWAYS_LOGGED) == ALWAYS_LOGGED


def test_the_docs_list_every_field_and_which_are_always_there() -> None:
    documented = _documented_fields()
    assert tuple(documented) == ACCESS_FIELDS
    assert tuple(name for name, when in documented.items() if when == "every record") == (
        ALWAYS_LOGGED
    )


def test_a_record_logs_the_fields_that_have_a_value() -> None:
    record = AccessRecord(request_id="r1", method="GET", path="/health/live")
    assert record.as_logged() == {
        "request_id": "r1",
        "method": "GET",
        "path": "/health/live",
        "route": "unmatched",
        "status": 499,
        "duration_ms": 0.0,
        "bytes_in": 0,
    }
    assert set(record.as_logged()) == set(ALWAYS_LOGGED)


CLASSIFIED = {"client", "model", "model_version", "frames", "label", "confidence"}


@pytest.mark.parametrize(
    ("count", "status", "present"),
    [(24, 200, CLASSIFIED), (3, 422, {"client", "error"})],
    ids=["classified", "refused"],
)
async def test_the_app_logs_exactly_the_records_fields(
    model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    count: int,
    status: int,
    present: set[str],
) -> None:
    async with app_client(model_dir, access_log_stdout=True) as http:
        upload = files("frames", sequence(100, count=count))
        response = await http.post("/v1/models/brightness/classify", files=upload)
    assert response.status_code == status

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    [logged] = [line for line in lines if line.get("tag") == "classifier.access"]
    assert set(logged) - STDOUT_FIELDS == set(ALWAYS_LOGGED) | present
    assert logged["status"] == status
