"""API keys: the keys file (named keys, stored only as SHA-256 hashes), making new keys, and the
ring that checks a presented key and re-reads the file when it changes (no restart to revoke)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from classifier.core.errors import ApiKeyRequiredError, KeysFileError

#: Every key reads ``isc_<id>_<secret>``: recognisable in a leaked-secret scan, and the id finds
#: its entry without comparing against every hash.
KEY_PREFIX: Final = "isc"
KEY_ID_BYTES: Final = 6  # 12 hex digits: only a lookup handle, not secret
SECRET_BYTES: Final = 32  # 256 random bits: no password hash needed, SHA-256 is enough
_KEY_SHAPE: Final = re.compile(
    rf"{KEY_PREFIX}_([0-9a-f]{{{2 * KEY_ID_BYTES}}})_[A-Za-z0-9_-]{{43}}"
)

#: How often, at most, the file's size and modification time are looked at.
RELOAD_INTERVAL_S: Final = 1.0

KeyName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$", strict=True)
]
KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$", strict=True)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$", strict=True)]

#: Receives the ring's events (``api_keys_reloaded``, ...): event, level, fields.
EventSink = Callable[[str, str, Mapping[str, object]], None]

KEYS_FILE_HEADER: Final = (
    "# API keys of the image-sequence classifier: one JSON object per line (docs/security.md).\n"
    "# Only SHA-256 hashes of the keys are stored. Edit with: python -m classifier keys ...\n"
)


class KeyLimits(BaseModel):
    """A key's own limits; unset ones fall back to the service-wide defaults (settings)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    rps: float | None = Field(None, gt=0, description="Requests per second, in each process.")
    burst: int | None = Field(None, ge=1, description="Requests allowed at once above the rate.")
    max_running_jobs: int | None = Field(None, ge=0, description="Queued or running jobs.")
    recording_bytes_per_day: int | None = Field(None, ge=0, description="Per UTC day.")

    def over(self, defaults: KeyLimits) -> KeyLimits:
        """These limits, with each unset one taken from ``defaults``."""
        mine = self.model_dump(exclude_none=True)
        return defaults.model_copy(update=mine) if mine else defaults

    def summary(self) -> str:
        set_limits = self.model_dump(exclude_none=True).items()
        return ", ".join(
            f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
            for name, value in set_limits
        )


class KeyEntry(BaseModel):
    """One line of the keys file: a named key's hash, its rights and its limits."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: KeyName
    id: KeyId
    sha256: Sha256Hex
    admin: bool = False
    created: AwareDatetime
    revoked: AwareDatetime | None = None
    limits: KeyLimits = KeyLimits()

    @property
    def active(self) -> bool:
        return self.revoked is None


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: ``key`` is shown once and never stored; ``entry`` is what is."""

    key: str
    entry: KeyEntry


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_key(
    name: str, *, admin: bool = False, limits: KeyLimits | None = None, now: datetime | None = None
) -> NewKey:
    """A new random key for ``name`` (raises ``ValueError`` for a name the file cannot hold)."""
    key_id = secrets.token_hex(KEY_ID_BYTES)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    try:
        entry = KeyEntry(
            name=name,
            id=key_id,
            sha256=hash_key(key),
            admin=admin,
            created=now or utc_now(),
            limits=limits or KeyLimits(),
        )
    except ValidationError as exc:
        raise ValueError(_first_problem(exc)) from None
    return NewKey(key=key, entry=entry)


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def parse_keys(text: str, source: str) -> list[KeyEntry]:
    """The entries of a keys file's text; blank lines and ``#`` comments are skipped."""
    entries: list[KeyEntry] = []
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            entry = KeyEntry.model_validate_json(stripped)
        except ValidationError as exc:
            raise KeysFileError(f"{source} line {number}: {_first_problem(exc)}") from None
        if entry.id in seen:
            raise KeysFileError(f"{source} line {number}: key id {entry.id} appears twice")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def read_keys_file(path: Path) -> list[KeyEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"cannot read the API keys file {path}: {exc}") from None
    return parse_keys(text, str(path))


def write_keys_file(path: Path, entries: Iterable[KeyEntry]) -> None:
    """Replace the file atomically (a reader sees the old file or the new one, never half), keeping
    its permissions; a new file is readable by its owner only."""
    text = KEYS_FILE_HEADER + "".join(
        entry.model_dump_json(exclude_none=True) + "\n" for entry in entries
    )
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)  # the umask may have narrowed it
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


# A digest no key has: unknown ids are compared against it, so they cost what known ones do.
_NO_SUCH_KEY: Final = hash_key("")


class KeyRing:
    """The keys of one keys file, as one server process sees them.

    ``authenticate`` looks at the file at most once per ``RELOAD_INTERVAL_S`` (of ``clock``) and
    re-reads it when its size, modification time or inode changed: a key revoked in the file stops
    working within about a second in every process that reads it. A file that fails to parse on a
    re-read keeps the keys last read (and says so through ``on_event``); at start-up it is fatal.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_event: EventSink | None = None,
    ) -> None:
        self.path = path
        self.clock = clock
        self.on_event = on_event
        self._by_id: dict[str, KeyEntry] = {}
        self._signature: tuple[int, ...] | None = None
        self._checked_at = -math.inf
        self._last_problem: str | None = None
        signature = self._stat_signature()
        self._install(read_keys_file(path), signature)

    @property
    def entries(self) -> list[KeyEntry]:
        return list(self._by_id.values())

    @property
    def active_count(self) -> int:
        return sum(entry.active for entry in self._by_id.values())

    def authenticate(self, presented: str | None) -> KeyEntry:
        """The active entry whose key was presented; raises ``ApiKeyRequiredError`` otherwise."""
        if presented is None:
            raise ApiKeyRequiredError(
                "this route needs an API key: send it as 'Authorization: Bearer <key>' "
                "or in an 'X-API-Key' header",
                reason="missing",
            )
        self.refresh()
        shape = _KEY_SHAPE.fullmatch(presented)
        entry = self._by_id.get(shape.group(1)) if shape else None
        expected = entry.sha256 if entry is not None else _NO_SUCH_KEY
        if not hmac.compare_digest(hash_key(presented), expected) or entry is None:
            raise ApiKeyRequiredError("the API key is not valid", reason="invalid")
        if not entry.active:
            raise ApiKeyRequiredError("the API key has been revoked", reason="revoked")
        return entry

    def refresh(self) -> None:
        """Re-read the file if it changed; looks at most once per ``RELOAD_INTERVAL_S``."""
        now = self.clock()
        if now - self._checked_at < RELOAD_INTERVAL_S:
            return
        self._checked_at = now
        try:
            signature = self._stat_signature()
            if signature == self._signature:
                return
            entries = read_keys_file(self.path)
        except (OSError, KeysFileError) as exc:
            self._report_problem(str(exc))
            return
        self._install(entries, signature)
        self._last_problem = None
        self._emit("api_keys_reloaded", "info", {"file": str(self.path), "keys": self.active_count})

    def _stat_signature(self) -> tuple[int, ...]:
        try:
            info = os.stat(self.path)  # follows symlinks: a Kubernetes Secret's ..data swap counts
        except OSError as exc:
            raise KeysFileError(f"cannot read the API keys file {self.path}: {exc}") from None
        return (info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev)

    def _install(self, entries: list[KeyEntry], signature: tuple[int, ...]) -> None:
        self._by_id = {entry.id: entry for entry in entries}
        self._signature = signature

    def _report_problem(self, problem: str) -> None:
        # Once per distinct problem, not once a second while it lasts.
        if problem != self._last_problem:
            self._last_problem = problem
            self._emit(
                "api_keys_reload_failed",
                "error",
                {"file": str(self.path), "error": problem, "keys": self.active_count},
            )

    def _emit(self, event: str, level: str, fields: Mapping[str, object]) -> None:
        if self.on_event is not None:
            self.on_event(event, level, fields)
