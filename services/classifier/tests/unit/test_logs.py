"""LogShipper without a network: stdout lines, level filtering, user strings, drop counting."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from classifier.core.config import Settings
from classifier.core.logs import PENDING_BYTES_MAX, LogShipper

ISO_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# Strings a client controls (filenames, header values) that look like record structure.
TRICKY_STRINGS = [
    '{"a": 1}',
    'x\n{"tag": "evil"}',
    '"}, "status": 500, "x": {"',
    "line\u2028separator\x85next",
    "tab\tand\r\nreturn",
    "ünïcödé ✓",
]


def stdout_shipper(*, stdout: bool = True, level: str = "info") -> LogShipper:
    return LogShipper(
        fluentd_host=None,
        fluentd_port=24224,
        timeout=0.5,
        queue_size=10,
        stdout=stdout,
        level=level,
    )


def fluentd_shipper(queue_size: int, drops: list[int]) -> LogShipper:
    # The port is never connected to: each test replaces the socket write (see below).
    return LogShipper(
        fluentd_host="127.0.0.1",
        fluentd_port=9,
        timeout=0.5,
        queue_size=queue_size,
        stdout=False,
        on_drop=drops.append,
    )


def stdout_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    out = capsys.readouterr().out
    assert out.endswith("\n") or out == ""
    return [json.loads(line) for line in out.split("\n")[:-1]]


def test_access_record_is_one_compact_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    shipper = stdout_shipper()
    shipper.access({"request_id": "abc", "status": 200, "duration_ms": 1.5, "label": None})
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert ", " not in out
    assert '": ' not in out
    line = json.loads(out)
    assert list(line)[:2] == ["time", "tag"]
    assert line == {
        "time": line["time"],
        "tag": "classifier.access",
        "request_id": "abc",
        "status": 200,
        "duration_ms": 1.5,
        "label": None,
    }
    assert ISO_MS_UTC.match(line["time"])
    stamped = datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(stamped.timestamp() - time.time()) < 5


def test_access_records_stay_off_stdout_when_disabled(capsys: pytest.CaptureFixture[str]) -> None:
    shipper = stdout_shipper(stdout=False)
    shipper.access({"request_id": "abc"})
    shipper.app("startup")
    assert [line["tag"] for line in stdout_lines(capsys)] == ["classifier.app"]


def test_time_and_tag_are_not_overwritten_by_record_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stdout_shipper().access({"tag": "forged", "time": "yesterday", "path": "/predict"})
    [line] = stdout_lines(capsys)
    assert line["tag"] == "classifier.access"
    assert ISO_MS_UTC.match(str(line["time"]))
    assert line["path"] == "/predict"


def test_app_event_record_shape(capsys: pytest.CaptureFixture[str]) -> None:
    shipper = stdout_shipper()
    shipper.app("model_loaded", sha256="ab" * 32, labels=["drink", "eat"])
    shipper.app("request_failed", level="error", event="not me", exception="ValueError")
    first, second = stdout_lines(capsys)
    assert first == {
        "time": first["time"],
        "tag": "classifier.app",
        "event": "model_loaded",
        "level": "info",
        "sha256": "ab" * 32,
        "labels": ["drink", "eat"],
    }
    assert (second["event"], second["level"], second["exception"]) == (
        "request_failed",
        "error",
        "ValueError",
    )


def test_level_filters_app_events_only(capsys: pytest.CaptureFixture[str]) -> None:
    shipper = stdout_shipper(level="warning")
    for level in ("debug", "info", "warning", "error", "critical"):
        shipper.app("event", level=level)
    shipper.access({"request_id": "still written"})
    lines = stdout_lines(capsys)
    assert [line.get("level") for line in lines] == ["warning", "error", "critical", None]


def test_unknown_configured_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        stdout_shipper(level="verbose")


def test_from_settings_uses_the_log_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        model_dir=tmp_path, fluentd_host=None, access_log_stdout=False, log_level="error"
    )
    shipper = LogShipper.from_settings(settings)
    shipper.app("quiet", level="warning")
    shipper.app("loud", level="error")
    shipper.access({"request_id": "r"})
    assert [line["event"] for line in stdout_lines(capsys)] == ["loud"]


@pytest.mark.parametrize("value", TRICKY_STRINGS)
def test_user_strings_stay_one_string_value(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    shipper = stdout_shipper()
    shipper.access({"filename": value, "request_id": value})
    out = capsys.readouterr().out
    assert out.isascii()
    assert out.count("\n") == 1
    assert len(out.splitlines()) == 1
    line = json.loads(out)
    assert line["filename"] == value
    assert line["request_id"] == value
    assert set(line) == {"time", "tag", "filename", "request_id"}


def test_values_json_cannot_carry_are_written_anyway(capsys: pytest.CaptureFixture[str]) -> None:
    shipper = stdout_shipper()
    shipper.access({"confidence": float("nan"), "path": Path("/x"), "surrogate": "a\udcffb"})
    [line] = stdout_lines(capsys)
    assert line["confidence"] is None
    assert line["path"] == "/x"
    assert line["surrogate"] == "a\udcffb"
    assert shipper.dropped == 0


class BrokenStream:
    def write(self, text: str) -> int:
        raise OSError("stdout is gone")

    def flush(self) -> None:
        raise OSError("stdout is gone")


def test_stdout_failures_are_counted_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    drops: list[int] = []
    shipper = LogShipper(
        fluentd_host=None,
        fluentd_port=24224,
        timeout=0.5,
        queue_size=10,
        stdout=True,
        on_drop=drops.append,
    )
    monkeypatch.setattr(sys, "stdout", BrokenStream())
    shipper.access({"request_id": "r"})
    shipper.app("startup")
    assert shipper.dropped == 2
    assert drops == [1, 1]


def test_a_failing_drop_callback_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(count: int) -> None:
        raise RuntimeError("metrics are broken too")

    shipper = LogShipper(
        fluentd_host=None, fluentd_port=1, timeout=0.5, queue_size=1, stdout=True, on_drop=explode
    )
    monkeypatch.setattr(sys, "stdout", BrokenStream())
    shipper.access({"request_id": "r"})
    assert shipper.dropped == 1


# The tests below stand in for fluentd's side by replacing the sender's socket write (a private
# method of fluent-logger's sender) with one that blocks or fails, so that queue and retry-buffer
# overflow happen deterministically. tests/integration/test_log_shipping.py does the same over
# real TCP.


def test_queue_overflow_drops_the_oldest_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    drops: list[int] = []
    shipper = fluentd_shipper(queue_size=10, drops=drops)
    busy, release = threading.Event(), threading.Event()

    def stuck_send(data: bytes) -> None:
        busy.set()
        release.wait(5)
        raise OSError("fluentd unreachable")

    monkeypatch.setattr(shipper._sender, "_send_data", stuck_send)
    shipper.access({"n": 0})
    assert busy.wait(5), "the sender thread never picked up the first record"

    started = time.perf_counter()
    for n in range(1, 36):
        shipper.access({"n": n})
    assert time.perf_counter() - started < 0.5  # none of them waited on the stuck send
    assert shipper.dropped == 25  # 35 emitted, 10 fit in the queue
    assert drops == [1] * 25

    release.set()
    shipper.close()  # every send fails: what the queue and retry buffer held is dropped too
    assert shipper.dropped == 36
    assert sum(drops) == 36

    shipper.access({"n": "late"})
    assert shipper.dropped == 37


def test_retry_buffer_overflow_is_counted_per_record(monkeypatch: pytest.MonkeyPatch) -> None:
    drops: list[int] = []
    shipper = fluentd_shipper(queue_size=10_000, drops=drops)

    def refused(data: bytes) -> None:
        raise ConnectionRefusedError("fluentd is down")

    monkeypatch.setattr(shipper._sender, "_send_data", refused)
    record_bytes = 1024
    emitted = 3 * PENDING_BYTES_MAX // record_bytes
    for n in range(emitted):
        shipper.access({"n": n, "pad": "p" * record_bytes})
    deadline = time.monotonic() + 5
    while shipper.dropped == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert shipper.dropped > 0  # counted as it happens, not only at close
    assert all(count > 1 for count in drops)  # retry batches of several records

    shipper.close()
    assert shipper.dropped == emitted
    assert sum(drops) == emitted


def test_close_returns_within_its_budget_when_sends_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    shipper = fluentd_shipper(queue_size=1000, drops=[])
    sender = shipper._sender
    assert sender is not None
    release = threading.Event()
    monkeypatch.setattr(sender, "_send_data", lambda data: release.wait(10))
    for n in range(100):
        shipper.access({"n": n})

    started = time.perf_counter()
    shipper.close()
    elapsed = time.perf_counter() - started
    release.set()  # let the abandoned sender thread finish before the test ends
    sender._send_thread.join(5)
    assert not sender._send_thread.is_alive()

    assert elapsed < 1.5
    assert shipper.dropped >= 99  # the queued ones; the one being sent was in flight
