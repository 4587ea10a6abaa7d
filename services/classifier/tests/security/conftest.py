"""A keys file with three keys: ``lab`` (plain), ``boss`` (admin), ``slow`` (2 requests/s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.api_keys import IssuedKeys


@pytest.fixture
def issued(tmp_path: Path) -> IssuedKeys:
    keys = IssuedKeys(tmp_path / "keys.jsonl")
    keys.add("lab")
    keys.add("boss", admin=True)
    keys.add("slow", rps=2, burst=2)
    return keys
