"""The model under test as the service describes it (`GET /v1/models`), not as guessed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ServedModel:
    name: str
    version: str
    sha256: str
    labels: tuple[str, ...]
    input_name: str
    frames: int
    height: int
    width: int
    channels: int

    @classmethod
    def from_manifest(cls, served: dict[str, Any]) -> ServedModel:
        spec = served["input"]
        return cls(
            name=served["name"],
            version=served["version"],
            sha256=served["sha256"],
            labels=tuple(served["labels"]),
            input_name=spec["name"],
            frames=int(spec["frames"]),
            height=int(spec["height"]),
            width=int(spec["width"]),
            channels=int(spec["channels"]),
        )

    @property
    def shape(self) -> list[int]:
        """One sequence's tensor shape, batch axis first (NTHWC)."""
        return [1, self.frames, self.height, self.width, self.channels]

    @property
    def size(self) -> int:
        """Values in one sequence's tensor."""
        return self.frames * self.height * self.width * self.channels

    @property
    def classify_url(self) -> str:
        return f"/v1/models/{self.name}/classify"

    @property
    def infer_url(self) -> str:
        return f"/v2/models/{self.name}/infer"

    def index(self, label: str) -> int:
        assert label in self.labels, f"{label!r} is not a label of {self.name}: {self.labels}"
        return self.labels.index(label)
