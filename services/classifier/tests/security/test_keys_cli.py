"""``python -m classifier keys add | rotate | list | revoke`` against a real keys file, run
in-process through the service's command line (and once as a program)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from classifier.cli import main
from classifier.core.errors import ApiKeyRequiredError
from classifier.security.keys import KeyLimits, KeyRing, read_keys_file
from classifier.security.keys_cli import add_subcommand, byte_count, run
from tests.support.server import SRC

Output = tuple[int, str, str]


def keys(capsys: pytest.CaptureFixture[str], *argv: str) -> Output:
    status = main(["keys", *argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keys.jsonl"


def test_add_prints_the_key_once_and_stores_only_its_hash(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = keys(capsys, "add", "lab", "--file", str(path))

    assert status == 0
    key = out.strip()
    assert out == key + "\n"
    assert key.startswith("isc_")
    assert "only time it is shown" in err
    assert key not in err
    assert key not in path.read_text()
    assert KeyRing(path).authenticate(key).name == "lab"


def test_add_records_the_admin_flag_and_limits(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys(capsys, "add", "boss", "--admin", "--file", str(path))
    keys(
        capsys,
        "add",
        "lab",
        "--rps",
        "5",
        "--burst",
        "10",
        "--max-running-jobs",
        "2",
        "--recording-bytes-per-day",
        "20G",
        "--file",
        str(path),
    )

    boss, lab = read_keys_file(path)
    assert (boss.name, boss.admin, boss.limits) == ("boss", True, KeyLimits())
    assert (lab.admin, lab.limits) == (
        False,
        KeyLimits(rps=5, burst=10, max_running_jobs=2, recording_bytes_per_day=20 << 30),
    )


def test_add_refuses_a_name_with_an_active_key(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys(capsys, "add", "lab", "--file", str(path))
    before = path.read_text()

    status, out, err = keys(capsys, "add", "lab", "--file", str(path))

    assert status == 1
    assert out == ""
    assert "'lab' already has an active key" in err
    assert "keys rotate lab" in err
    assert path.read_text() == before


def test_add_refuses_a_name_the_file_cannot_hold(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = keys(capsys, "add", "two words", "--file", str(path))

    assert (status, out) == (2, "")
    assert "name: String should match pattern" in err
    assert not path.exists()


def test_rotate_adds_a_key_with_the_same_rights_and_keeps_the_old_one(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, first, _ = keys(capsys, "add", "lab", "--rps", "3", "--file", str(path))
    status, second, err = keys(capsys, "rotate", "lab", "--file", str(path))

    assert status == 0
    old, new = read_keys_file(path)
    assert (new.name, new.limits, old.active, new.active) == ("lab", KeyLimits(rps=3), True, True)
    assert "keys revoke lab --id" in err
    ring = KeyRing(path)
    assert ring.authenticate(first.strip()).id == old.id
    assert ring.authenticate(second.strip()).id == new.id


def test_revoke_by_id_leaves_the_other_key_of_the_name(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, first, _ = keys(capsys, "add", "lab", "--file", str(path))
    _, second, _ = keys(capsys, "rotate", "lab", "--file", str(path))
    old_id = read_keys_file(path)[0].id

    status, _, err = keys(capsys, "revoke", "lab", "--id", old_id, "--file", str(path))

    assert status == 0
    assert err == f"keys: revoked lab: {old_id}\n"
    ring = KeyRing(path)
    with pytest.raises(ApiKeyRequiredError) as caught:
        ring.authenticate(first.strip())
    assert caught.value.reason == "revoked"
    assert ring.authenticate(second.strip()).name == "lab"


def test_revoke_by_name_revokes_every_key_of_it_and_only_those(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys(capsys, "add", "lab", "--file", str(path))
    keys(capsys, "rotate", "lab", "--file", str(path))
    keys(capsys, "add", "other", "--file", str(path))

    assert keys(capsys, "revoke", "lab", "--file", str(path))[0] == 0

    assert [(e.name, e.active) for e in read_keys_file(path)] == [
        ("lab", False),
        ("lab", False),
        ("other", True),
    ]
    status, _, err = keys(capsys, "revoke", "lab", "--file", str(path))
    assert status == 1
    assert "no active key named 'lab'" in err


def test_list_shows_names_ids_rights_and_limits_but_no_hash(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys(capsys, "add", "boss", "--admin", "--file", str(path))
    keys(
        capsys, "add", "lab", "--rps", "2.5", "--recording-bytes-per-day", "1M", "--file", str(path)
    )
    keys(capsys, "revoke", "boss", "--file", str(path))

    status, out, _ = keys(capsys, "list", "--file", str(path))

    assert status == 0
    header, boss, lab = out.splitlines()
    assert header.split() == ["NAME", "ID", "ADMIN", "CREATED", "REVOKED", "LIMITS"]
    boss_entry, lab_entry = read_keys_file(path)
    assert boss.split()[:3] == ["boss", boss_entry.id, "yes"]
    assert boss.split()[4] != "-"
    assert lab.split()[:3] == ["lab", lab_entry.id, "no"]
    assert lab.split()[4] == "-"
    assert lab.endswith("rps=2.5, recording_bytes_per_day=1048576")
    assert boss.endswith("defaults")
    for entry in (boss_entry, lab_entry):
        assert entry.sha256 not in out


def test_the_file_comes_from_the_environment_when_not_given(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLASSIFIER_API_KEYS_FILE", str(path))

    status, out, _ = keys(capsys, "add", "lab")

    assert status == 0
    assert KeyRing(path).authenticate(out.strip()).name == "lab"


def test_no_file_at_all_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLASSIFIER_API_KEYS_FILE", raising=False)

    assert keys(capsys, "list") == (
        2,
        "",
        "keys: no keys file: pass --file or set CLASSIFIER_API_KEYS_FILE\n",
    )


def test_a_malformed_file_is_reported_and_left_alone(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path.write_text('{"name": "lab"}\n')

    status, out, err = keys(capsys, "add", "other", "--file", str(path))

    assert (status, out) == (2, "")
    assert "line 1: id: Field required" in err
    assert path.read_text() == '{"name": "lab"}\n'


def test_it_plugs_into_another_command_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="classifier")
    subcommands = parser.add_subparsers(dest="command")
    subcommands.add_parser("serve")
    add_subcommand(subcommands)

    args = parser.parse_args(["keys", "add", "lab", "--file", str(path)])

    assert args.command == "keys"
    assert run(args) == 0
    assert KeyRing(path).authenticate(capsys.readouterr().out.strip()).name == "lab"


@pytest.mark.parametrize(
    ("text", "count"), [("1024", 1024), ("512M", 512 << 20), ("20G", 20 << 30), ("2GiB", 2 << 30)]
)
def test_byte_counts_take_binary_units(text: str, count: int) -> None:
    assert byte_count(text) == count


def test_a_bad_byte_count_is_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a byte count: '20 gigs'"):
        byte_count("20 gigs")


def test_python_m_classifier_keys_runs_as_a_program(path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "classifier",
            "keys",
            "add",
            "lab",
            "--file",
            path,
        ],
        env={"PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert KeyRing(path).authenticate(done.stdout.strip()).name == "lab"
    assert json.loads(path.read_text().splitlines()[-1])["name"] == "lab"
