"""The keys file and the key ring, without HTTP: key shape, hashing, parsing, re-reading."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from classifier.core.errors import ApiKeyRequiredError, KeysFileError
from classifier.security.keys import KeyLimits, KeyRing, new_key, parse_keys, read_keys_file
from tests.support.api_keys import IssuedKeys, ManualClock, next_reload

KEY_SHAPE = re.compile(r"^isc_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


def ring(issued: IssuedKeys, clock: ManualClock | None = None, **kwargs: Any) -> KeyRing:
    return KeyRing(issued.path, clock=clock or ManualClock(), **kwargs)


def refusal(keys: KeyRing, presented: str | None) -> str:
    with pytest.raises(ApiKeyRequiredError) as caught:
        keys.authenticate(presented)
    assert caught.value.status_code == 401
    return caught.value.reason


def test_a_new_key_is_prefixed_random_and_stored_only_as_its_hash() -> None:
    first, second = new_key("lab"), new_key("lab")

    assert KEY_SHAPE.match(first.key)
    assert first.key != second.key
    assert first.entry.id == first.key.split("_")[1]
    assert first.entry.sha256 == hashlib.sha256(first.key.encode()).hexdigest()
    assert first.key not in first.entry.model_dump_json()
    assert first.key.split("_", 2)[2] not in first.entry.model_dump_json()


def test_the_file_holds_hashes_and_never_a_key(issued: IssuedKeys) -> None:
    text = issued.path.read_text()

    for key in issued.keys.values():
        assert key not in text
        assert key.split("_", 2)[2] not in text
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert [json.loads(line)["name"] for line in lines] == ["lab", "boss", "slow"]
    assert json.loads(lines[2])["limits"] == {"rps": 2.0, "burst": 2}
    assert issued.path.stat().st_mode & 0o777 == 0o600


def test_the_right_key_authenticates_by_bearer_value(issued: IssuedKeys) -> None:
    keys = ring(issued)

    entry = keys.authenticate(issued.keys["boss"])

    assert (entry.name, entry.admin) == ("boss", True)
    assert keys.authenticate(issued.keys["slow"]).limits == KeyLimits(rps=2, burst=2)


def test_missing_wrong_and_malformed_keys_are_refused(issued: IssuedKeys) -> None:
    keys = ring(issued)
    lab = issued.keys["lab"]
    same_id_other_secret = lab[:-4] + ("AAAA" if not lab.endswith("AAAA") else "BBBB")

    assert refusal(keys, None) == "missing"
    assert refusal(keys, same_id_other_secret) == "invalid"
    assert refusal(keys, new_key("lab").key) == "invalid"  # well formed, never issued
    assert refusal(keys, "hunter2") == "invalid"
    assert refusal(keys, lab + "x") == "invalid"
    assert refusal(keys, "ünïcödé") == "invalid"


def test_the_challenge_says_invalid_token_only_when_a_key_was_sent() -> None:
    missing = ApiKeyRequiredError("no key", reason="missing")
    invalid = ApiKeyRequiredError("bad key", reason="invalid")

    assert missing.headers() == {"WWW-Authenticate": 'Bearer realm="image-sequence-classifier"'}
    assert invalid.headers() == {
        "WWW-Authenticate": 'Bearer realm="image-sequence-classifier", error="invalid_token"'
    }


def test_a_revoked_key_stops_at_the_next_look_at_the_file(issued: IssuedKeys) -> None:
    clock = ManualClock()
    keys = ring(issued, clock)
    assert keys.authenticate(issued.keys["lab"]).name == "lab"

    issued.revoke("lab")
    clock.advance(0.5)  # within the interval: the file is not looked at yet
    assert keys.authenticate(issued.keys["lab"]).name == "lab"
    clock.advance(0.51)

    assert refusal(keys, issued.keys["lab"]) == "revoked"
    assert keys.authenticate(issued.keys["boss"]).name == "boss"


def test_a_key_added_to_the_file_works_without_a_restart(issued: IssuedKeys) -> None:
    clock = ManualClock()
    events: list[tuple[str, str, dict[str, object]]] = []
    keys = ring(issued, clock, on_event=lambda e, level, f: events.append((e, level, dict(f))))

    added = issued.add("newcomer")
    next_reload(clock)

    assert keys.authenticate(added).name == "newcomer"
    assert events == [("api_keys_reloaded", "info", {"file": str(issued.path), "keys": 4})]


def test_a_broken_rewrite_keeps_the_last_keys_and_is_reported_once(issued: IssuedKeys) -> None:
    clock = ManualClock()
    events: list[tuple[str, str, dict[str, object]]] = []
    keys = ring(issued, clock, on_event=lambda e, level, f: events.append((e, level, dict(f))))
    good = issued.path.read_text()

    issued.path.write_text(good + '{"name": "half-writ\n')
    for _ in range(3):
        next_reload(clock)
        assert keys.authenticate(issued.keys["lab"]).name == "lab"

    assert [(event, level) for event, level, _ in events] == [("api_keys_reload_failed", "error")]
    assert "keys.jsonl line 6: Invalid JSON" in str(events[0][2]["error"])
    assert events[0][2]["keys"] == 3

    issued.path.write_text(good)
    issued.revoke("lab")
    next_reload(clock)
    assert refusal(keys, issued.keys["lab"]) == "revoked"
    assert events[-1][0] == "api_keys_reloaded"


def test_a_missing_file_is_fatal_at_start(tmp_path: Path) -> None:
    with pytest.raises(KeysFileError, match="cannot read the API keys file"):
        KeyRing(tmp_path / "nowhere.jsonl")


def test_an_empty_file_means_keys_on_and_no_key_valid(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    path.write_text("# no keys yet\n\n")
    keys = KeyRing(path)

    assert keys.active_count == 0
    assert refusal(keys, new_key("lab").key) == "invalid"


ENTRY = {
    "name": "lab",
    "id": "0123456789ab",
    "sha256": "0" * 64,
    "created": "2026-12-01T10:00:00Z",
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"limits": {"rsp": 5}}, "limits.rsp: Extra inputs are not permitted"),
        ({"limits": {"rps": 0}}, "limits.rps: Input should be greater than 0"),
        ({"admin": "yes"}, "admin: Input should be a valid boolean"),
        ({"name": "two words"}, "name: String should match pattern"),
        ({"id": "XYZ"}, "id: String should match pattern"),
        ({"sha256": "abc"}, "sha256: String should match pattern"),
        ({"created": "2026-12-01T10:00:00"}, "created: Input should have timezone info"),
        ({"key": "isc_..."}, "key: Extra inputs are not permitted"),
    ],
)
def test_a_malformed_entry_is_named_by_line_and_field(
    change: dict[str, object], problem: str
) -> None:
    text = "# header\n\n" + json.dumps({**ENTRY, **change}) + "\n"

    with pytest.raises(KeysFileError) as caught:
        parse_keys(text, "keys.jsonl")

    assert str(caught.value).startswith(f"keys.jsonl line 3: {problem}")


def test_a_line_that_is_not_json_and_a_repeated_id_are_refused() -> None:
    with pytest.raises(KeysFileError, match=r"^k line 1: Invalid JSON"):
        parse_keys("name=lab\n", "k")
    with pytest.raises(KeysFileError, match=r"^k line 2: key id 0123456789ab appears twice"):
        parse_keys(json.dumps(ENTRY) + "\n" + json.dumps({**ENTRY, "name": "other"}), "k")


def test_limits_fall_back_to_the_defaults_one_by_one() -> None:
    defaults = KeyLimits(rps=10, max_running_jobs=2)

    assert KeyLimits(rps=1).over(defaults) == KeyLimits(rps=1, max_running_jobs=2)
    assert KeyLimits().over(defaults) == defaults
    assert KeyLimits(recording_bytes_per_day=5).over(KeyLimits()) == KeyLimits(
        recording_bytes_per_day=5
    )


def test_read_keys_file_round_trips_what_was_written(issued: IssuedKeys) -> None:
    entries = read_keys_file(issued.path)

    assert [(e.name, e.admin, e.active) for e in entries] == [
        ("lab", False, True),
        ("boss", True, True),
        ("slow", False, True),
    ]
