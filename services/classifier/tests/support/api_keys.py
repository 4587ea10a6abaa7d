"""Keys files for tests: issue named keys into a real keys file, revoke them by rewriting it,
and a clock the tests move by hand (the key ring's reload interval, the rate buckets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from classifier.security.keys import (
    RELOAD_INTERVAL_S,
    KeyLimits,
    new_key,
    read_keys_file,
    utc_now,
    write_keys_file,
)


@dataclass
class ManualClock:
    """Monotonic seconds that move only when told to."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class IssuedKeys:
    """A keys file and the plain keys written into it (by name), as an operator would hold them."""

    path: Path
    keys: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, *, admin: bool = False, **limits: float | int) -> str:
        made = new_key(name, admin=admin, limits=KeyLimits.model_validate(limits))
        entries = read_keys_file(self.path) if self.path.exists() else []
        write_keys_file(self.path, [*entries, made.entry])
        self.keys[name] = made.key
        return made.key

    def revoke(self, name: str) -> None:
        """Rewrite the file with ``name``'s keys revoked, as ``keys revoke`` does."""
        now = utc_now()
        write_keys_file(
            self.path,
            [
                e.model_copy(update={"revoked": now}) if e.name == name else e
                for e in read_keys_file(self.path)
            ],
        )

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}


def use_clock(app: FastAPI, clock: ManualClock) -> None:
    """Drive an app's key ring and rate buckets by ``clock``."""
    access = app.state.service.access_control
    access.keys.clock = clock
    access.limiter.clock = clock


def next_reload(clock: ManualClock) -> None:
    """Move ``clock`` past the key ring's reload interval, so its next check looks at the file."""
    clock.advance(RELOAD_INTERVAL_S + 0.01)
