"""The models this server serves, by name (one today; the routes already address it by name)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from classifier.core.errors import ModelNotFoundError
from classifier.model.engine import InferenceEngine
from classifier.model.runtime import SequenceModel


@dataclass(frozen=True, slots=True)
class ServedModel:
    model: SequenceModel
    engine: InferenceEngine


class ModelRepository:
    def __init__(self, served: list[ServedModel]) -> None:
        self._by_name = {entry.model.name: entry for entry in served}

    def get(self, name: str, version: str | None = None) -> ServedModel:
        entry = self._by_name.get(name)
        if entry is None or (version is not None and entry.model.version != version):
            known = ", ".join(sorted(self._by_name)) or "none"
            shown = name if version is None else f"{name} version {version}"
            raise ModelNotFoundError(f"no model named {shown!r} is served (served: {known})")
        return entry

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._by_name.values())
