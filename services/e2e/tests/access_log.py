"""Reading the records the classifier shipped, as JSON lines under ``E2E_LOG_DIR``.

Both writers lay their files out as ``<tag>/<UTC day>.log`` (fluentd in compose, and the forward
receiver standing in for it natively), but the reader does not depend on that: it takes every
``*.log`` below the folder and finds a record's tag in its ``fluent_tag`` (or ``tag``) field,
or failing that in the name of the folder that holds the file.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_TAG = "classifier.access"
APP_TAG = "classifier.app"

#: The access record's fields as the classifier defines them (``classifier.api.access.
#: AccessRecord``; this image installs only the suite, so they are written out here, and the
#: classifier's own tests check that the two lists agree): those every record carries, then
#: those it carries when they apply.
ALWAYS_LOGGED = ("request_id", "method", "path", "route", "status", "duration_ms", "bytes_in")
ACCESS_FIELDS = (
    *ALWAYS_LOGGED,
    "client",
    "model",
    "model_version",
    "frames",
    "label",
    "confidence",
    "error",
    "job_id",
    "bytes_stored",
    "api_key",
    "refused",
    "shed",
)
#: What the log writer adds to each line (fluentd, or the forward receiver standing in for it).
WRITER_FIELDS = ("fluent_tag", "fluent_time")


@dataclass(frozen=True, slots=True)
class LogRecord:
    tag: str
    fields: dict[str, Any]
    source: Path


@dataclass(slots=True)
class LogContents:
    records: list[LogRecord] = field(default_factory=list)
    #: Complete lines that are not a JSON object: ``file:line: text``.
    unreadable: list[str] = field(default_factory=list)

    def tagged(self, tag: str) -> list[LogRecord]:
        return [record for record in self.records if record.tag == tag]

    def access_records(self, request_id: str) -> list[dict[str, Any]]:
        return [
            record.fields
            for record in self.tagged(ACCESS_TAG)
            if record.fields.get("request_id") == request_id
        ]


def _tag(fields: dict[str, Any], path: Path, log_dir: Path) -> str:
    for key in ("fluent_tag", "tag"):
        value = fields.get(key)
        if isinstance(value, str) and value:
            return value
    relative = path.relative_to(log_dir)
    return relative.parts[0] if len(relative.parts) > 1 else path.stem


def read_logs(log_dir: Path) -> LogContents:
    """Every complete line of every ``*.log`` below ``log_dir`` (a line being written is left)."""
    contents = LogContents()
    for path in sorted(log_dir.rglob("*.log")):
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        lines = text.split("\n")[:-1]  # the last piece is empty or not yet finished
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                fields = json.loads(line)
            except ValueError:
                fields = None
            if not isinstance(fields, dict):
                contents.unreadable.append(f"{path}:{number}: {line[:200]}")
                continue
            contents.records.append(LogRecord(_tag(fields, path, log_dir), fields, path))
    return contents


async def wait_for_access_records(
    log_dir: Path,
    request_ids: Collection[str],
    timeout: float,  # noqa: ASYNC109 - one deadline for the whole wait reads best in tests
) -> LogContents:
    """Read the logs until every id has an access record or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        contents = read_logs(log_dir)
        found = {record.fields.get("request_id") for record in contents.tagged(ACCESS_TAG)}
        if found.issuperset(request_ids) or time.monotonic() >= deadline:
            return contents
        await asyncio.sleep(0.2)
