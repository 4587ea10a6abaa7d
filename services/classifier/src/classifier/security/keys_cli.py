"""``keys add | rotate | list | revoke``: manage the API keys file from the command line.

A new key is printed once, alone on stdout (so ``KEY=$(... keys add lab)`` works); the file keeps
only its hash. Run as ``python -m classifier keys ...``: the service's command line
(``classifier.cli``) adds the subcommand with ``add_subcommand`` and hands it to ``run``.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from classifier.core.errors import KeysFileError
from classifier.security.keys import (
    KeyEntry,
    KeyLimits,
    new_key,
    read_keys_file,
    utc_now,
    write_keys_file,
)

KEYS_FILE_ENV = "CLASSIFIER_API_KEYS_FILE"
_BYTES = re.compile(r"^\s*(\d+)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class KeysCommandError(Exception):
    """A refused command (name taken, no such key): one line for stderr, exit status 1."""


def byte_count(text: str) -> int:
    """``1048576``, ``512M``, ``20GiB``: a byte count, binary units."""
    match = _BYTES.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r} (say 500M or 20G)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def add_subcommand(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys`` and its actions to a command line's subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--file",
        type=Path,
        default=None,
        help=f"the keys file (default: ${KEYS_FILE_ENV})",
    )
    keys = subparsers.add_parser(
        "keys",
        help="manage API keys (add, rotate, list, revoke)",
        description="Manage the API keys file; see docs/security.md.",
    )
    actions = keys.add_subparsers(dest="keys_action", required=True, metavar="ACTION")

    add = actions.add_parser(
        "add", parents=[common], help="make a new key for NAME; print it once, store its hash"
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("--admin", action="store_true", help="may see and delete every job")
    limits = add.add_argument_group("limits (unset: the service's CLASSIFIER_API_KEY_* defaults)")
    limits.add_argument("--rps", type=float, help="requests per second, in each server process")
    limits.add_argument("--burst", type=int, help="requests allowed at once above the rate")
    limits.add_argument("--max-running-jobs", type=int, help="queued or running jobs at once")
    limits.add_argument(
        "--recording-bytes-per-day", type=byte_count, help="recording bytes per UTC day (20G)"
    )

    rotate = actions.add_parser(
        "rotate",
        parents=[common],
        help="a new key for NAME with the same rights; the old one works until revoked",
    )
    rotate.add_argument("name", metavar="NAME")

    actions.add_parser("list", parents=[common], help="every key: name, id, rights, limits")

    revoke = actions.add_parser(
        "revoke", parents=[common], help="revoke NAME's keys (or one, with --id)"
    )
    revoke.add_argument("name", metavar="NAME")
    revoke.add_argument("--id", dest="key_id", help="revoke only the key with this id")


def run(args: argparse.Namespace) -> int:
    """Carry out a parsed ``keys`` command; the exit status."""
    path: Path | None = args.file or (
        Path(os.environ[KEYS_FILE_ENV]) if os.environ.get(KEYS_FILE_ENV) else None
    )
    if path is None:
        print(f"keys: no keys file: pass --file or set {KEYS_FILE_ENV}", file=sys.stderr)
        return 2
    try:
        if args.keys_action == "list":
            _list(read_keys_file(path) if path.exists() else [])
            return 0
        with _locked(path):
            entries = read_keys_file(path) if path.exists() else []
            if args.keys_action == "add":
                entries = _add(entries, args)
            elif args.keys_action == "rotate":
                entries = _rotate(entries, args.name)
            else:
                entries = _revoke(entries, args.name, args.key_id)
            write_keys_file(path, entries)
    except KeysCommandError as exc:
        print(f"keys: {exc}", file=sys.stderr)
        return 1
    except (KeysFileError, OSError, ValueError) as exc:
        print(f"keys: {exc}", file=sys.stderr)
        return 2
    return 0


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time (the file itself is replaced, so the lock lives beside it)."""
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _active(entries: list[KeyEntry], name: str) -> list[KeyEntry]:
    return [entry for entry in entries if entry.name == name and entry.active]


def _announce(entry: KeyEntry, key: str, note: str) -> None:
    print(key)  # alone on stdout, for scripts
    print(
        f"keys: {note} '{entry.name}' (id {entry.id}{', admin' if entry.admin else ''}). "
        "This is the only time it is shown: the file keeps only its hash.",
        file=sys.stderr,
    )


def _add(entries: list[KeyEntry], args: argparse.Namespace) -> list[KeyEntry]:
    existing = _active(entries, args.name)
    if existing:
        raise KeysCommandError(
            f"'{args.name}' already has an active key (id {existing[0].id}); "
            f"to replace it: keys rotate {args.name}"
        )
    limits = KeyLimits(
        rps=args.rps,
        burst=args.burst,
        max_running_jobs=args.max_running_jobs,
        recording_bytes_per_day=args.recording_bytes_per_day,
    )
    made = new_key(args.name, admin=args.admin, limits=limits)
    _announce(made.entry, made.key, "new key for")
    return [*entries, made.entry]


def _rotate(entries: list[KeyEntry], name: str) -> list[KeyEntry]:
    existing = _active(entries, name)
    if not existing:
        raise KeysCommandError(f"no active key named '{name}' (keys add {name} makes one)")
    newest = existing[-1]
    made = new_key(name, admin=newest.admin, limits=newest.limits)
    _announce(made.entry, made.key, "new key for")
    old = " ".join(entry.id for entry in existing)
    print(
        f"keys: the old key(s) ({old}) still work; once clients have switched: "
        f"keys revoke {name} --id <id>",
        file=sys.stderr,
    )
    return [*entries, made.entry]


def _revoke(entries: list[KeyEntry], name: str, key_id: str | None) -> list[KeyEntry]:
    targets = [e for e in _active(entries, name) if key_id is None or e.id == key_id]
    if not targets:
        which = f"with id {key_id} " if key_id else ""
        raise KeysCommandError(f"no active key named '{name}' {which}to revoke")
    now = utc_now()
    revoked = {entry.id for entry in targets}
    print(f"keys: revoked {name}: {' '.join(sorted(revoked))}", file=sys.stderr)
    return [
        entry.model_copy(update={"revoked": now}) if entry.id in revoked else entry
        for entry in entries
    ]


def _list(entries: list[KeyEntry]) -> None:
    rows = [("NAME", "ID", "ADMIN", "CREATED", "REVOKED", "LIMITS")]
    for entry in entries:
        rows.append(
            (
                entry.name,
                entry.id,
                "yes" if entry.admin else "no",
                entry.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                entry.revoked.strftime("%Y-%m-%dT%H:%M:%SZ") if entry.revoked else "-",
                entry.limits.summary() or "defaults",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
