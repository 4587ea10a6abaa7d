"""Log shipping over real TCP to the forward receiver (the test double for fluentd).

Covers the BRIEF's logging contract end to end below HTTP: records arrive with their tags and
fields; with the receiver down or stalled no emit waits and losses are counted; shipping resumes
when it comes back. The last section checks the receiver itself against other clients.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import msgpack
import pytest
from fluent import sender as fluent_sync_sender

from classifier.core.logs import LogShipper
from harness.forward_receiver import ForwardReceiver, ReceivedRecord
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

E2E_DIR = Path(__file__).resolve().parents[3] / "e2e"

# A send that waited on the network would take at least the sender's timeout (1 s here); a
# queued one takes microseconds. The bounds leave room for a machine whose two cores are
# saturated (a single emit measured 0.1 s at load average 9) and stay far below the timeout.
# Bursts are smaller than the queue, so drops come from a sender that cannot get rid of records
# (fluentd down or stalled), not from one burst outrunning a healthy sender.
SINGLE_EMIT_MAX_S = 0.25
BURST_OF_1000_MAX_S = 0.5

ShipperFactory = Callable[..., LogShipper]
BURST_NUMBERS = itertools.count()


@pytest.fixture
async def receiver() -> AsyncIterator[ForwardReceiver]:
    async with ForwardReceiver() as started:
        yield started


@pytest.fixture
def make_shipper(receiver: ForwardReceiver) -> Iterator[ShipperFactory]:
    shippers: list[LogShipper] = []

    def make(queue_size: int = 1000, timeout: float = 1.0) -> LogShipper:
        shipper = LogShipper(
            fluentd_host=receiver.host,
            fluentd_port=receiver.port,
            timeout=timeout,
            queue_size=queue_size,
            stdout=False,
        )
        shippers.append(shipper)
        return shipper

    yield make
    for shipper in shippers:
        shipper.close()


def emit_burst(shipper: LogShipper, prefix: str, count: int, pad: int = 0) -> float:
    """Emit ``count`` access records; return the slowest single call's duration (seconds).

    Request ids are ``<prefix>-<burst>-<n>``, unique across bursts with the same prefix.
    """
    burst = next(BURST_NUMBERS)
    slowest = 0.0
    started = time.perf_counter()
    for n in range(count):
        before = time.perf_counter()
        request_id = f"{prefix}-{burst}-{n}"
        shipper.access({"request_id": request_id, "status": 200, "pad": "p" * pad})
        slowest = max(slowest, time.perf_counter() - before)
    assert time.perf_counter() - started < BURST_OF_1000_MAX_S * max(1, count / 1000)
    return slowest


def with_prefix(prefix: str) -> Callable[[ReceivedRecord], bool]:
    return lambda received: str(received.record.get("request_id", "")).startswith(prefix)


# --- the classifier's shipper ---------------------------------------------------------------


async def test_records_arrive_with_their_tags_and_fields(
    receiver: ForwardReceiver, make_shipper: ShipperFactory
) -> None:
    shipper = make_shipper()
    access = {
        "request_id": "req-1",
        "method": "POST",
        "path": "/v1/models/rodent-behaviour/classify",
        "status": 200,
        "duration_ms": 12.5,
        "model": "rodent-behaviour",
        "label": "groom",
        "confidence": 0.93,
        "frames": 24,
        "bytes_in": 81234,
        "client": None,
        "probabilities": [0.5, 0.25],
        "timings": {"decode_ms": 1.5},
    }
    before = time.time()
    shipper.access(access)
    shipper.app("model_loaded", sha256="ab" * 32)
    shipper.app("too_chatty", level="debug")  # below the default level: never shipped

    [got_access] = await receiver.wait_for(lambda r: r.tag == "classifier.access")
    [got_app] = await receiver.wait_for(lambda r: r.tag == "classifier.app")
    assert got_access.record == access
    assert got_app.record == {"event": "model_loaded", "level": "info", "sha256": "ab" * 32}
    assert before - 1 < got_access.time < time.time() + 1
    assert got_access.time != int(got_access.time) or got_app.time != int(got_app.time)  # ns
    assert [r.record.get("event") for r in receiver.by_tag("classifier.app")] == ["model_loaded"]
    assert shipper.dropped == 0


@pytest.mark.parametrize(
    ("sent", "arrives_as"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ('x\n{"tag": "evil"}', 'x\n{"tag": "evil"}'),
        ('"]\x00\xc1\x92\xa4evil', '"]\x00\xc1\x92\xa4evil'),
        ("a\udcffb", "a\\udcffb"),  # a lone surrogate cannot be UTF-8: escaped, not lost
    ],
)
async def test_user_strings_arrive_as_the_same_string(
    sent: str, arrives_as: str, receiver: ForwardReceiver, make_shipper: ShipperFactory
) -> None:
    shipper = make_shipper()
    shipper.access({"request_id": "r", "filename": sent})
    [got] = await receiver.wait_for(lambda r: r.tag == "classifier.access")
    assert got.record == {"request_id": "r", "filename": arrives_as}
    assert receiver.protocol_errors == []


async def test_receiver_down_nothing_waits_drops_are_counted_and_shipping_resumes(
    receiver: ForwardReceiver, make_shipper: ShipperFactory
) -> None:
    shipper = make_shipper(queue_size=2000)
    await receiver.stop()  # connections are refused from here on

    slowest = emit_burst(shipper, "down", 1000, pad=200)
    assert slowest < SINGLE_EMIT_MAX_S
    # Counted while it happens, for /metrics.
    await eventually(lambda: shipper.dropped > 0, "drops counted", within=5)

    await receiver.start()  # same port
    for n in range(5):  # fluent-logger reconnects on the next record it sends
        shipper.access({"request_id": f"up-{n}"})
        await asyncio.sleep(0.01)
    await receiver.wait_for(with_prefix("up-"), count=5)

    shipper.close()
    delivered = {r.record["request_id"] for r in receiver.records if with_prefix("down-")(r)}
    # Each record was either delivered (the retry buffer goes out on reconnect) or counted.
    assert len(delivered) + shipper.dropped == 1000


async def test_receiver_stalled_nothing_waits_drops_are_counted_and_shipping_resumes(
    receiver: ForwardReceiver, make_shipper: ShipperFactory
) -> None:
    shipper = make_shipper(queue_size=2000)
    receiver.stall()  # accepts connections, never reads: socket buffers fill, sends block

    emitted = 0
    deadline = time.monotonic() + 10
    while shipper.dropped == 0:
        assert time.monotonic() < deadline, "socket buffers never filled"
        slowest = emit_burst(shipper, "stalled", 1000, pad=1000)
        assert slowest < SINGLE_EMIT_MAX_S
        emitted += 1000
        await asyncio.sleep(0.05)  # let the sender thread fill the socket and block
    assert shipper.dropped <= emitted

    receiver.resume()
    for n in range(5):
        shipper.access({"request_id": f"resumed-{n}"})
        await asyncio.sleep(0.01)
    await receiver.wait_for(with_prefix("resumed-"), count=5)

    shipper.close()
    delivered = {r.record["request_id"] for r in receiver.records if with_prefix("stalled-")(r)}
    # Nothing vanished uncounted (a record cut off mid-send may be both resent and counted).
    assert len(delivered) + shipper.dropped >= emitted


async def test_receiver_restarted_after_stalling_receives_again(
    receiver: ForwardReceiver, make_shipper: ShipperFactory
) -> None:
    shipper = make_shipper(queue_size=2000)
    receiver.stall()
    deadline = time.monotonic() + 10
    while shipper.dropped == 0:
        assert time.monotonic() < deadline, "socket buffers never filled"
        emit_burst(shipper, "stalled", 1000, pad=1000)
        await asyncio.sleep(0.05)

    started = time.perf_counter()
    # A wedged fluentd replaced by a fresh one on the same port.
    await receiver.stop()
    receiver.resume()
    await receiver.start()
    for n in range(5):
        shipper.access({"request_id": f"fresh-{n}"})
        await asyncio.sleep(0.01)
    await receiver.wait_for(with_prefix("fresh-"), count=5)
    assert time.perf_counter() - started < 5


async def test_close_is_quick_while_the_receiver_is_stalled(
    receiver: ForwardReceiver, make_shipper: ShipperFactory
) -> None:
    shipper = make_shipper(queue_size=10_000, timeout=5.0)
    receiver.stall()
    deadline = time.monotonic() + 10
    while shipper.dropped == 0 and time.monotonic() < deadline:
        emit_burst(shipper, "stalled", 1000, pad=1000)
        await asyncio.sleep(0.05)
        if shipper._sender is not None and shipper._sender._queue.qsize() > 1000:
            break  # the sender thread is blocked in a send; plenty is queued behind it

    started = time.perf_counter()
    await asyncio.to_thread(shipper.close)
    assert time.perf_counter() - started < 1.5
    assert shipper.dropped > 1000
    # Cutting the socket ended the send that was blocked for its 5 s timeout.
    assert shipper._sender is not None
    assert not shipper._sender._send_thread.is_alive()


# --- the forward receiver itself ------------------------------------------------------------


async def test_receiver_accepts_fluent_loggers_message_mode(receiver: ForwardReceiver) -> None:
    def send_with_sync_sender() -> None:
        with fluent_sync_sender.FluentSender(
            "probe", host=receiver.host, port=receiver.port, nanosecond_precision=True
        ) as probe:
            assert probe.emit_with_time("timed", 1_700_000_000.25, {"n": 0})
            assert probe.emit("now", {"n": 1, "nested": {"ok": True}})

    await asyncio.to_thread(send_with_sync_sender)
    timed, now = await receiver.wait_for(lambda r: r.tag.startswith("probe."), count=2)
    assert timed == ReceivedRecord("probe.timed", 1_700_000_000.25, {"n": 0})
    assert now == ReceivedRecord("probe.now", now.time, {"n": 1, "nested": {"ok": True}})
    assert abs(now.time - time.time()) < 5


async def send_raw(receiver: ForwardReceiver, payload: bytes, reply: bool = False) -> object:
    reader, writer = await asyncio.open_connection(receiver.host, receiver.port)
    try:
        writer.write(payload)
        await writer.drain()
        if reply:
            unpacker = msgpack.Unpacker(raw=False)
            while True:
                unpacker.feed(await asyncio.wait_for(reader.read(4096), 5))
                for answer in unpacker:
                    return answer
        return None
    finally:
        writer.close()
        await writer.wait_closed()


def event_time(seconds: int, nanoseconds: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, seconds.to_bytes(4, "big") + nanoseconds.to_bytes(4, "big"))


async def test_receiver_accepts_forward_mode(receiver: ForwardReceiver) -> None:
    entries = [[1_700_000_000, {"n": 0}], [event_time(1_700_000_001, 500_000_000), {"n": 1}]]
    await send_raw(receiver, msgpack.packb(["fwd", entries]))
    got = await receiver.wait_for(lambda r: r.tag == "fwd", count=2)
    assert got == [
        ReceivedRecord("fwd", 1_700_000_000.0, {"n": 0}),
        ReceivedRecord("fwd", 1_700_000_001.5, {"n": 1}),
    ]


async def test_receiver_accepts_compressed_packed_forward_and_acks(
    receiver: ForwardReceiver,
) -> None:
    entries = [msgpack.packb([event_time(1_700_000_000, n), {"n": n}]) for n in range(3)]
    # Two gzip members back to back, as clients that compress chunk by chunk send them.
    body = gzip.compress(b"".join(entries[:2])) + gzip.compress(entries[2])
    option = {"compressed": "gzip", "chunk": "Y2h1bmstMQ==", "size": 3}
    answer = await send_raw(receiver, msgpack.packb(["packed", body, option]), reply=True)
    assert answer == {"ack": "Y2h1bmstMQ=="}
    assert [r.record["n"] for r in receiver.by_tag("packed")] == [0, 1, 2]

    plain = msgpack.packb(["packed.plain", b"".join(entries), {"chunk": "c2"}])
    assert await send_raw(receiver, plain, reply=True) == {"ack": "c2"}
    assert len(receiver.by_tag("packed.plain")) == 3


async def test_receiver_survives_garbage(receiver: ForwardReceiver) -> None:
    await send_raw(receiver, msgpack.packb({"not": "a message"}))
    await send_raw(receiver, msgpack.packb(["tag", 1, "record is not a map"]))
    await send_raw(receiver, msgpack.packb(["ok", 1, {"n": 1}]))
    await receiver.wait_for(lambda r: r.tag == "ok")
    assert len(receiver.protocol_errors) == 2


def read_json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def folder_names(path: Path) -> list[str]:
    return sorted(child.name for child in path.iterdir())


async def test_receiver_writes_json_lines_laid_out_like_fluent_conf(tmp_path: Path) -> None:
    async with ForwardReceiver(log_dir=tmp_path) as receiver:
        entries = [
            [event_time(1_738_324_800, 123_000_000), {"request_id": "a", "status": 200}],
            [event_time(1_738_324_801, 0), {"request_id": "b", "fluent_tag": "forged"}],
        ]
        await send_raw(receiver, msgpack.packb(["classifier.access", entries]))
        await send_raw(receiver, msgpack.packb(["classifier.app", 1_738_324_800, {"event": "x"}]))
        await send_raw(receiver, msgpack.packb(["../../etc", 1_738_324_800, {"event": "y"}]))
        await receiver.wait_for(lambda r: True, count=4)

        # Written and flushed already, while the receiver is still running.
        access_file = tmp_path / "classifier.access" / "20250131.log"
        assert receiver.log_path("classifier.access", 1_738_324_800) == access_file
        assert read_json_lines(access_file) == [
            {
                "request_id": "a",
                "status": 200,
                "fluent_tag": "classifier.access",
                "fluent_time": "2025-01-31T12:00:00.123Z",
            },
            {
                "request_id": "b",
                "fluent_tag": "classifier.access",
                "fluent_time": "2025-01-31T12:00:01.000Z",
            },
        ]
        [app_line] = read_json_lines(tmp_path / "classifier.app" / "20250131.log")
        assert app_line["event"] == "x"
        [other_line] = read_json_lines(tmp_path / "other" / "20250131.log")
        assert other_line["fluent_tag"] == "../../etc"
        assert folder_names(tmp_path) == ["classifier.access", "classifier.app", "other"]


async def test_receiver_command_line_runs_until_sigterm(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "harness.forward_receiver",
        "--port",
        "0",
        "--log-dir",
        str(tmp_path),
        cwd=E2E_DIR,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert "test double for fluentd" in banner
        port = int(banner.split("listening on 127.0.0.1:")[1].split(",")[0])

        client = ForwardReceiver(port=port)  # only to borrow host and port for send_raw
        record = ["classifier.app", int(time.time()), {"event": "startup"}]
        await send_raw(client, msgpack.packb(record))
        app_dir = tmp_path / "classifier.app"
        await eventually(lambda: any(app_dir.glob("*.log")), "app log written", within=5)
        [log_file] = app_dir.glob("*.log")
        await eventually(lambda: "startup" in log_file.read_text())
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
