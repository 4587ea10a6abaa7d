"""The jobs' settings: defaults as documented, and leases that outlast their renewals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from classifier.core.config import DEFAULT_DATA_DIR, Settings


def test_job_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLASSIFIER_DATA_DIR")

    settings = Settings()

    assert settings.data_dir == DEFAULT_DATA_DIR
    assert DEFAULT_DATA_DIR.name == "data"
    assert settings.import_dir is None
    assert settings.max_recording_bytes == 4 * 1024**3
    assert (settings.job_workers, settings.job_retention_hours) == (1, 72)
    assert (settings.job_lease_seconds, settings.job_poll_seconds) == (30, 1)


def test_a_lease_shorter_than_two_renewals_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSIFIER_JOB_POLL_SECONDS", "5")
    monkeypatch.setenv("CLASSIFIER_JOB_LEASE_SECONDS", "8")

    with pytest.raises(ValidationError, match=r"job_lease_seconds \(8\) must be at least twice"):
        Settings()
